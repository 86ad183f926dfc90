"""`deploy render haproxy` for the sandbox topology is a config HAProxy itself accepts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from datatier.cli import main
from tests.integration.conftest import SandboxHandle, unavailable


def test_rendered_haproxy_config_validates(
    use_sandbox_config: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        unavailable("haproxy is not installed (Debian package haproxy)")
    out = tmp_path / "haproxy.cfg"
    assert main(["deploy", "render", "haproxy", "--max-lag", "3s", "--output", str(out)]) == 0
    text = out.read_text()
    assert "--listen 127.0.0.1:8008=primary" in text and "=replica2" in text
    assert "/replica?lag=3s" in text and "/primary" in text
    checked = subprocess.run([binary, "-c", "-f", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_render_haproxy_rejects_a_topology_without_replicas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "datatier.toml"
    cfg.write_text('[mysql.nodes.only]\nrole = "primary"\n')
    monkeypatch.setenv("DATATIER_CONFIG", str(cfg))
    assert main(["deploy", "render", "haproxy"]) == 2
    assert "at least one replica" in capsys.readouterr().err


# -- every artifact, validated by the tools that consume them ------------------------------

EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "example" / "datatier.toml"


def test_render_all_validates_with_haproxy_and_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATATIER_CONFIG", raising=False)
    haproxy_bin = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy_bin).exists():
        unavailable("haproxy is not installed (Debian package haproxy)")
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed (Debian package systemd)")
    datatier_bin = shutil.which("datatier") or str(Path(sys.executable).with_name("datatier"))
    out = tmp_path / "deploy"
    args = ["--config", str(EXAMPLE_CONFIG), "deploy", "render", "all"]
    # --binary: systemd-analyze verify checks that ExecStart's program exists
    assert main([*args, "--output-dir", str(out), "--binary", datatier_bin]) == 0
    checked = subprocess.run(
        [haproxy_bin, "-c", "-f", str(out / "haproxy.cfg")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    units = sorted(str(p) for p in (out / "systemd").iterdir())
    # 3 policies x (service, timer), heartbeat, health, notify@, the binlog archiver
    assert len(units) == 10
    archiver = (out / "systemd" / "datatier-binlog-archive.service").read_text()
    assert "Restart=always" in archiver and "binlog archive" in archiver
    verify = subprocess.run([analyze, "verify", *units], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Other hosts may warn about their own units (e.g. a system unit's deprecated key); a
    # complaint about ours names our file or unit.
    names = {Path(u).name for u in units}
    ours = [
        line
        for line in (verify.stdout + verify.stderr).splitlines()
        if any(name in line for name in names)
    ]
    assert ours == [], verify.stdout + verify.stderr
    for timer in (out / "systemd").glob("*.timer"):
        for line in timer.read_text().splitlines():
            if line.startswith("OnCalendar="):
                cal = subprocess.run(
                    [analyze, "calendar", line.split("=", 1)[1]], capture_output=True, text=True
                )
                assert cal.returncode == 0 and "Next elapse" in cal.stdout, cal.stderr


def test_systemd_analyze_rejects_a_broken_unit(tmp_path: Path) -> None:
    """The check above is meaningful: verify fails on a unit whose program is missing."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed (Debian package systemd)")
    unit = tmp_path / "broken.service"
    unit.write_text("[Service]\nType=oneshot\nExecStart=/nonexistent/datatier backup run x\n")
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode != 0


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("0 3 30 2 *", "never runs: day 30 does not exist in Feb"),
        ("61 * * * *", "'61 * * * *' is not a valid schedule"),
    ],
)
def test_an_impossible_schedule_renders_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    schedule: str,
    message: str,
) -> None:
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "shop.toml").write_text(
        f'engine = "mysql"\nschedule = "{schedule}"\n[source]\nnode = "db1"\n'
    )
    cfg = tmp_path / "datatier.toml"
    cfg.write_text('[backup]\ndefault_store = "s3://b/p"\n')
    monkeypatch.setenv("DATATIER_CONFIG", str(cfg))
    out = tmp_path / "out"
    for kind in ("crontab", "systemd", "k8s", "all"):
        assert main(["deploy", "render", kind, "--output-dir", str(out)]) == 2
        err = capsys.readouterr().err
        assert "shop.toml: schedule" in err and message in err
    assert not out.exists(), "nothing was written"


def test_cron_users_schedules_render_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """MON-FRI, @daily and @weekly: cron keeps them as written, systemd gets equivalent
    calendars that systemd-analyze accepts, Kubernetes keeps them; --metrics-dir makes every
    job write its textfile."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed (Debian package systemd)")
    (tmp_path / "backups").mkdir()
    for name, schedule in (
        ("weekdays", "30 1 * * MON-FRI"),
        ("daily", "@daily"),
        ("wk", "@weekly"),
    ):
        (tmp_path / "backups" / f"{name}.toml").write_text(
            f'engine = "mysql"\nschedule = "{schedule}"\n[source]\nnode = "db1"\n'
        )
    cfg = tmp_path / "datatier.toml"
    cfg.write_text(
        '[backup]\ndefault_store = "s3://b/p"\n[mysql.nodes.db1]\nrole = "primary"\n'
        '[mysql.nodes.db2]\nrole = "replica"\n'
    )
    monkeypatch.setenv("DATATIER_CONFIG", str(cfg))
    out = tmp_path / "out"
    args = ["deploy", "render", "all", "--output-dir", str(out), "--metrics-dir", "/var/lib/ne/"]
    assert main([*args, "--binary", str(Path(sys.executable).with_name("datatier"))]) == 0
    crontab = (out / "crontab").read_text()
    assert "\n30 1 * * MON-FRI datatier flock" in crontab and "\n@daily datatier flock" in crontab
    assert "--metrics-file /var/lib/ne/datatier_daily_backup.prom" in crontab
    assert "--metrics-file /var/lib/ne/datatier_daily_prune.prom" in crontab
    timers = {
        name: (out / "systemd" / f"datatier-backup-{name}.timer").read_text()
        for name in ("weekdays", "daily", "wk")
    }
    assert "OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 01:30:00 UTC" in timers["weekdays"]
    assert "OnCalendar=*-*-* 00:00:00 UTC" in timers["daily"]
    assert "OnCalendar=Sun *-*-* 00:00:00 UTC" in timers["wk"]
    for text in timers.values():
        calendar = text.split("OnCalendar=", 1)[1].splitlines()[0]
        checked = subprocess.run([analyze, "calendar", calendar], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
    jobs = yaml.safe_load_all((out / "k8s" / "cronjobs.yaml").read_text())
    schedules = {doc["spec"]["schedule"] for doc in jobs if doc["kind"] == "CronJob"}
    assert {"30 1 * * MON-FRI", "@weekly"} <= schedules
