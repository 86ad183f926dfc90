"""YAML for the Ansible role, written with PyYAML in the style ansible-lint expects:
``---`` first, sequences indented under their key, multi-line strings as literal blocks,
Jinja expressions double-quoted, keys in the order given."""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else '"' if "{{" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(doc: Any, header: str = "") -> str:
    """``doc`` as one YAML document, after ``header`` (comment lines, each ``# ...``)."""
    body = yaml.dump(
        doc,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=150,
        explicit_start=True,
    )
    return body.replace("---\n", "---\n" + header, 1) if header else body
