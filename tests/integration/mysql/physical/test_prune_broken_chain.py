"""``backups prune`` when the newest backup is an incremental whose chain is broken (its full
backup lost its manifest: a lifecycle rule, a hand clean-up). ``backups list`` calls it
"broken: parent ... is missing", yet prune counted it as the newest good backup and, with
``keep_last = 1``, deleted the older full backup (the only restorable one) and the parent's
objects: nothing left to restore (tester's regression test; real mariadb-backup of the
sandbox primary, the sandbox's S3 server). Now the broken incremental is reported as
damaged and the full backup kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.backup.manifest import manifest_key
from datatier.backup.stores import store_for
from tests.integration.conftest import SandboxHandle
from tests.integration.physical_support import cli

POLICY = "t5-phys-chain"


@pytest.fixture
def broken_chain(sandbox: SandboxHandle) -> Iterator[dict[str, str]]:
    store = store_for(sandbox.config.backup.default_store, sandbox.config)
    store.delete([o.key for o in store.list_objects(f"{POLICY}/")])
    sandbox.write_policy(
        POLICY,
        'engine = "mariabackup"\njobs = 2\nchunk_mb = 2\nfull_every_days = 7\n'
        '[source]\nnode = "primary"\n[retention]\nkeep_last = 1\nmin_age_days = 0\n',
    )
    made = {}
    for name, flag in (
        ("old_full", "--full"),
        ("full", "--full"),
        ("incremental", "--incremental"),
    ):
        result = cli(sandbox, "backup", "run", POLICY, flag, "--json")
        assert result.code == 0, result.err
        made[name] = result.json()["id"]
    store.delete([manifest_key(POLICY, made["full"])])  # the chain's full backup is lost
    yield made
    store.delete([o.key for o in store.list_objects(f"{POLICY}/")])
    (sandbox.root / "backups" / f"{POLICY}.toml").unlink(missing_ok=True)


def test_prune_never_deletes_the_last_restorable_backup_for_a_broken_chain(
    sandbox: SandboxHandle, broken_chain: dict[str, str]
) -> None:
    listed = cli(sandbox, "backups", "list", POLICY, "--all", "--json").json()["backups"]
    chains = {b["id"]: str(b.get("chain")) for b in listed}
    assert "broken" in chains[broken_chain["incremental"]], chains
    result = cli(sandbox, "backups", "prune", POLICY, "--execute", "--grace-hours", "0")
    left = cli(sandbox, "backups", "list", POLICY, "--json").json()["backups"]
    assert broken_chain["old_full"] in {b["id"] for b in left}, (
        f"exit {result.code}: the only restorable backup was pruned; left {left}"
    )
    assert cli(sandbox, "backups", "verify", broken_chain["old_full"]).code == 0
    assert result.code == 0, result.err
    assert "broken chain" in result.out + result.err, "the incremental is reported"
    every = cli(sandbox, "backups", "list", POLICY, "--all", "--json").json()["backups"]
    assert broken_chain["incremental"] in {b["id"] for b in every}, "kept for a person to see"
