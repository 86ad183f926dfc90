"""The rendered HAProxy config and the per-node listener syntax (no servers).

``haproxy -c`` validates the rendered text when Debian's haproxy is installed; the
integration suite runs it for real in front of the sandbox.
"""

from __future__ import annotations

import pytest

from datatier.config import MySQLNode, MySQLSettings
from datatier.errors import UsageError
from datatier.provision.artifacts.haproxy_config import HAProxyLayout, render_haproxy
from datatier.replication.health import parse_listen

MYSQL = MySQLSettings(
    nodes={
        "db1": MySQLNode(host="10.0.0.1", port=3306, role="primary"),
        "db2": MySQLNode(host="10.0.0.2", port=3306),
        "db3": MySQLNode(host="10.0.0.3", port=3306),
    }
)
LAYOUT = HAProxyLayout(
    write_bind="127.0.0.1:4406",
    read_bind="127.0.0.1:4407",
    health_ports={"db1": 8101, "db2": 8102, "db3": 8103},
    health_host="10.0.0.9",
    max_lag="500ms",
)


def test_render_routes_by_endpoint() -> None:
    text = render_haproxy(MYSQL, LAYOUT)
    write, read = text.split("listen mysql-write")[1].split("listen mysql-read")
    assert "http-check send meth GET uri /primary" in write
    for node, port in (("db1", 8101), ("db2", 8102), ("db3", 8103)):
        assert f"check addr 10.0.0.9 port {port}" in write
        assert f"server {node} 10.0.0.{node[-1]}:3306" in write
    assert "http-check send meth GET uri /replica?lag=500ms" in read
    assert "server db2 10.0.0.2:3306 check addr 10.0.0.9 port 8102" in read
    assert "server db1 10.0.0.1:3306 backup" in read
    assert "inter 1000ms fall 2 rise 3 on-marked-down shutdown-sessions" in read


def test_render_refuses_incomplete_layouts() -> None:
    with pytest.raises(UsageError, match="no health port for node"):
        render_haproxy(MYSQL, HAProxyLayout("a:1", "a:2", {"db1": 1}))
    only_primary = MySQLSettings(nodes={"db1": MySQLNode(role="primary")})
    with pytest.raises(UsageError, match="at least one replica"):
        render_haproxy(only_primary, HAProxyLayout("a:1", "a:2", {"db1": 1}))


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:8008", ("127.0.0.1", 8008, None)),
        ("0.0.0.0:8102=replica1", ("0.0.0.0", 8102, "replica1")),
        ("[::1]:8008", ("::1", 8008, None)),
    ],
)
def test_parse_listen(text: str, parsed: tuple[str, int, str | None]) -> None:
    assert parse_listen(text) == parsed


@pytest.mark.parametrize("text", ["8008", "host:", ":80", "h:99999", "h:80=", "h:x"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_listen(text)
