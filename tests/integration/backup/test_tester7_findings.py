"""tester7: physical incremental lineage and ``restore --force``, attacked as a
hostile-but-legal user and an unlucky operator would, against the real sandbox.

One full physical backup of the sandbox primary is taken (policy ``t7-phys``); each test
restores it or builds on it, the way cron would run ``datatier``.

Findings, by severity (each test's docstring has steps, expected and actual):
- silent wrong, fixed: ``restore ID --datadir /var/lib --force`` (a slip for
  ``/var/lib/mysql``) or ``--datadir /etc --force`` deleted the whole directory: it holds
  a ``mysql`` entry, which counted as a datadir mark whatever it was
  (``test_force_onto_a_directory_whose_mysql_entry_is_no_system_schema_is_refused``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from datatier.backup.stores import store_for
from datatier.storage.base import ObjectStore
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.integrity import failure_line
from tests.integration.physical_support import OWNER

POLICY = "t7-phys"
PLAIN: dict[str, str] = {}


def store_of(sandbox: SandboxHandle) -> ObjectStore:
    return store_for(sandbox.config.backup.default_store, sandbox.config)


@pytest.fixture(scope="module")
def full(sandbox: SandboxHandle) -> Iterator[str]:
    """The ID of a full physical backup of the sandbox primary."""
    sandbox.write_policy(
        POLICY,
        'engine = "mariabackup"\njobs = 2\nchunk_mb = 4\nencrypt = false\n'
        '[source]\nnode = "primary"\n[retention]\nkeep_last = 20\nmin_age_days = 0\n',
    )
    result = cli(sandbox.config_path, {}, "backup", "run", POLICY, "--full", "--json")
    assert result.code == 0, result.err
    yield str(result.json()["id"])
    store = store_of(sandbox)
    store.delete([o.key for o in store.list_objects(f"{POLICY}/")])
    (sandbox.root / "backups" / f"{POLICY}.toml").unlink(missing_ok=True)


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# -- findings -------------------------------------------------------------------------------


def test_force_onto_a_directory_whose_mysql_entry_is_no_system_schema_is_refused(
    sandbox: SandboxHandle, full: str, tmp_path: Path
) -> None:
    """Severity: silent wrong (a system directory deleted, exit 0). On a Debian host
    ``/var/lib`` holds ``mysql`` (the stopped server's datadir) next to ``dpkg``, ``apt``...,
    and ``/etc`` holds ``mysql`` (``my.cnf``, ``conf.d``) next to ``passwd``.

    Steps: ``restore ID --datadir /var/lib --force`` (a slip for ``/var/lib/mysql``, the
    server stopped for the restore), and the same onto an ``/etc``-like directory.
    Expected: exit 2, "does not look like a MariaDB datadir", nothing changed (as for
    ``--datadir ~``).
    Was: exit 0, "datadir ready": every entry of the directory deleted (``dpkg``'s
    database, the stopped server's whole datadir, ``/etc/passwd``), a datadir in their place.
    Cause: ``check_datadir`` took any entry named ``mysql`` as a datadir mark, whatever it
    is; a datadir's ``mysql`` is the system schema, a directory of ``.frm`` files."""
    var_lib = tmp_path / "var_lib"
    var_lib.mkdir()
    restored = cli(sandbox.config_path, PLAIN, "restore", full,
                   "--datadir", str(var_lib / "mysql"), "--owner", OWNER)  # fmt: skip
    assert restored.code == 0, restored.err  # the stopped server's datadir
    (var_lib / "dpkg").mkdir()
    (var_lib / "dpkg" / "status").write_text("Package: libc6\n")
    etc = tmp_path / "etc"
    (etc / "mysql" / "conf.d").mkdir(parents=True)
    (etc / "mysql" / "my.cnf").write_text("[mysqld]\n")
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    for slip in (var_lib, etc):
        before = tree(slip)
        result = cli(sandbox.config_path, PLAIN, "restore", full,
                     "--datadir", str(slip), "--force", "--owner", OWNER)  # fmt: skip
        assert result.code == 2, (slip, result.err)
        assert "does not look like a MariaDB datadir" in failure_line(result.err)
        assert tree(slip) == before, "nothing changed"
    # a real datadir is still replaced with --force (its mysql/ is the system schema)
    again = cli(sandbox.config_path, PLAIN, "restore", full,
                "--datadir", str(var_lib / "mysql"), "--force", "--owner", OWNER)  # fmt: skip
    assert again.code == 0, again.err
