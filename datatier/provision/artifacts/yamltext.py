"""YAML for the Kubernetes manifests datatier renders, written by PyYAML's safe dumper:
block style, keys in insertion order, lists indented under their key (as ``kubectl``
writes them), strings quoted wherever YAML would read them as something else (``"on"``,
``"3306"``), never folded, non-ASCII kept, and no anchors or aliases (a dict used twice is
written twice). The same documents always give the same text."""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump_all(documents: list[Any]) -> str:
    """``documents`` (dicts, lists, str, int, float, bool, None), each after a ``---`` line."""
    return yaml.dump_all(
        documents,
        Dumper=_Dumper,
        explicit_start=True,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
    )
