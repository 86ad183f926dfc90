"""The config file the role installs: the source config without its secrets, as a Jinja
template whose ``*_file`` keys name the secret files the role writes from Vault variables.

The text is TOML written by :func:`~datatier.typedtoml.dumps_toml`; a secret's ``*_file``
line sits in its table inside ``{% if VAR is defined %}`` (an optional secret left out is
not named). ``backup.policies_dir`` becomes the role's policies directory. A line of the
source that holds Jinja delimiters is wrapped in ``{% raw %}`` so it arrives verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from datatier.provision.artifacts.ansible.secrets import SecretVar, without_secrets
from datatier.typedtoml import dumps_toml

_MARK = "@@datatier-secret-{}@@"
_MARKED = re.compile(r'(?P<key>\S+) = "@@datatier-secret-(?P<index>\d+)@@"')
_JINJA = ("{{", "{%", "{#")


def config_template(
    doc: Mapping[str, Any], secrets: list[SecretVar], *, policies_dir: str, secrets_dir: str
) -> str:
    """The ``datatier.toml.j2`` template text (see module docstring)."""
    plain = without_secrets(doc, secrets)
    backup = plain.setdefault("backup", {})
    backup["policies_dir"] = policies_dir
    for index, secret in enumerate(secrets):
        table = plain
        for part in secret.path[:-1]:
            table = table.setdefault(part, {})
        table[f"{secret.path[-1]}_file"] = _MARK.format(index)
    lines = [
        "# Managed by Ansible (role datatier, rendered by `datatier deploy render ansible`).",
        "# No secrets here: each *_file key names a file the role wrote from a Vault variable.",
        "",
    ]
    for line in dumps_toml(plain).splitlines():
        marked = _MARKED.fullmatch(line)
        if marked:
            secret = secrets[int(marked["index"])]
            lines += [
                f"{{% if {secret.var} is defined %}}",
                f'{marked["key"]} = "{secrets_dir}/{secret.file_name}"',
                "{% endif %}",
            ]
        elif any(delim in line for delim in _JINJA):
            lines.append("{% raw %}" + line + "{% endraw %}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"
