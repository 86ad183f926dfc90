"""Where an archive lives in a store, and which policy owns it.

Under the owning policy's prefix, beside its backups (``POLICY/BACKUP_ID/``)::

    POLICY/_binlogs/data/SEQ-SERVERID-FILE-START-RUN.binlog.zst   one segment (zstd;
                                                    ``.zst.age`` when the policy encrypts)
    POLICY/_binlogs/index/SEQ.json                            its index record, written after it
    POLICY/_binlogs/archiver.json                             the archiver's last word (lag)

``SEQ`` (12 digits) orders the archive: ``ls`` order is replay order. ``_binlogs`` can never
be a backup ID, so catalogs ignore it; being under ``POLICY/``, the policy's lifecycle rule
moves the segments (tagged ``datatier-kind=data``) to its archive class.
"""

from __future__ import annotations

from datatier.backup.engines import point_in_time
from datatier.backup.policy import Policy, scan_policies
from datatier.backup.service import load_policy, policies_dir
from datatier.config import LoadedConfig
from datatier.errors import ConfigError
from datatier.mysql.sqltext import key_segment

DIRECTORY = "_binlogs"
DATA_TAGS = {"datatier-kind": "data"}
INDEX_TAGS = {"datatier-kind": "binlog-index"}


def archive_prefix(policy: str) -> str:
    return f"{policy}/{DIRECTORY}/"


def index_prefix(policy: str) -> str:
    return f"{archive_prefix(policy)}index/"


def data_prefix(policy: str) -> str:
    return f"{archive_prefix(policy)}data/"


def index_key(policy: str, seq: int) -> str:
    return f"{index_prefix(policy)}{seq:012d}.json"


def state_key(policy: str) -> str:
    return f"{archive_prefix(policy)}archiver.json"


def data_relkey(seq: int, server_id: int, file: str, start: int, run: str) -> str:
    """The segment's key below ``data/``. ``run`` is the archiver run's own token: two
    archivers racing for one SEQ write two objects (the loser's is an orphan prune removes),
    never one over the other's."""
    return f"{seq:012d}-{server_id}-{key_segment(file)}-{start:012d}-{run}.binlog.zst"


def seq_of_index_key(key: str) -> int | None:
    leaf = key.rsplit("/", 1)[-1]
    stem = leaf.removesuffix(".json")
    return int(stem) if leaf.endswith(".json") and stem.isdigit() else None


def archive_policy(loaded: LoadedConfig) -> Policy:
    """The policy owning the binlog archive: ``binlog.policy`` (a ``mysql`` or
    ``mariabackup`` policy), else the only ``mysql`` policy, else (none) the only
    ``mariabackup`` policy."""
    name = loaded.config.binlog.policy
    if name:
        policy = load_policy(loaded, name)
        if not point_in_time(policy.spec.engine):
            raise ConfigError(
                "config", "binlog.policy", f"policy {name!r} is a {policy.spec.engine} policy"
            )
        return policy
    good, broken = scan_policies(policies_dir(loaded), loaded.config.backup.default_store)
    found = [p for p in good if p.spec.engine == "mysql"] or [
        p for p in good if point_in_time(p.spec.engine)
    ]
    if broken:  # it may be a second MySQL policy: "the only one" cannot be told
        raise ConfigError(
            "config",
            "binlog.policy",
            f"not set, and policy file {broken[0].path} does not load, so which policy owns "
            f"the binlog archive cannot be told ({broken[0].error})",
            hint=f"name it in binlog.policy (MySQL policies that load: "
            f"{', '.join(p.name for p in found) or 'none'}), or mend that file",
        )
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise ConfigError(
            "config",
            "binlog.policy",
            f"name the policy that owns the binlog archive (MySQL policies: {names})",
        )
    return found[0]
