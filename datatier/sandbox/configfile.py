"""Write ``DIR/datatier.toml``: a complete config pointing at the sandbox's servers.

Secrets are referenced through ``*_file`` keys (``secrets/`` beside the file), never inlined.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datatier.typedtoml import dumps_toml

CONFIG_NAME = "datatier.toml"


def render_config(services: Mapping[str, Any]) -> str:
    """The sandbox config for ``services`` (the supervisor's name -> service map)."""
    s3 = services["s3"]
    mongo, mongo2 = services["mongo"], services["mongo2"]
    nodes = {
        name: {"host": svc.host, "port": svc.port, "role": svc.role}
        for name, svc in services.items()
        if svc.kind == "mariadb"
    }
    doc: dict[str, Any] = {
        "log": {"level": "info", "format": "auto"},
        "mysql": {
            "user": services["primary"].user,
            "password_file": "secrets/mysql_password",
            "replication_user": services["primary"].repl_user,
            "replication_password_file": "secrets/repl_password",
            "nodes": nodes,
        },
        "mongo": {"uri": mongo.uri, "servers": {"mongo2": {"uri": mongo2.uri}}},
        "memcached": {"servers": [f"{services['memcached'].host}:{services['memcached'].port}"]},
        "s3": {
            "endpoint_url": s3.endpoint_url,
            "region": "us-east-1",
            "access_key_id_file": "secrets/s3_access_key_id",
            "secret_access_key_file": "secrets/s3_secret_access_key",
        },
        "backup": {"policies_dir": "backups", "default_store": f"s3://{s3.bucket}/sandbox"},
    }
    header = "# Written by `datatier sandbox up`: the local sandbox of real servers.\n\n"
    return header + dumps_toml(doc)


SANDBOX_POLICIES = {
    "sandbox-mysql.toml": """\
# Written by `datatier sandbox up`: every non-system database of the sandbox primary,
# read from replica1, to the sandbox bucket (the config's backup.default_store).
engine = "mysql"
schedule = "15 2 * * *"
compression_level = 3

[source]
node = "replica1"

[storage]
initial_class = "STANDARD"
archive_class = "GLACIER"
archive_after_days = 30

[retention]
keep_last = 7
keep_daily = 7
keep_weekly = 4
keep_monthly = 6
min_age_days = 1
""",
    "sandbox-mongo.toml": """\
# Written by `datatier sandbox up`: every non-system database of the sandbox's MongoDB
# (the config's [mongo]), raw BSON, to the sandbox bucket.
engine = "mongo"
schedule = "45 2 * * *"

[retention]
keep_last = 7
""",
    "sandbox-mongo2.toml": """\
# Written by `datatier sandbox up`: every non-system database of the sandbox's second
# MongoDB-protocol server (mongo-java-server, a replica set with an oplog: the backup
# captures the oplog written during the dump), raw BSON, to the sandbox bucket.
engine = "mongo"
schedule = "50 2 * * *"

[source]
server = "mongo2"

[retention]
keep_last = 7
""",
}


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_config(root: Path, services: Mapping[str, Any]) -> Path:
    """Write (atomically) and return ``root/datatier.toml``; add the sandbox policies
    under ``root/backups/`` unless they exist (a user's edits are kept)."""
    path = root / CONFIG_NAME
    _write(path, render_config(services))
    policies = root / "backups"
    policies.mkdir(exist_ok=True)
    for name, text in SANDBOX_POLICIES.items():
        if not (policies / name).exists():
            _write(policies / name, text)
    return path
