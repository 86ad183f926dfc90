"""The deploy image for real: the rendered Dockerfile built with podman on a Debian 12 base,
then run as the Kubernetes CronJob runs it (its command, env, Secret keys, config mount and
user) against the sandbox on 127.0.0.1 (host network): a backup of the primary, then a
restore with the image, compared table by table.

The base is the sandbox's locally built Debian image (no registry is reachable here;
``DATATIER_TEST_DEPLOY_BASE`` names another). The build's pip trusts the host's CA bundle
(mounted for the builder stage only: these machines reach PyPI through a TLS-intercepting
proxy); the runtime stage is built without it, so the image carries nothing of the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from datatier.cli import main
from datatier.provision.artifacts.docker import UID
from datatier.provision.artifacts.k8s import SECRET_ENV
from datatier.sandbox import images
from datatier.sandbox.engine import Engine
from datatier.typedtoml import dumps_toml
from tests.integration.conftest import SandboxHandle, unavailable

ROOT = Path(__file__).resolve().parents[3]
IMAGE = "localhost/datatier-test/datatier:latest"
BUILDER = "localhost/datatier-test/datatier-builder:latest"
DB = "image_db"
POLICY = "image-primary"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def podman(*args: str, timeout: float = 900, check: bool = True) -> Any:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} failed: {result.stderr[-2000:]}")
    return result


def base_image() -> str:
    chosen = os.environ.get("DATATIER_TEST_DEPLOY_BASE")
    if chosen:
        return chosen
    ref = images.base_ref()
    engine = Engine()
    try:
        if not images.present(engine.client, ref):
            unavailable(f"no Debian base image {ref}: run `make images`")
    finally:
        engine.close()
    return ref


def host_pip(tmp: Path) -> list[str]:
    """podman build volumes that make pip in the build trust the host's CA bundle."""
    if not HOST_CA.exists():
        return []
    conf = tmp / "pip.conf"
    conf.write_text("[global]\ncert = /etc/ssl/datatier-host-ca.crt\n")
    return ["-v", f"{HOST_CA}:/etc/ssl/datatier-host-ca.crt:ro", "-v", f"{conf}:/etc/pip.conf:ro"]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image from a fresh `deploy render docker`, built with podman (layers cached)."""
    if shutil.which("podman") is None:
        unavailable("podman is not installed (`make podman`)")
    tmp = tmp_path_factory.mktemp("image")
    assert main(["deploy", "render", "docker", "--output-dir", str(tmp)]) == 0
    dockerfile = str(tmp / "Dockerfile")
    common = ["--network", "host", "-f", dockerfile, "--build-arg", f"BASE_IMAGE={base_image()}"]
    podman("build", "--target", "builder", *host_pip(tmp), *common, "-t", BUILDER, str(ROOT))
    podman("build", *common, "-t", IMAGE, str(ROOT))
    return IMAGE


def run(image: str, *args: str, entrypoint: str | None = None, **kw: Any) -> Any:
    extra = ["--entrypoint", entrypoint] if entrypoint else []
    return podman("run", "--rm", "--network", "host", *extra, image, *args, **kw)


def test_image_runs_datatier_as_a_non_root_user(image: str) -> None:
    help_text = run(image).stdout
    assert "Usage: datatier" in help_text and "backup" in help_text
    assert run(image, "-u", entrypoint="id").stdout.strip() == str(UID)
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    assert inspected["Entrypoint"] == ["datatier"]
    assert inspected["User"] == f"{UID}:{UID}"


def test_runtime_stage_has_the_client_tools_and_no_build_tools(image: str) -> None:
    script = (
        "for p in mariadb mariadb-dump mariadb-binlog zstd python3 datatier gcc cc; do "
        'printf "%s=%s\\n" "$p" "$(command -v $p || echo none)"; done; '
        "ls /usr/include/mariadb/mysql.h 2>/dev/null || echo headers=none; "
        "ls /etc/pip.conf /etc/ssl/datatier-host-ca.crt 2>/dev/null || echo host=none"
    )
    found = dict(
        line.split("=", 1) for line in run(image, "-c", script, entrypoint="sh").stdout.split()
    )
    for tool in ("mariadb", "mariadb-dump", "mariadb-binlog", "zstd", "python3", "datatier"):
        assert found[tool] != "none", f"{tool} missing from the runtime image"
    assert found["gcc"] == found["cc"] == "none", "build tools leaked into the runtime image"
    assert found["headers"] == "none", "C headers leaked into the runtime image"
    assert found["host"] == "none", "the build host's pip settings leaked into the image"
    assert found["datatier"] == "/opt/datatier/bin/datatier"


@pytest.fixture
def primary_data(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (DB, f"{DB}_restored"):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v VARCHAR(40), d DECIMAL(9,2))")
        cur.execute(
            f"INSERT INTO {DB}.t SELECT seq, CONCAT('row ', seq, ' ☕'), seq / 7 "
            f"FROM {DB}.seq_1_to_5000"
        )
    sandbox.write_policy(
        POLICY,
        f'engine = "mysql"\nschedule = "0 4 * * *"\n\n[source]\nnode = "primary"\n'
        f'databases = ["{DB}"]\n\n[retention]\nkeep_last = 3\n',
    )
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (DB, f"{DB}_restored"):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
    (sandbox.root / "backups" / f"{POLICY}.toml").unlink()


def configmap_dir(sandbox: SandboxHandle, into: Path) -> dict[str, str]:
    """The ConfigMap as the CronJob mounts it (datatier.toml without the secret files,
    backups/POLICY.toml) and the Secret's keys, from the sandbox's own config."""
    doc = tomllib.loads(sandbox.config_path.read_text())

    def strip(table: dict[str, Any]) -> dict[str, Any]:
        return {
            k: strip(v) if isinstance(v, dict) else v
            for k, v in table.items()
            if not k.endswith("_file")
        }

    (into / "backups").mkdir(parents=True)
    (into / "datatier.toml").write_text(dumps_toml(strip(doc)))
    shutil.copy(sandbox.root / "backups" / f"{POLICY}.toml", into / "backups")
    cfg = sandbox.config
    return {
        "mysql-password": cfg.mysql.password.reveal(),
        "s3-access-key-id": cfg.s3.access_key_id.reveal(),
        "s3-secret-access-key": cfg.s3.secret_access_key.reveal(),
    }


def cronjob_container(sandbox: SandboxHandle, image: str, out: Path) -> dict[str, Any]:
    args = ["--config", str(sandbox.config_path), "deploy", "render", "k8s"]
    assert main([*args, "--image", image, "--output-dir", str(out)]) == 0
    docs = list(yaml.safe_load_all((out / "k8s" / "cronjobs.yaml").read_text()))
    (job,) = [d for d in docs if d["metadata"]["labels"]["datatier/policy"] == POLICY]
    container: dict[str, Any] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def test_cronjob_spec_fits_the_image_and_its_backup_restores(
    sandbox: SandboxHandle, primary_data: None, image: str, tmp_path: Path
) -> None:
    container = cronjob_container(sandbox, image, tmp_path / "render")
    config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    image_env = dict(e.split("=", 1) for e in config["Env"])
    # runAsNonRoot can only be enforced with a numeric non-zero image user.
    assert container["securityContext"]["runAsNonRoot"] is True
    assert config["User"].split(":")[0].isdigit() and int(config["User"].split(":")[0]) != 0
    env = {e["name"]: e for e in container["env"]}
    assert env["DATATIER_CONFIG"]["value"] == image_env["DATATIER_CONFIG"]
    (mount,) = container["volumeMounts"]
    assert env["DATATIER_CONFIG"]["value"].startswith(mount["mountPath"] + "/")
    assert env["DATATIER_BACKUP__POLICIES_DIR"]["value"] == mount["mountPath"] + "/backups"
    assert set(SECRET_ENV) <= set(env)
    # The command overrides the entrypoint: it must exist in the image, and find datatier.
    assert run(image, "-x", container["command"][0], entrypoint="test", check=False).returncode == 0

    # Run the CronJob's container as Kubernetes would: its command and args, its env (Secret
    # keys resolved, optional ones absent), the ConfigMap read-only at its mount path.
    cm = tmp_path / "configmap"
    secret = configmap_dir(sandbox, cm)
    flags = ["-v", f"{cm}:{mount['mountPath']}:ro", "--user", str(UID)]
    for name, spec in env.items():
        if "value" in spec:
            flags += ["-e", f"{name}={spec['value']}"]
        elif spec["valueFrom"]["secretKeyRef"]["key"] in secret:
            flags += ["-e", f"{name}={secret[spec['valueFrom']['secretKeyRef']['key']]}"]
    entrypoint = json.dumps(container["command"])
    job = podman(
        "run", "--rm", "--network", "host", *flags, "--entrypoint", entrypoint, image,
        *container["args"], check=False,
    )  # fmt: skip
    assert job.returncode == 0, job.stderr[-3000:]
    assert "backup.done" in job.stderr or "backup" in job.stdout

    listed = podman("run", "--rm", "--network", "host", *flags, image, "backups", "list", POLICY,
                    "--json")  # fmt: skip
    (backup,) = json.loads(listed.stdout)["backups"]
    assert backup["state"] == "complete"
    restored = podman(
        "run", "--rm", "--network", "host", *flags, image, "restore", backup["id"],
        "--rename", f"{DB}={DB}_restored", check=False,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr[-3000:]
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CHECKSUM TABLE {DB}.t, {DB}_restored.t")
        original, copy = (row[1] for row in cur.fetchall())
        cur.execute(f"SELECT COUNT(*) FROM {DB}_restored.t")
        assert cur.fetchone()[0] == 5000
    assert original == copy and original is not None
