"""The role's ``image`` install method: podman, the image (loaded from an archive or
pulled), the wrapper script that runs it as ``--binary``, and a drop-in that runs the units
as root (podman needs it; the container itself runs as the datatier user)."""

from __future__ import annotations

from typing import Any

from datatier.provision.artifacts.ansible.layout import RELOAD, RESTART, UNIT_DIR, Layout

DROPIN = f"{UNIT_DIR}/datatier-.service.d/50-image.conf"
IMAGE = "datatier_install_method == 'image'"


def tasks(layout: Layout) -> list[dict[str, Any]]:
    return [
        {
            "name": "Look for the datatier image",
            "ansible.builtin.command": {
                "argv": ["podman", "image", "exists", "{{ datatier_image }}"]
            },
            "register": "datatier_image_found",
            "changed_when": False,
            "failed_when": "datatier_image_found.rc not in [0, 1]",
            "when": IMAGE,
        },
        {
            "name": "Load the datatier image from its archive",
            "ansible.builtin.command": {
                "argv": ["podman", "load", "--input", "{{ datatier_image_archive }}"]
            },
            "changed_when": True,
            "when": f"{IMAGE} and datatier_image_found.rc == 1 and datatier_image_archive",
            "notify": RESTART,
        },
        {
            "name": "Pull the datatier image",
            "ansible.builtin.command": {"argv": ["podman", "pull", "{{ datatier_image }}"]},
            "changed_when": True,
            "when": f"{IMAGE} and datatier_image_found.rc == 1 and not datatier_image_archive",
            "notify": RESTART,
        },
        {
            "name": f"Install {layout.binary}, which runs datatier from the image",
            "ansible.builtin.template": {
                "src": "datatier-image.sh.j2",
                "dest": layout.binary,
                "owner": "root",
                "group": "root",
                "mode": "0755",
                "follow": False,
            },
            "when": IMAGE,
            "notify": RESTART,
        },
        {
            "name": "Create the units' drop-in directory",
            "ansible.builtin.file": {
                "path": DROPIN.rsplit("/", 1)[0],
                "state": "directory",
                "owner": "root",
                "group": "root",
                "mode": "0755",
            },
            "when": IMAGE,
        },
        {
            "name": "Let the units start containers (podman needs root; the container runs "
            "as the datatier user)",
            "ansible.builtin.copy": {
                "content": "# Managed by Ansible (role datatier, install method image).\n"
                "[Service]\nUser=\n",
                "dest": DROPIN,
                "owner": "root",
                "group": "root",
                "mode": "0644",
            },
            "when": IMAGE,
            "notify": [RELOAD, RESTART],
        },
    ]


def wrapper(layout: Layout, volumes: list[str]) -> str:
    """``templates/datatier-image.sh.j2``: the binary the units run, in image mode."""
    mounts = [f"{layout.config_dir}:{layout.config_dir}:ro", *volumes]
    lines = [
        "#!/bin/sh",
        "# Managed by Ansible (role datatier): datatier from its image, as the "
        f"{layout.user} user,",
        "# with the host's network, its config read-only, and its file:// stores.",
        "exec podman run --rm --network host \\",
        f'  --user "$(id -u {layout.user}):$(id -g {layout.user})" \\',
        f"  --env DATATIER_CONFIG={layout.config_path} \\",
        *(f"  --volume {m} \\" for m in mounts),
        "{% for volume in datatier_image_volumes %}",
        "  --volume {{ volume | quote }} \\",
        "{% endfor %}",
        '  {{ datatier_image | quote }} "$@"',
    ]
    return "\n".join(lines) + "\n"
