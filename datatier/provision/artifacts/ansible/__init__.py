"""``deploy render ansible``: a role that puts datatier on the database hosts, and a small
playbook, inventory and group/host variables around it (``ansible/`` of the output).

The role (``ansible/roles/datatier/``) is rendered from the same config and policies as the
other artifacts: its systemd units are :class:`~datatier.provision.artifacts.systemd.
SystemdRenderer`'s, its config is the source config with every secret replaced by a file
written from an Ansible Vault variable (:mod:`.secrets`, :mod:`.config`). It installs
datatier with pip into a virtualenv or runs the image, and the client tools (``age`` when
encryption is on); see :mod:`.tasks`. Refused at render (exit 2), before any file is
written: a policy whose node or MongoDB server the config does not have, a ``file://``
store under ``/tmp`` or ``/var/tmp`` (the units run with ``PrivateTmp=``, so backups there
would vanish with the run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datatier.backup.policy import ANY_REPLICA, Policy
from datatier.errors import ConfigError
from datatier.provision.artifacts.ansible import image, spec, tasks, yamldoc
from datatier.provision.artifacts.ansible.config import config_template
from datatier.provision.artifacts.ansible.layout import Layout
from datatier.provision.artifacts.ansible.secrets import SecretVar, secret_vars
from datatier.provision.artifacts.base import RenderContext, Renderer, need_policies
from datatier.provision.artifacts.systemd import ARCHIVER_UNIT, SystemdRenderer
from datatier.storage.url import parse_store_url

DIR = "ansible"
ROLE = f"{DIR}/roles/datatier"
PRIVATE_TMP = ("/tmp", "/var/tmp")  # noqa: S108 - refused as store locations
HEADER = "# Rendered by `datatier deploy render ansible`.\n"
ALWAYS_ON = (
    ("datatier-heartbeat.service", "datatier_heartbeat"),
    ("datatier-health.service", "datatier_health"),
    (ARCHIVER_UNIT, "datatier_binlog_archiver"),
)


class AnsibleRenderer(Renderer):
    name = "ansible"
    description = "Ansible role (pip or image, config from Vault, systemd units), playbook"

    def render(self, ctx: RenderContext) -> dict[str, str]:
        need_policies(ctx, "the Ansible role")
        doc = ctx.config_doc
        stores = _file_stores(ctx.policies)
        _check_sources(ctx, doc)
        layout = Layout(config_path=ctx.config_path, binary=ctx.binary, user=ctx.user)
        units = {rel.split("/", 1)[1]: text for rel, text in SystemdRenderer().render(ctx).items()}
        secrets = secret_vars(doc)
        encryption = doc.get("encryption", {})
        variables = spec.role_vars(
            policies=[p.name for p in ctx.policies],
            image=ctx.image,
            binlog=bool(ctx.binlog_policy),
            encryption=isinstance(encryption, Mapping) and bool(encryption.get("recipients")),
            secrets=secrets,
        )
        constants = {
            "datatier_policies": [p.name for p in ctx.policies],
            "datatier_units": sorted(units),
            "datatier_always_on": [
                {"unit": unit, "flag": flag} for unit, flag in ALWAYS_ON if unit in units
            ],
            "datatier_secret_files": [{"var": s.var, "file": s.file_name} for s in secrets],
            "datatier_file_stores": stores,
            **tasks.packages(),
        }
        volumes = [f"{s}:{s}" for s in stores] + (
            [f"{ctx.metrics_dir}:{ctx.metrics_dir}"] if ctx.metrics_dir else []
        )
        files = {
            f"{ROLE}/defaults/main.yml": yamldoc.dump(spec.defaults(variables), HEADER),
            f"{ROLE}/meta/argument_specs.yml": yamldoc.dump(spec.argument_specs(variables), HEADER),
            f"{ROLE}/meta/main.yml": yamldoc.dump(spec.meta(), HEADER),
            f"{ROLE}/vars/main.yml": yamldoc.dump(
                constants, HEADER + "# What the role was rendered with: not to be overridden.\n"
            ),
            f"{ROLE}/tasks/main.yml": yamldoc.dump(tasks.tasks(layout), HEADER),
            f"{ROLE}/tasks/stale.yml": yamldoc.dump(tasks.stale_tasks(), HEADER),
            f"{ROLE}/handlers/main.yml": yamldoc.dump(tasks.handlers(), HEADER),
            f"{ROLE}/templates/datatier.toml.j2": config_template(
                doc,
                secrets,
                policies_dir=layout.policies_dir,
                secrets_dir=layout.secrets_dir,
            ),
            f"{ROLE}/templates/datatier-image.sh.j2": image.wrapper(layout, volumes),
            **{f"{ROLE}/files/systemd/{name}": text for name, text in units.items()},
            **{f"{ROLE}/files/backups/{p.name}.toml": p.path.read_text() for p in ctx.policies},
            **_example(ctx, secrets),
        }
        return files


def _file_stores(policies: tuple[Policy, ...]) -> list[str]:
    """The directories of ``file://`` stores (other stores are checked where they are used)."""
    found = []
    for policy in policies:
        if not policy.store_url.lower().startswith("file:"):
            continue
        _, where, _ = parse_store_url(policy.store_url)
        if any(where == tmp or where.startswith(tmp + "/") for tmp in PRIVATE_TMP):
            raise ConfigError(
                str(policy.path),
                "store",
                f"{policy.store_url} is under a private /tmp of the systemd units "
                "(PrivateTmp=): backups there vanish when the run ends",
                hint="use a file:///var/backups/... store or an s3:// one",
            )
        if where not in found:
            found.append(where)
    return found


def _check_sources(ctx: RenderContext, doc: Mapping[str, Any]) -> None:
    """Every node and MongoDB server the policies name is one the config has."""
    mongo = doc.get("mongo", {})
    servers = mongo.get("servers", {}) if isinstance(mongo, Mapping) else {}
    for policy in ctx.policies:
        source = policy.spec.source
        if policy.spec.engine == "mongo":
            if source.server not in (None, "default", *servers):
                known = ", ".join(["default", *servers])
                raise ConfigError(
                    str(policy.path),
                    "source.server",
                    f"unknown MongoDB server {source.server!r}",
                    hint=f"the config has: {known}",
                )
            continue
        for node in source.nodes or [source.node or ANY_REPLICA]:
            if node != ANY_REPLICA and node not in ctx.mysql.nodes:
                known = ", ".join(ctx.mysql.nodes) or "none"
                raise ConfigError(
                    str(policy.path),
                    "source.node",
                    f"unknown node {node!r}: the role cannot place its backups",
                    hint=f"[mysql.nodes] has: {known}",
                )


def _policy_node(ctx: RenderContext, policy: Policy) -> str | None:
    """The node whose host runs ``policy`` in the example: its (first) source node, the
    first replica for ``any-replica``, the primary for Mongo policies."""
    source = policy.spec.source
    node = None if policy.spec.engine == "mongo" else (source.nodes or [source.node or ""])[0]
    if node in ("", ANY_REPLICA):
        node = next(iter(ctx.mysql.replicas()), None)
    if node is None:
        primary = ctx.mysql.primary()
        node = primary[0] if primary else next(iter(ctx.mysql.nodes), None)
    return node


def _example(ctx: RenderContext, secrets: list[SecretVar]) -> dict[str, str]:
    """``site.yml``, ``inventory.ini`` (a host per MySQL node), ``group_vars`` mapping the
    required secrets to Vault variables, ``host_vars`` placing each policy and the
    one-per-tier services (heartbeat, binlog archiver: on the primary's host)."""
    play = [
        {
            "name": "Put datatier on the database hosts",
            "hosts": "datatier",
            "become": True,
            "roles": [{"role": "datatier"}],
        }
    ]
    inventory = [
        "# Rendered by `datatier deploy render ansible`: a host per [mysql.nodes] entry.",
        "[datatier]",
        *(f"{name} ansible_host={node.host}" for name, node in ctx.mysql.nodes.items()),
    ]
    optional = [s for s in secrets if not s.required]
    group_header = HEADER + (
        "# Secrets come from Ansible Vault: create group_vars/datatier/vault.yml with\n"
        "# `ansible-vault create` holding the vault_datatier_* variables named below.\n"
    )
    if optional:
        group_header += "# Optional, map them the same way when used:\n" + "".join(
            f'#   {s.var}: "{{{{ vault_{s.var} }}}}"\n' for s in optional
        )
    group_vars: dict[str, Any] = {s.var: f"{{{{ vault_{s.var} }}}}" for s in secrets if s.required}
    group_vars |= {
        "datatier_backup_policies": [],
        "datatier_heartbeat": False,
        "datatier_binlog_archiver": False,
    }
    hosts: dict[str, dict[str, Any]] = {}
    for policy in ctx.policies:
        node = _policy_node(ctx, policy)
        if node is not None:
            hosts.setdefault(node, {"datatier_backup_policies": []})
            hosts[node]["datatier_backup_policies"].append(policy.name)
    primary = ctx.mysql.primary()
    if primary:
        extra = {"datatier_heartbeat": True}
        if ctx.binlog_policy:
            extra["datatier_binlog_archiver"] = True
        hosts.setdefault(primary[0], {}).update(extra)
    return {
        f"{DIR}/site.yml": yamldoc.dump(play, HEADER),
        f"{DIR}/inventory.ini": "\n".join(inventory) + "\n",
        f"{DIR}/group_vars/datatier/vars.yml": yamldoc.dump(group_vars, group_header),
        **{
            f"{DIR}/host_vars/{name}.yml": yamldoc.dump(values, HEADER)
            for name, values in sorted(hosts.items())
        },
    }
