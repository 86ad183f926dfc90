"""The examples under deploy/ are exactly what `deploy render all` produces from
deploy/example/ (regenerate them with the command in deploy/example/datatier.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from datatier.backup.cron import validate_cron
from datatier.cli import main

ROOT = Path(__file__).resolve().parents[4]
DEPLOY = ROOT / "deploy"
EXAMPLE_CONFIG = DEPLOY / "example" / "datatier.toml"
REGENERATE = "datatier --config deploy/example/datatier.toml deploy render all --output-dir deploy/"


def rendered(tmp_path: Path, *extra: str) -> dict[str, str]:
    out = tmp_path / "out"
    args = ["--config", str(EXAMPLE_CONFIG), "deploy", "render", "all", "--output-dir", str(out)]
    assert main([*args, *extra]) == 0
    return {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}


def test_deploy_examples_are_in_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATATIER_CONFIG", raising=False)
    fresh = rendered(tmp_path)
    committed = {
        str(p.relative_to(DEPLOY)): p.read_text()
        for p in DEPLOY.rglob("*")
        if p.is_file() and "example" not in p.relative_to(DEPLOY).parts
    }
    assert sorted(committed) == sorted(fresh), f"stale or missing files: run {REGENERATE}"
    for name, text in fresh.items():
        assert committed[name] == text, f"deploy/{name} is out of date: run {REGENERATE}"


def test_rendered_artifacts_hold_their_promises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATATIER_CONFIG", raising=False)
    files = rendered(tmp_path, "--image", "registry.example/datatier:1.0")
    # crontab: every job line is 5 valid cron fields, a user, and a flock-guarded command
    jobs = 0
    for line in files["crontab"].splitlines():
        if not line or line.startswith("#"):
            continue
        if "=" in line.split()[0]:
            continue  # NAME=value environment lines
        fields = line.split(None, 6)
        validate_cron(" ".join(fields[:5]))
        assert fields[5] == "datatier"
        assert fields[6].startswith("flock -n /run/lock/datatier-")
        assert "backup run" in fields[6] and "backups prune" in fields[6]
        assert fields[6].endswith(f" 2>&1 | logger -t datatier-{line.split()[-3][9:]} -p cron.info")
        jobs += 1
    assert jobs == 3
    assert "\nCRON_TZ=UTC\n" in files["crontab"] and '\nMAILTO=""\n' in files["crontab"]
    locks = [
        ln.split()[8] for ln in files["crontab"].splitlines() if ln.split()[6:8] == ["flock", "-n"]
    ]
    assert len(set(locks)) == 3, "each policy has its own lock"
    # k8s: YAML that parses; Forbid; secrets only through secretKeyRef
    docs = list(yaml.safe_load_all(files["k8s/cronjobs.yaml"]))
    assert {d["metadata"]["name"] for d in docs} == {
        "datatier-backup-analytics",
        "datatier-backup-app-mongo",
        "datatier-backup-shop",
    }
    for doc in docs:
        assert doc["apiVersion"] == "batch/v1" and doc["kind"] == "CronJob"
        spec = doc["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        validate_cron(spec["schedule"])
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["image"] == "registry.example/datatier:1.0"
        env = {e["name"]: e for e in container["env"]}
        for var in ("DATATIER_MYSQL__PASSWORD", "DATATIER_S3__SECRET_ACCESS_KEY"):
            assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "datatier-secrets"
            assert "value" not in env[var]
        items = {i["path"] for i in pod["volumes"][0]["configMap"]["items"]}
        assert "datatier.toml" in items and "backups/shop.toml" in items
    # k8s always-on: heartbeat and health Deployments probed on /health, a Service
    always = list(yaml.safe_load_all(files["k8s/always-on.yaml"]))
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in always}
    assert set(kinds) == {
        ("Deployment", "datatier-heartbeat"),
        ("Deployment", "datatier-health"),
        ("Service", "datatier-health"),
    }
    heartbeat = kinds[("Deployment", "datatier-heartbeat")]["spec"]
    assert heartbeat["replicas"] == 1 and heartbeat["strategy"] == {"type": "Recreate"}
    for name in ("datatier-heartbeat", "datatier-health"):
        container = kinds[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] == "/health"
            assert container[probe]["httpGet"]["port"] in [
                p["containerPort"] for p in container["ports"]
            ]
    args = kinds[("Deployment", "datatier-heartbeat")]["spec"]["template"]["spec"]
    assert "--heartbeat" in args["containers"][0]["args"]
    health = kinds[("Deployment", "datatier-health")]["spec"]["template"]["spec"]["containers"][0]
    assert health["args"][:2] == ["health", "serve"]
    assert [a for a in health["args"] if "=" in a] == [
        "0.0.0.0:8008=db1",
        "0.0.0.0:8009=db2",
        "0.0.0.0:8010=db3",
    ]
    service_ports = [p["port"] for p in kinds[("Service", "datatier-health")]["spec"]["ports"]]
    assert service_ports == [8008, 8009, 8010]
    # systemd: a oneshot service and a timer per policy, always-on units, OnFailure= notify
    assert sum(name.startswith("systemd/") and name.endswith(".timer") for name in files) == 3
    shop = files["systemd/datatier-backup-shop.service"]
    assert "Type=oneshot" in shop and "ExecStart=/usr/local/bin/datatier backup run shop" in shop
    assert "OnCalendar=*-*-* 02:15:00 UTC" in files["systemd/datatier-backup-shop.timer"]
    for unit in ("datatier-backup-shop", "datatier-heartbeat", "datatier-health"):
        assert "\nOnFailure=datatier-notify@%n.service\n" in files[f"systemd/{unit}.service"]
    for unit in ("datatier-heartbeat", "datatier-health"):
        assert "\nRestart=always\n" in files[f"systemd/{unit}.service"]
    assert "--listen 127.0.0.1:8009=db2" in files["systemd/datatier-health.service"]
    assert "--listen 127.0.0.1:8009=db2" in files["haproxy.cfg"]  # the same ports
    assert "notify send --unit %i" in files["systemd/datatier-notify@.service"]
    # Dockerfile: multi-stage on a base given as a build arg; build tools and C headers only
    # in the builder; every COPY source exists in the repository; exec-form entrypoint
    docker = files["Dockerfile"].splitlines()
    assert next(ln for ln in docker if not ln.startswith("#")).startswith("ARG BASE_IMAGE=")
    stages = [i for i, ln in enumerate(docker) if ln.startswith("FROM ")]
    assert [docker[i] for i in stages] == ["FROM ${BASE_IMAGE} AS builder", "FROM ${BASE_IMAGE}"]
    builder, runtime = docker[stages[0] : stages[1]], docker[stages[1] :]
    assert any("build-essential" in ln and "libmariadb-dev" in ln for ln in builder)
    assert not any("build-essential" in ln or "-dev" in ln for ln in runtime)
    assert any("mariadb-client" in ln and "zstd" in ln for ln in runtime)
    assert "COPY --from=builder /opt/datatier /opt/datatier" in runtime
    for line in builder:
        if line.startswith("COPY "):
            assert (ROOT / line.split()[1]).exists(), line
    assert 'ENTRYPOINT ["datatier"]' in runtime and "USER 10001:10001" in runtime
