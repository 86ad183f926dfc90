"""The package import graph: no cycles, engines chosen in one place, the CLI on top.

Edges are the imports of every module of ``datatier`` (inside functions too), except those
under ``if TYPE_CHECKING:``, which exist for the type checker only. A package is a first
level name under ``datatier`` (``datatier.backup.service`` belongs to ``backup``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "datatier"


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def import_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the modules that import it."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {
            id(sub)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for sub in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("datatier.") and package_of(name) != package_of(module):
                    graph[package_of(module)][package_of(name)].append(module)
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_graph_has_no_cycle() -> None:
    graph = import_graph()
    found = cycles(graph)
    detail = [
        f"{a} -> {b} ({', '.join(sorted(set(graph[a][b]))[:3])})"
        for group in found
        for a in group
        for b in group
        if b in graph[a]
    ]
    assert not found, "import cycles between packages: " + "; ".join(detail)


def test_backup_knows_the_engine_interfaces_never_an_engine() -> None:
    """Engines are chosen in backup/engines.py by name; backup/ imports none of them."""
    graph = import_graph()
    for engine_package in ("mysql", "mongo"):
        assert engine_package not in graph["backup"], graph["backup"][engine_package]


def test_only_the_entry_point_imports_the_command_line() -> None:
    graph = import_graph()
    users = sorted(p for p, targets in graph.items() if "cli" in targets and p != "__main__")
    assert users == [], {p: graph[p]["cli"] for p in users}


def test_the_check_sees_a_cycle_when_there_is_one() -> None:
    """The detector itself: a made-up graph with a cycle is reported, a chain is not."""
    assert cycles({"a": {"b": ["a.x"]}, "b": {"a": ["b.y"]}}) == [["a", "b"]]
    assert cycles({"a": {"b": ["a.x"]}, "b": {"c": ["b.y"]}}) == []


def test_the_command_line_never_branches_on_an_engine() -> None:
    """Engines are chosen by the registry: no ``x.engine == "..."`` (or ``in``/``!=``) under
    datatier/cli/ (showing an engine's name is fine)."""
    found = []
    for path in sorted((ROOT / "cli").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and "engine" in s.attr for s in sides):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert found == []
