"""The Ansible role for real: rendered from a config of the sandbox, applied by
ansible-playbook over SSH to a throwaway podman container (Debian 12 from the local base
image, systemd as PID 1, host network), twice: the second run changes nothing. Then the
installed units pass `systemd-analyze verify`, the always-on services run under the
container's systemd (the host asks the health endpoint), and the installed `datatier` backs
up the sandbox primary on 127.0.0.1 through the policy's own systemd service.

Secrets come from a real Ansible Vault file. pip installs from a wheelhouse built on the
host (`--no-index --find-links`, so no compiler on the target), which is how the role's
`datatier_pip_extra_args` serves hosts without an index. Ports: SSH on
``DATATIER_TEST_PORT_BASE + 80``, the health endpoint on ``+81``..``+83``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from datatier.cli import main
from datatier.sandbox import images
from datatier.typedtoml import dumps_toml
from tests.integration.conftest import SandboxHandle, unavailable

pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[3]
POLICY = "ansible-e2e"
DB = "ansible_db"
WHEELS = "/srv/datatier-wheels"
TARGET_PACKAGES = "systemd systemd-sysv dbus python3 openssh-server sudo"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Target:
    """The container the role is applied to, and how Ansible reaches it."""

    name: str
    project: Path  # the rendered ansible/ directory, with inventory and vault added
    config: Path  # the config the role was rendered from (on this host)
    env: dict[str, str]

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["podman", "exec", self.name, "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{script!r} in the target failed: {result.stderr[-2000:]}")
        return result

    def playbook(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", "inventory.ini", "site.yml", *extra],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counters of the one host."""
    match = re.search(r"^target\s*:\s*(.*)$", output, re.M)
    assert match, f"no recap in:\n{output[-3000:]}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def podman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} failed: {result.stderr[-2000:]}")
    return result


@pytest.fixture(scope="module")
def target_image() -> str:
    """Debian 12 with systemd, sshd, sudo and python3 (what any managed host has), built
    once from the sandbox's local base image; the tag is a hash of the recipe."""
    for tool in ("podman", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (`make podman`; openssh-client)")
    for tool in ("ansible-playbook", "ansible-vault"):
        if not (BIN / tool).exists():
            unavailable(f"{tool} is not installed (the test extra of setup.cfg)")
    base = images.base_ref()
    if subprocess.run(["podman", "image", "exists", base], check=False).returncode != 0:
        unavailable(f"no Debian base image {base}: run `make images`")
    recipe = f"FROM {base}\n" + images.APT.format(packages=TARGET_PACKAGES) + 'CMD ["/sbin/init"]\n'
    ref = (
        f"localhost/datatier-test/ansible-target:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    )
    if subprocess.run(["podman", "image", "exists", ref], check=False).returncode != 0:
        build = ROOT / ".sandbox-build-ansible"
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir()
        try:
            (build / "Containerfile").write_text(recipe)
            podman("build", "--network", "host", "-t", ref, str(build))
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return ref


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """datatier and its dependencies as wheels, built here (mysqlclient against the same
    Debian's libmariadb)."""
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


def e2e_config(sandbox: SandboxHandle, into: Path) -> Path:
    """The sandbox's config with one policy of its own (and binlog archiving into it)."""
    doc = tomllib.loads(sandbox.config_path.read_text())
    for table in (doc["mysql"], doc["s3"]):
        for key in [k for k in table if k.endswith("_file")]:
            table[key] = str((sandbox.root / table[key]).resolve())
    doc["backup"]["policies_dir"] = str(into / "backups")
    doc["binlog"] = {"policy": POLICY}
    (into / "backups").mkdir(parents=True)
    (into / "backups" / f"{POLICY}.toml").write_text(
        f'engine = "mysql"\nschedule = "0 4 * * *"\n\n[source]\nnode = "primary"\n'
        f'databases = ["{DB}"]\n\n[retention]\nkeep_last = 3\n'
    )
    path = into / "datatier.toml"
    path.write_text(dumps_toml(doc))
    return path


@pytest.fixture(scope="module")
def target(
    sandbox: SandboxHandle,
    target_image: str,
    wheelhouse: Path,
    test_port_base: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    """The rendered role with an inventory of one host, the container it manages, and a
    Vault holding the sandbox's secrets."""
    tmp = tmp_path_factory.mktemp("ansible")
    ssh_port, health_base = test_port_base + 80, test_port_base + 81
    config = e2e_config(sandbox, tmp / "config")
    out = tmp / "render"
    args = ["--config", str(config), "deploy", "render", "ansible", "--output-dir", str(out)]
    assert main([*args, "--health-port-base", str(health_base)]) == 0
    project = out / "ansible"

    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    sshd = tmp / "sshd.conf"
    sshd.write_text(f"ListenAddress 127.0.0.1:{ssh_port}\nPasswordAuthentication no\n")
    (project / "inventory.ini").write_text(
        "[datatier]\n"
        f"target ansible_host=127.0.0.1 ansible_port={ssh_port} ansible_user=root "
        f"ansible_ssh_private_key_file={key} ansible_python_interpreter=/usr/bin/python3\n"
    )
    (project / "host_vars").mkdir(exist_ok=True)
    (project / "host_vars" / "target.yml").write_text(
        "---\n"
        f"datatier_backup_policies: [{POLICY}]\n"
        "datatier_heartbeat: true\n"
        "datatier_binlog_archiver: true\n"
        f'datatier_pip_extra_args: "--no-index --find-links {WHEELS}"\n'
        "datatier_pip_build_packages: []\n"
    )
    cfg = sandbox.config
    vault = project / "group_vars" / "datatier" / "vault.yml"
    vault.write_text(
        "---\n"
        + "".join(
            f"vault_datatier_{name}: {json.dumps(secret.reveal())}\n"
            for name, secret in (
                ("mysql_password", cfg.mysql.password),
                ("mysql_replication_password", cfg.mysql.replication_password),
                ("s3_access_key_id", cfg.s3.access_key_id),
                ("s3_secret_access_key", cfg.s3.secret_access_key),
            )
        )
    )
    password = tmp / "vault-password"
    password.write_text("datatier-test-vault\n")
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "ANSIBLE_HOME": str(tmp / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp / "cp"),
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=120s "
        "-o UserKnownHostsFile=/dev/null",
        "ANSIBLE_VAULT_PASSWORD_FILE": str(password),
    }
    subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt", str(vault)],
        env=env,
        check=True,
        capture_output=True,
    )
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")

    name = f"datatier-test-ansible-{test_port_base}"
    subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, check=False)
    podman(
        "run", "-d", "--name", name, "--network", "host", "--systemd", "always",
        "-v", f"{key}.pub:/root/.ssh/authorized_keys:ro",
        "-v", f"{sshd}:/etc/ssh/sshd_config.d/datatier-test.conf:ro",
        "-v", f"{wheelhouse}:{WHEELS}:ro",
        target_image,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        probe = [
            str(BIN / "ansible"),
            "-i",
            "inventory.ini",
            "target",
            "-m",
            "ansible.builtin.ping",
        ]
        while True:
            pinged = subprocess.run(
                probe, cwd=project, env=env, capture_output=True, text=True, check=False
            )
            if pinged.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the target never answered over SSH: {pinged.stdout}")
            time.sleep(0.5)
        yield Target(name, project, config, env)
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "2", name], capture_output=True, check=False)


def secrets_of(sandbox: SandboxHandle) -> list[str]:
    cfg = sandbox.config
    return [s.reveal() for s in (cfg.mysql.password, cfg.s3.secret_access_key) if s]


def test_bad_input_fails_before_any_change(target: Target, sandbox: SandboxHandle) -> None:
    group_vars = target.project / "group_vars" / "datatier"
    untouched = (
        "test ! -e /etc/datatier && ! id datatier && ! dpkg -s zstd && test ! -e /opt/datatier"
    )
    # A Vault without the MySQL password: the argument check, before the first task, fails.
    vault = group_vars / "vault.yml"
    kept = vault.read_bytes()
    vault.write_text("---\nnothing: here\n")
    try:
        run = target.playbook()
    finally:
        vault.write_bytes(kept)
    assert run.returncode != 0
    assert "vault_datatier_mysql_password" in run.stdout, run.stdout[-3000:]
    assert recap(run.stdout)["changed"] == 0
    target.sh(untouched)
    # No variable for a required secret at all: named by the argument specs.
    hidden = group_vars.with_name("datatier.off")
    group_vars.rename(hidden)
    try:
        run = target.playbook()
    finally:
        hidden.rename(group_vars)
    assert run.returncode != 0
    assert "missing required arguments: datatier_mysql_password" in run.stdout, run.stdout[-3000:]
    target.sh(untouched)
    # A policy this host should run that the role was not rendered with.
    run = target.playbook("-e", '{"datatier_backup_policies": ["no-such-policy"]}')
    assert run.returncode != 0
    assert "rendered with: no-such-policy" in run.stdout, run.stdout[-3000:]
    target.sh(untouched)
    for secret in secrets_of(sandbox):
        assert secret not in run.stdout + run.stderr


def test_role_applies_and_a_second_run_changes_nothing(
    target: Target, sandbox: SandboxHandle
) -> None:
    first = target.playbook()
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-2000:]
    assert recap(first.stdout)["changed"] > 0
    second = target.playbook()
    assert second.returncode == 0, second.stdout[-5000:]
    changed = recap(second.stdout)["changed"]
    assert changed == 0, "second run changed:\n" + "\n".join(
        line for line in second.stdout.splitlines() if line.startswith("changed:")
    )
    for secret in secrets_of(sandbox):
        assert secret not in first.stdout + first.stderr + second.stdout


def test_installed_units_verify_run_and_back_up_the_sandbox(
    target: Target, sandbox: SandboxHandle, test_port_base: int
) -> None:
    units = "/etc/systemd/system/datatier-*.service /etc/systemd/system/datatier-*.timer"
    verified = target.sh(f"systemd-analyze verify {units}", check=False)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    target.sh(f"systemctl is-enabled datatier-backup-{POLICY}.timer")
    target.sh(f"systemctl is-active datatier-backup-{POLICY}.timer")
    for unit in ("heartbeat", "health", "binlog-archive"):
        target.sh(f"systemctl is-enabled datatier-{unit}.service")
        target.sh(f"systemctl is-active datatier-{unit}.service")
    # Secrets: files only root and the datatier group read; the config only names them.
    listing = target.sh("stat -c '%U:%G %a %n' /etc/datatier/secrets/*").stdout
    for line in listing.splitlines():
        assert line.startswith("root:datatier 640 "), line
    config = target.sh("cat /etc/datatier/datatier.toml").stdout
    for secret in secrets_of(sandbox):
        assert secret not in config
    assert 'password_file = "/etc/datatier/secrets/mysql-password"' in config
    # The health endpoint, run by the container's systemd as the datatier user, answers
    # the host on the primary's port.
    health = f"http://127.0.0.1:{test_port_base + 81}/primary"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(health, timeout=2) as reply:
                assert reply.status == 200
                break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    pid = target.sh("systemctl show -p MainPID --value datatier-health.service").stdout.strip()
    assert target.sh(f"ps -o user= -p {pid}").stdout.strip() == "datatier"

    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute(f"INSERT INTO {DB}.t SELECT seq, CONCAT('row ', seq) FROM {DB}.seq_1_to_500")
    try:
        # The policy's own oneshot service: backup run, then prune, as the datatier user.
        started = target.sh(f"systemctl start datatier-backup-{POLICY}.service", check=False)
        journal = target.sh(f"journalctl -u datatier-backup-{POLICY}.service --no-pager").stdout
        assert started.returncode == 0, journal[-3000:]
        state = target.sh(f"systemctl show -p Result,User datatier-backup-{POLICY}.service")
        assert "Result=success" in state.stdout and "User=datatier" in state.stdout
        listed = target.sh(
            "runuser -u datatier -- datatier --config /etc/datatier/datatier.toml backups list "
            f"{POLICY} --json"
        ).stdout
        (backup,) = json.loads(listed)["backups"]
        assert backup["state"] == "complete"
        # The host's datatier sees the same backup in the sandbox's store.
        shown = subprocess.run(
            [str(BIN / "datatier"), "--config", str(target.config), "backups", "list",
             POLICY, "--json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert [b["id"] for b in json.loads(shown.stdout)["backups"]] == [backup["id"]]
    finally:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
