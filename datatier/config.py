"""datatier's typed configuration: a TOML file plus ``DATATIER_SECTION__KEY`` env overrides.

Where the file comes from, in order: ``--config PATH``, ``$DATATIER_CONFIG``, ``./datatier.toml``;
with none of them, the built-in defaults apply. Environment overrides use ``__`` between
levels, e.g. ``DATATIER_MYSQL__NODES__PRIMARY__PORT=3307`` or ``DATATIER_S3__SECRET_ACCESS_KEY``.
Any invalid value raises :class:`~datatier.errors.ConfigError` (exit 2) naming the file or
variable, the key and the problem; nothing is half-applied.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from datatier.errors import ConfigError, UsageError
from datatier.typedtoml import (
    Binder,
    Secret,
    coerce_env,
    field_type_at,
    option,
    read_toml,
    required,
)

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["auto", "json", "console"]
Role = Literal["primary", "replica"]
"""A MySQL node's part in the topology."""
RoutePolicy = Literal["least_lag", "round_robin"]

ENV_PREFIX = "DATATIER_"
ENV_CONFIG = "DATATIER_CONFIG"
DEFAULT_FILE = "datatier.toml"


@dataclass(frozen=True)
class LogSettings:
    """``[log]``: verbosity and format of datatier's own log lines (stderr)."""

    level: LogLevel = "info"
    format: LogFormat = "auto"


NODE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
NODE_HOST = re.compile(r"[A-Za-z0-9_.:%-]{1,253}|\[[0-9A-Fa-f:.%A-Za-z-]{2,64}\]")


@dataclass(frozen=True)
class MySQLNode:
    """``[mysql.nodes.NAME]``: one MySQL/MariaDB server of the topology."""

    host: str = "127.0.0.1"
    port: int = option(3306, min=1)
    role: Role = "replica"


@dataclass(frozen=True)
class MySQLSettings:
    """``[mysql]``: credentials and the primary/replica topology."""

    user: str = "datatier"
    password: Secret = field(default_factory=Secret)
    replication_user: str = "repl"
    replication_password: Secret = field(default_factory=Secret)
    connect_timeout: float = option(5.0, min=0.1)
    nodes: dict[str, MySQLNode] = option({})
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    ssl_verify_server_cert: bool = True

    @property
    def tls(self) -> bool:
        """Whether connections use TLS (``ssl_ca`` or ``ssl_cert`` is set)."""
        return bool(self.ssl_ca or self.ssl_cert)

    def primary(self) -> tuple[str, MySQLNode] | None:
        """The one node whose role is ``primary``, if configured."""
        return next(((n, node) for n, node in self.nodes.items() if node.role == "primary"), None)

    def replicas(self) -> dict[str, MySQLNode]:
        """Every node whose role is ``replica``, by name."""
        return {n: node for n, node in self.nodes.items() if node.role == "replica"}


DEFAULT_MONGO_SERVER = "default"


@dataclass(frozen=True)
class MongoServer:
    """How to reach one MongoDB deployment. The password goes in ``password`` (env or
    file), never inside ``uri``."""

    uri: str = required()
    username: str | None = None
    password: Secret = field(default_factory=Secret)
    server_selection_timeout: float = option(5.0, min=0.1)


@dataclass(frozen=True)
class MongoSettings:
    """``[mongo]``: the default MongoDB deployment (its own keys) and further named ones in
    ``[mongo.servers.NAME]`` (same keys). A Mongo policy picks one with ``source.server``
    and ``restore --target NAME`` restores into one; ``default`` names ``[mongo]`` itself."""

    uri: str = "mongodb://127.0.0.1:27017/"
    username: str | None = None
    password: Secret = field(default_factory=Secret)
    server_selection_timeout: float = option(5.0, min=0.1)
    servers: dict[str, MongoServer] = option({})

    def server(self, name: str | None = None) -> MongoServer:
        """The deployment called ``name`` (None or ``default``: ``[mongo]`` itself);
        UsageError naming the known ones when there is none of that name."""
        if name is None or name == DEFAULT_MONGO_SERVER:
            return MongoServer(
                uri=self.uri,
                username=self.username,
                password=self.password,
                server_selection_timeout=self.server_selection_timeout,
            )
        if name not in self.servers:
            known = ", ".join([DEFAULT_MONGO_SERVER, *sorted(self.servers)])
            raise UsageError(
                f"no MongoDB server {name!r} in [mongo.servers]", hint=f"known: {known}"
            )
        return self.servers[name]


@dataclass(frozen=True)
class MemcachedSettings:
    """``[memcached]``: the cache nodes, as ``host:port``."""

    servers: list[str] = option([])
    timeout: float = option(2.0, min=0.05)


@dataclass(frozen=True)
class S3Settings:
    """``[s3]``: how to reach S3 or an S3-compatible server (endpoint_url for non-AWS).

    ``connect_timeout`` and ``read_timeout`` bound each attempt of a request (seconds);
    ``max_attempts`` counts the first. Read-only commands (listing, inspecting, a restore's
    lookup of its backup) give up on a request within ``lookup_timeout`` instead: at most 3
    attempts, their timeouts cut to fit. Uploads and downloads never use the bound.
    """

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: Secret = field(default_factory=Secret)
    secret_access_key: Secret = field(default_factory=Secret)
    max_attempts: int = option(8, min=1)
    part_size_mb: int = option(16, min=5)
    max_concurrency: int = option(4, min=1)
    connect_timeout: float = option(10.0, min=0.1)
    read_timeout: float = option(60.0, min=0.1)
    lookup_timeout: float = option(60.0, min=1.0)
    encryption: str = option("auto", choices=("auto", "AES256", "aws:kms", "none"))
    kms_key_id: str | None = None
    ca_bundle: str | None = None


@dataclass(frozen=True)
class BackupSettings:
    """``[backup]``: where policies live and the store used when a policy names none."""

    policies_dir: str = "backups"
    default_store: str = "file:///var/backups/datatier"


@dataclass(frozen=True)
class BinlogSettings:
    """``[binlog]``: continuous binlog archiving for point-in-time recovery.

    The archive lives under ``POLICY/_binlogs/`` in the store of ``policy`` (a ``mysql`` or
    ``mariabackup`` policy; default: the only ``mysql`` policy, else the only
    ``mariabackup`` one), with that policy's storage classes, tags and retention. ``node``
    pins the source (a replica with ``log_slave_updates`` will do); unset, the archiver
    follows the writable primary, across failovers. The archive never trails the server by
    more than ``max_archive_lag`` seconds: a partial segment is uploaded once its oldest
    event is half that old. ``server_id`` is the replica ID the archiver announces.
    """

    policy: str | None = None
    node: str | None = None
    max_archive_lag: float = option(60.0, min=1.0)
    segment_mb: int = option(16, min=1)
    server_id: int = option(4290000001, min=1)

    def __post_init__(self) -> None:
        if self.server_id >= 1 << 32:
            raise ConfigError("config", "binlog.server_id", "must be below 4294967296")


@dataclass(frozen=True)
class EncryptionSettings:
    """``[encryption]``: client-side age encryption of every backup object.

    ``recipients`` are age X25519 public keys (``age1...``); new objects are encrypted to
    all of them, so any one private key opens them (keep a second one offline). With
    recipients set, every policy encrypts unless it says ``encrypt = false``.
    ``identity`` holds the private key(s) restores decrypt with: an age identity file
    (``AGE-SECRET-KEY-1...`` lines, several allowed: old keys open old backups), given by
    ``identity_file`` or ``DATATIER_ENCRYPTION__IDENTITY``, never in the config file. Hosts
    that only take backups need no identity.
    """

    recipients: list[str] = option([])
    identity: Secret = field(default_factory=Secret)


@dataclass(frozen=True)
class HealthSettings:
    """``[health]``: the replica monitor, the heartbeat writer and the health HTTP endpoint.

    A replica counts as lagging above ``replica_max_lag`` seconds of heartbeat lag (the
    default for ``/replica`` without ``?lag=``) and is readmitted only once its lag is at
    or below ``readmit_ratio`` times that threshold. Measurements older than
    ``stale_intervals`` monitor intervals (plus ``check_timeout``) count as unhealthy.
    ``lag_thresholds`` are further thresholds clients ask for with ``/replica?lag=`` (e.g.
    HAProxy's); their hysteresis is always tracked, whatever other clients ask. A client
    connection idle or half-sent for ``client_timeout`` seconds is closed. Backup metrics
    are read from the stores every ``backup_metrics_interval`` seconds (0: not exported).
    """

    listen: str = "127.0.0.1:8008"
    interval: float = option(1.0, min=0.05)
    check_timeout: float = option(2.0, min=0.1)
    stale_intervals: float = option(3.0, min=1.0)
    replica_max_lag: float = option(2.0, min=0.0)
    readmit_ratio: float = option(0.5, min=0.0)
    heartbeat_interval: float = option(0.5, min=0.05)
    lag_thresholds: list[float] = option([])
    client_timeout: float = option(10.0, min=0.05)
    backup_metrics_interval: float = option(300.0, min=0.0)

    @property
    def heartbeat_stale_after(self) -> float:
        """A newest heartbeat older than this means the writer stopped (3 beats + 1 s)."""
        return 3 * self.heartbeat_interval + 1.0

    def __post_init__(self) -> None:
        if self.readmit_ratio > 1.0:
            raise ConfigError(
                "config", "health.readmit_ratio", f"{self.readmit_ratio!r} is above 1.0"
            )
        for i, limit in enumerate(self.lag_thresholds):
            if not 0.0 <= limit <= 86_400.0:
                raise ConfigError(
                    "config", f"health.lag_thresholds[{i}]", f"{limit!r} is not 0-86400 s"
                )


@dataclass(frozen=True)
class NotifySettings:
    """``[notify]``: who hears about a failed job (backup, prune, verify, archive, check).

    ``command`` is run (split like a shell would, no shell) with the event as JSON on stdin;
    ``webhook_url`` gets the event POSTed as JSON (a secret: chat webhooks carry their token
    in the URL, so give it by environment or ``webhook_url_file``). Each attempt is bounded
    by ``timeout`` seconds; a webhook is retried ``retries`` times with backoff. A failed
    notification is logged and never changes the job's exit code.
    """

    command: str | None = None
    webhook_url: Secret = field(default_factory=Secret)
    timeout: float = option(10.0, min=0.1)
    retries: int = option(2, min=0)


@dataclass(frozen=True)
class RouterSettings:
    """``[router]``: the application-side read/write router (``datatier.routing.open``) and
    its per-node connection pools. Reads default to ``health.replica_max_lag``."""

    pool_size: int = option(5, min=1)
    max_overflow: int = option(10, min=0)
    pool_timeout: float = option(5.0, min=0.0)
    recycle: float = option(3600.0, min=1.0)
    pre_ping_after: float = option(1.0, min=0.0)
    policy: RoutePolicy = "least_lag"
    fallback_to_primary: bool = False
    database: str | None = None


@dataclass(frozen=True)
class CacheSettings:
    """``[cache]``: where warm sets live and which replica the warmer reads from."""

    warm_sets_dir: str = "schemas/cache"
    source_node: str | None = None
    max_replica_lag: float = option(30.0, min=0.0)


@dataclass(frozen=True)
class RethinkDBSettings:
    """``[rethinkdb]``: the migration target (``datatier migrate``)."""

    host: str = "127.0.0.1"
    port: int = option(28015, min=1)
    db: str = "migrated"
    user: str = "admin"
    password: Secret = field(default_factory=Secret)
    timeout: float = option(5.0, min=0.1)
    mappings_dir: str = "schemas/rethinkdb"


@dataclass(frozen=True)
class ProvisionSettings:
    """``[provision]``: schema locations and bucket defaults for ``datatier provision``."""

    mysql_schemas_dir: str = "schemas/mysql"
    mongo_schemas_dir: str = "schemas/mongo"
    encryption: str = option("AES256", choices=("AES256", "aws:kms"))
    kms_key_id: str | None = None


@dataclass(frozen=True)
class Config:
    """The whole configuration. ``source`` says where it came from; ``base_dir`` anchors paths."""

    log: LogSettings = field(default_factory=LogSettings)
    mysql: MySQLSettings = field(default_factory=MySQLSettings)
    mongo: MongoSettings = field(default_factory=MongoSettings)
    memcached: MemcachedSettings = field(default_factory=MemcachedSettings)
    s3: S3Settings = field(default_factory=S3Settings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    binlog: BinlogSettings = field(default_factory=BinlogSettings)
    encryption: EncryptionSettings = field(default_factory=EncryptionSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    rethinkdb: RethinkDBSettings = field(default_factory=RethinkDBSettings)
    provision: ProvisionSettings = field(default_factory=ProvisionSettings)

    def secrets(self) -> list[str]:
        """Every secret value, for log redaction (access key IDs are identifiers, not
        secrets: they stay out of ``config show`` but are not scrubbed from logs)."""
        found = [
            self.mysql.password,
            self.mysql.replication_password,
            self.mongo.password,
            *(server.password for server in self.mongo.servers.values()),
            self.s3.secret_access_key,
            self.rethinkdb.password,
            self.notify.webhook_url,
        ]
        keys = [  # an identity file's keys, not its comments (they name public keys)
            word
            for line in self.encryption.identity.reveal().splitlines()
            if not line.lstrip().startswith("#")
            for word in line.split()
        ]
        return [s.reveal() for s in found if s] + keys


@dataclass(frozen=True)
class LoadedConfig:
    """A validated :class:`Config` plus where it came from."""

    config: Config
    source: str
    base_dir: Path

    def resolve(self, value: str) -> Path:
        """A path from the configuration: absolute as given, else relative to the config
        file's directory."""
        path = Path(value)
        return path if path.is_absolute() else self.base_dir / path


def split_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port), the one parser of host and
    port forms given in the config or on the command line; ValueError saying what is wrong
    (no port, an empty host, a port that is not a number from 1 to 65535)."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host:
        raise ValueError(f"{text!r} is not HOST:PORT")
    if not port.isascii() or not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT: the port {port!r} is not a number")
    if not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT: port {int(port)} is out of range (1-65535)")
    return host, int(port)


def resolve_path(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """Which config file applies (see module docstring); None means defaults only."""
    if explicit:
        return Path(explicit)
    if environ.get(ENV_CONFIG):
        return Path(environ[ENV_CONFIG])
    local = Path(DEFAULT_FILE)
    return local if local.is_file() else None


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[str, list[str], Any]]:
    """Parse ``DATATIER_A__B=...`` variables into (variable, key path, typed value)."""
    found = []
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if not all(path):
            raise ConfigError(f"environment {name}", None, "empty key segment")
        try:
            tp = field_type_at(Config, path)
        except KeyError as exc:
            raise ConfigError(
                f"environment {name}", ".".join(path), f"unknown key {exc.args[0]!r}"
            ) from None
        try:
            value = coerce_env(tp, text)
        except ValueError as exc:
            raise ConfigError(f"environment {name}", ".".join(path), str(exc)) from None
        found.append((name, path, value))
    given = {tuple(path): name for name, path, _ in found}
    for name, path, _ in found:
        if path[-1].endswith("_file") and (*path[:-1], path[-1][:-5]) in given:
            other = given[(*path[:-1], path[-1][:-5])]
            raise ConfigError(
                f"environment {name}",
                ".".join(path),
                f"{other} is set too: give the secret or its file, not both",
            )
    return found


def _apply(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value
    if path[-1].endswith("_file"):
        node.pop(path[-1].removesuffix("_file"), None)
    else:
        node.pop(f"{path[-1]}_file", None)


def load(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Load, override and validate the configuration (see module docstring)."""
    env = os.environ if environ is None else environ
    path = resolve_path(explicit, env)
    data: dict[str, Any] = read_toml(path, "config file") if path else {}
    source = str(path) if path else "built-in defaults"
    base_dir = path.resolve().parent if path else Path.cwd()
    overrides = _env_overrides(env)
    if not overrides:
        config = Binder(source, base_dir).bind(Config, data)
        return LoadedConfig(_check(_anchor(config, base_dir), source), source, base_dir)
    # Validate the file on its own first, so an error names the file, not the env.
    Binder(source, base_dir).bind(Config, data)
    for _, key_path, value in overrides:
        _apply(data, key_path, value)
    names = ", ".join(name for name, _, _ in overrides)
    merged_source = f"{source} + environment ({names})"
    config = Binder(merged_source, base_dir).bind(Config, data)
    return LoadedConfig(_check(_anchor(config, base_dir), merged_source), merged_source, base_dir)


def _anchor(config: Config, base_dir: Path) -> Config:
    """File paths of TLS settings, relative to the config file's directory."""

    def path(value: str | None) -> str | None:
        return value if value is None or Path(value).is_absolute() else str(base_dir / value)

    mysql, s3 = config.mysql, config.s3
    return replace(
        config,
        mysql=replace(
            mysql,
            ssl_ca=path(mysql.ssl_ca),
            ssl_cert=path(mysql.ssl_cert),
            ssl_key=path(mysql.ssl_key),
        ),
        s3=replace(s3, ca_bundle=path(s3.ca_bundle)),
    )


def _check(config: Config, source: str) -> Config:
    """Cross-field rules the schema cannot express."""
    mongo_uris = {"mongo": config.mongo.uri}
    mongo_uris.update({f"mongo.servers.{n}": s.uri for n, s in config.mongo.servers.items()})
    for key, uri in mongo_uris.items():
        if urlsplit(uri).password is not None:
            raise ConfigError(
                source, f"{key}.uri", "the URI holds a password", hint=f"use {key}.password_file"
            )
    if DEFAULT_MONGO_SERVER in config.mongo.servers:
        raise ConfigError(
            source,
            f"mongo.servers.{DEFAULT_MONGO_SERVER}",
            f"{DEFAULT_MONGO_SERVER!r} names [mongo] itself",
            hint="pick another name",
        )
    for name, node in config.mysql.nodes.items():
        # Names and hosts go verbatim into haproxy.cfg lines, --listen specs, URLs and
        # metric labels: a space or '#' there would render an unchecked HAProxy server.
        if not NODE_NAME.fullmatch(name):
            raise ConfigError(
                source,
                f"mysql.nodes.{name!r}",
                "a node name is letters, digits, '_', '.' or '-' (at most 64, no spaces)",
            )
        if not NODE_HOST.fullmatch(node.host):
            raise ConfigError(
                source,
                f"mysql.nodes.{name}.host",
                f"{node.host!r} is not a host name or IP address",
            )
    primaries = [n for n, node in config.mysql.nodes.items() if node.role == "primary"]
    if len(primaries) > 1:
        raise ConfigError(
            source, "mysql.nodes", f"more than one primary: {', '.join(sorted(primaries))}"
        )
    mysql = config.mysql
    if mysql.ssl_verify_server_cert and mysql.tls and not mysql.ssl_ca:
        raise ConfigError(
            source,
            "mysql.ssl_verify_server_cert",
            "verifying the server certificate needs mysql.ssl_ca",
            hint="set mysql.ssl_ca, or ssl_verify_server_cert = false",
        )
    if bool(mysql.ssl_cert) != bool(mysql.ssl_key):
        raise ConfigError(source, "mysql.ssl_key", "ssl_cert and ssl_key go together")
    for i, key in enumerate(config.encryption.recipients):
        # lazy: the age code (cryptography) costs ~17 ms to import, paid by configs without
        # recipients too
        from datatier.pipeline.encrypt import parse_recipients

        try:
            parse_recipients([key])
        except ValueError:
            private = key.strip().upper().startswith("AGE-SECRET-KEY-")
            raise ConfigError(
                source,
                f"encryption.recipients[{i}]",
                "is a private key (AGE-SECRET-KEY-1...), not a public key: never quoted; "
                "remove it from wherever it was written"
                if private
                else f"{key!r} is not an age X25519 public key",
                hint="age-keygen -y KEYFILE prints the public key (age1...) of a key",
            ) from None
    if len(set(config.encryption.recipients)) != len(config.encryption.recipients):
        raise ConfigError(source, "encryption.recipients", "a recipient is listed twice")
    if config.s3.encryption == "AES256" and config.s3.kms_key_id:
        raise ConfigError(source, "s3.kms_key_id", "a KMS key needs encryption = aws:kms")
    for i, server in enumerate(config.memcached.servers):
        try:
            split_host_port(server)
        except ValueError as exc:
            raise ConfigError(source, f"memcached.servers[{i}]", str(exc)) from None
    return config
