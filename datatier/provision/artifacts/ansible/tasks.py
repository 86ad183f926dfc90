"""The role's tasks, handlers and constants (``vars/main.yml``).

Order matters for "nothing half-installed": the argument specs (Ansible checks them before
the first task) and the policy check come before any change. Every task is idempotent: a
second run reports no change. Secrets are written with ``no_log`` and without diffs.
"""

from __future__ import annotations

from typing import Any

from datatier.provision.artifacts.ansible import image
from datatier.provision.artifacts.ansible.layout import RELOAD, RESTART, UNIT_DIR, Layout
from datatier.provision.artifacts.docker import VENV  # the same virtualenv as the image's

CLIENT_PACKAGES = ["mariadb-client", "mariadb-backup", "zstd", "ca-certificates", "libmariadb3"]
# python3-packaging: ansible.builtin.pip needs it on the host.
PIP_PACKAGES = ["python3", "python3-venv", "python3-packaging"]
PIP = "datatier_install_method == 'pip'"
GIVEN = "query('ansible.builtin.varnames', '^' ~ item.var ~ '$') | length > 0"


def _owned(mode: str, layout: Layout) -> dict[str, str]:
    return {"owner": "root", "group": layout.user, "mode": mode}


def packages() -> dict[str, Any]:
    """The Debian packages, as ``vars/main.yml`` computes them from the role's variables."""
    return {
        "datatier_client_packages": CLIENT_PACKAGES,
        "datatier_pip_packages": PIP_PACKAGES,
        "datatier_method_packages": "{{ datatier_pip_packages + datatier_pip_build_packages"
        " if datatier_install_method == 'pip' else ['podman'] }}",
        "datatier_packages": "{{ datatier_client_packages + datatier_method_packages"
        " + (['age'] if datatier_encryption else []) + datatier_extra_packages }}",
    }


def tasks(layout: Layout) -> list[dict[str, Any]]:
    """``tasks/main.yml``."""
    venv_binary = f"{VENV}/bin/datatier"
    return [
        {
            "name": "Check that this host's backup policies are rendered ones",
            "ansible.builtin.assert": {
                "that": ["datatier_backup_policies | difference(datatier_policies) | length == 0"],
                "fail_msg": "datatier_backup_policies names policies the role was not rendered "
                "with: {{ datatier_backup_policies | difference(datatier_policies) | join(', ') }}",
                "quiet": True,
            },
        },
        {
            "name": "Install the client tools datatier runs",
            "ansible.builtin.apt": {
                "name": "{{ datatier_packages }}",
                "state": "present",
                "update_cache": True,
                "cache_valid_time": 86400,
            },
        },
        {
            "name": "Create the datatier group",
            "ansible.builtin.group": {"name": layout.user, "system": True},
        },
        {
            "name": "Create the datatier user",
            "ansible.builtin.user": {
                "name": layout.user,
                "group": layout.user,
                "system": True,
                "home": layout.home,
                "create_home": True,
                "shell": "/usr/sbin/nologin",
            },
        },
        {
            "name": "Install datatier into its virtualenv",
            "ansible.builtin.pip": {
                "name": "{{ datatier_pip_spec }}",
                "virtualenv": VENV,
                "virtualenv_command": "/usr/bin/python3 -m venv",
                "extra_args": "{{ datatier_pip_extra_args | default(omit, true) }}",
            },
            "when": PIP,
            "notify": RESTART,
        },
        *(
            []
            if layout.binary == venv_binary
            else [
                {
                    "name": f"Link {layout.binary} to the virtualenv's datatier",
                    "ansible.builtin.file": {
                        "src": venv_binary,
                        "dest": layout.binary,
                        "state": "link",
                        "force": True,
                    },
                    "when": PIP,
                }
            ]
        ),
        {
            "name": "Remove the units' image drop-in",
            "ansible.builtin.file": {"path": image.DROPIN, "state": "absent"},
            "when": PIP,
            "notify": [RELOAD, RESTART],
        },
        *image.tasks(layout),
        {
            "name": "Create the config directories",
            "ansible.builtin.file": {
                "path": "{{ item }}",
                "state": "directory",
                **_owned("0750", layout),
            },
            "loop": [layout.config_dir, layout.policies_dir, layout.secrets_dir],
        },
        {
            "name": "Write the datatier config",
            "ansible.builtin.template": {
                "src": "datatier.toml.j2",
                "dest": layout.config_path,
                **_owned("0640", layout),
            },
            "notify": RESTART,
        },
        {
            "name": "Install the backup policies",
            "ansible.builtin.copy": {
                "src": "backups/{{ item }}.toml",
                "dest": f"{layout.policies_dir}/{{{{ item }}}}.toml",
                **_owned("0640", layout),
            },
            "loop": "{{ datatier_policies }}",
            "notify": RESTART,
        },
        {
            "name": "Write the secrets from their Vault variables",
            "ansible.builtin.copy": {
                "content": "{{ lookup('ansible.builtin.vars', item.var) }}",
                "dest": f"{layout.secrets_dir}/{{{{ item.file }}}}",
                **_owned("0640", layout),
            },
            "loop": "{{ datatier_secret_files }}",
            "when": GIVEN,
            "no_log": True,
            "diff": False,
            "notify": RESTART,
        },
        {
            "name": "Remove the secret files of secrets no longer given",
            "ansible.builtin.file": {
                "path": f"{layout.secrets_dir}/{{{{ item.file }}}}",
                "state": "absent",
            },
            "loop": "{{ datatier_secret_files }}",
            "loop_control": {"label": "{{ item.file }}"},
            "when": f"not ({GIVEN})",
            "notify": RESTART,
        },
        {
            "name": "Create the directories of file:// stores",
            "ansible.builtin.file": {
                "path": "{{ item }}",
                "state": "directory",
                "owner": layout.user,
                "group": layout.user,
                "mode": "0750",
            },
            "loop": "{{ datatier_file_stores }}",
        },
        {
            "name": "Install the systemd units",
            "ansible.builtin.copy": {
                "src": "systemd/{{ item }}",
                "dest": f"{UNIT_DIR}/{{{{ item }}}}",
                "owner": "root",
                "group": "root",
                "mode": "0644",
            },
            "loop": "{{ datatier_units }}",
            "notify": [RELOAD, RESTART],
        },
        {
            "name": "Find datatier units that are no longer rendered",
            "ansible.builtin.find": {
                "paths": UNIT_DIR,
                "patterns": ["datatier-*.service", "datatier-*.timer"],
            },
            "register": "datatier_found_units",
        },
        {
            "name": "Stop and remove datatier units that are no longer rendered",
            "ansible.builtin.include_tasks": "stale.yml",
            "loop": "{{ datatier_found_units.files | map(attribute='path') | map('basename')"
            " | difference(datatier_units) }}",
            "loop_control": {"loop_var": "datatier_stale_unit"},
        },
        {"name": "Apply unit changes now", "ansible.builtin.meta": "flush_handlers"},
        {
            "name": "Enable the backup timers of this host's policies, disable the others",
            "ansible.builtin.systemd_service": {
                "name": "datatier-backup-{{ item }}.timer",
                "enabled": "{{ item in datatier_backup_policies }}",
                "state": "{{ 'started' if item in datatier_backup_policies else 'stopped' }}",
            },
            "loop": "{{ datatier_policies }}",
        },
        {
            "name": "Enable and start the always-on services chosen for this host",
            "ansible.builtin.systemd_service": {
                "name": "{{ item.unit }}",
                "enabled": "{{ lookup('ansible.builtin.vars', item.flag) }}",
                "state": "{{ 'started' if lookup('ansible.builtin.vars', item.flag)"
                " else 'stopped' }}",
            },
            "loop": "{{ datatier_always_on }}",
            "loop_control": {"label": "{{ item.unit }}"},
        },
    ]


def stale_tasks() -> list[dict[str, Any]]:
    """``tasks/stale.yml``: one unit that is no longer rendered, stopped then removed."""
    return [
        {
            "name": "Stop and disable {{ datatier_stale_unit }}",
            "ansible.builtin.systemd_service": {
                "name": "{{ datatier_stale_unit }}",
                "state": "stopped",
                "enabled": False,
            },
            "failed_when": False,
        },
        {
            "name": "Remove {{ datatier_stale_unit }}",
            "ansible.builtin.file": {
                "path": f"{UNIT_DIR}/{{{{ datatier_stale_unit }}}}",
                "state": "absent",
            },
            "notify": RELOAD,
        },
    ]


def handlers() -> list[dict[str, Any]]:
    """``handlers/main.yml``: reload systemd first, then restart what runs."""
    return [
        {"name": RELOAD, "ansible.builtin.systemd_service": {"daemon_reload": True}},
        {
            "name": RESTART,
            "ansible.builtin.systemd_service": {"name": "{{ item.unit }}", "state": "restarted"},
            "loop": "{{ datatier_always_on }}",
            "loop_control": {"label": "{{ item.unit }}"},
            "when": "lookup('ansible.builtin.vars', item.flag)",
        },
    ]
