"""The role's variables: ``defaults/main.yml``, ``meta/argument_specs.yml`` (checked by
Ansible before the role's first task, so a missing Vault variable or a bad choice changes
nothing) and ``meta/main.yml``, all from one list of :class:`Var`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datatier import __version__
from datatier.provision.artifacts.ansible.secrets import SecretVar


@dataclass(frozen=True)
class Var:
    """One role variable; ``default`` None with ``required`` False: no default (optional)."""

    name: str
    type: str
    description: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    elements: str = ""
    no_log: bool = False

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.elements:
            out["elements"] = self.elements
        if self.choices:
            out["choices"] = list(self.choices)
        if self.required:
            out["required"] = True
        elif self.default is not None:
            out["default"] = self.default
        if self.no_log:
            out["no_log"] = True
        return out


def role_vars(
    *,
    policies: list[str],
    image: str,
    binlog: bool,
    encryption: bool,
    secrets: list[SecretVar],
) -> list[Var]:
    """Every variable of the role, the settable ones with their defaults first."""
    found = [
        Var(
            "datatier_install_method",
            "str",
            "How datatier gets on the host: pip (a virtualenv at /opt/datatier) or image "
            "(podman runs the image built from `deploy render docker`).",
            "pip",
            choices=("pip", "image"),
        ),
        Var(
            "datatier_pip_spec",
            "str",
            "What pip installs: a requirement, a wheel's path or URL.",
            f"datatier=={__version__}",
        ),
        Var(
            "datatier_pip_extra_args",
            "str",
            "Extra pip arguments, e.g. '--no-index --find-links /srv/wheels' for hosts "
            "without an index.",
            "",
        ),
        Var(
            "datatier_pip_build_packages",
            "list",
            "Debian packages pip needs to build mysqlclient (which has no manylinux wheel); "
            "[] when the wheels are prebuilt.",
            ["build-essential", "pkg-config", "libmariadb-dev", "python3-dev"],
            elements="str",
        ),
        Var("datatier_image", "str", "The image (install method image).", image),
        Var(
            "datatier_image_archive",
            "str",
            "An image archive on the host to `podman load` when the image is absent; "
            "empty: `podman pull`.",
            "",
        ),
        Var(
            "datatier_image_volumes",
            "list",
            "Further podman --volume arguments for the image (file:// stores are added).",
            [],
            elements="str",
        ),
        Var(
            "datatier_encryption",
            "bool",
            "Install age (client-side encryption of backups).",
            encryption,
        ),
        Var(
            "datatier_extra_packages",
            "list",
            "Further Debian packages to install.",
            [],
            elements="str",
        ),
        Var(
            "datatier_backup_policies",
            "list",
            "Policies whose backup timers run on this host (the others' are installed, "
            "disabled). A policy should run on one host.",
            policies,
            elements="str",
        ),
        Var(
            "datatier_heartbeat",
            "bool",
            "Run the heartbeat writer here (one host of the tier).",
            True,
        ),
        Var("datatier_health", "bool", "Run the health endpoint for HAProxy here.", True),
        Var(
            "datatier_binlog_archiver",
            "bool",
            "Run the binlog archiver here (exactly one host of the tier).",
            binlog,
        ),
    ]
    for secret in secrets:
        what = "required" if secret.required else "optional"
        found.append(
            Var(
                secret.var,
                "str",
                f"Secret {secret.dotted} ({what}); set it from an Ansible Vault variable.",
                required=secret.required,
                no_log=True,
            )
        )
    return found


def defaults(variables: list[Var]) -> dict[str, Any]:
    return {v.name: v.default for v in variables if v.default is not None}


def argument_specs(variables: list[Var]) -> dict[str, Any]:
    return {
        "argument_specs": {
            "main": {
                "short_description": "Put datatier on a database host",
                "description": [
                    "Installs datatier and the client tools it runs, its config (secrets "
                    "from Vault variables, in files only root and the datatier group read), "
                    "the backup policies, and the systemd units and timers rendered with it.",
                ],
                "options": {v.name: v.spec() for v in variables},
            }
        }
    }


def meta() -> dict[str, Any]:
    return {
        "galaxy_info": {
            "role_name": "datatier",
            "namespace": "datatier",
            "author": "datatier",
            "description": "datatier on the database hosts: backups, health, heartbeat",
            "license": "MIT",
            "min_ansible_version": "2.15",
            "platforms": [{"name": "Debian", "versions": ["bookworm"]}],
            "galaxy_tags": ["database", "backup", "mariadb", "mysql"],
        },
        "dependencies": [],
    }
