"""SQL lives in ``datatier/mysql/`` and ``datatier/replication/`` only.

Everywhere else a module calls named functions of those packages. Three checks over the
source of every other module (the AST, so comments and docstrings do not count):

* no call that runs SQL on a connection or cursor: ``.execute(``, ``.executemany(``,
  ``.callproc(``, ``.mogrify(``, ``.query(``, ``.cursor(``, ``query_dicts(``;
* no import of a MySQL driver (``pymysql``, ``MySQLdb``): errors are caught as
  :data:`datatier.mysql.connection.MySQLError`;
* no string that is a SQL statement (``SELECT ...``, ``SHOW ...``, ``SET GLOBAL ...``,
  ``CHANGE MASTER ...``...; docstrings excepted).

SQL a *user* writes (a warm set's queries, schema migration files) is data: it reaches the
server through :mod:`datatier.mysql` functions, which these checks see as plain calls.
There are no exceptions; :data:`EXCEPTIONS` would list them with their reasons.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "datatier"
SQL_PACKAGES = ("mysql", "replication")
RUNS_SQL = frozenset({"execute", "executemany", "callproc", "mogrify", "query", "cursor"})
RUNS_SQL_FUNCTIONS = frozenset({"query_dicts"})
DRIVERS = frozenset({"pymysql", "MySQLdb"})
STATEMENT = re.compile(
    r"^\s*(SELECT\s+\S|SHOW\s+[A-Z]|SET\s+(GLOBAL|SESSION|NAMES|@)|"
    r"(START|STOP)\s+(SLAVE|REPLICA|TRANSACTION)|CHANGE\s+(MASTER|REPLICATION)|"
    r"RESET\s+(SLAVE|MASTER|REPLICA)|INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|"
    r"(CREATE|DROP)\s+(TABLE|DATABASE|USER|INDEX|VIEW)|ALTER\s+(TABLE|USER)|"
    r"GRANT\s+[A-Z]+\s+(ON|TO)\b|FLUSH\s+[A-Z]|KILL\s+\d|(UN)?LOCK\s+TABLES|BACKUP\s+STAGE|"
    r"USE\s+`|COMMIT$|ROLLBACK$)"
)
EXCEPTIONS: dict[str, str] = {}
"""``module:line`` -> why that SQL may live outside ``mysql/`` and ``replication/``."""


def outside_modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in SQL_PACKAGES:
            continue
        yield str(relative), ast.parse(path.read_text(), str(path))


def not_statements(tree: ast.Module) -> set[int]:
    """ids of the docstrings, and of the parts of f-strings (the f-string is checked)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            found.update(id(part) for part in node.values)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def text_of(node: ast.AST) -> str | None:
    """A string literal's text, or an f-string's leading literal part."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
        value = node.value
        return value.decode(errors="replace") if isinstance(value, bytes) else value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def violations(module: str, tree: ast.Module) -> Iterator[str]:
    skip = not_statements(tree)
    for node in ast.walk(tree):
        where = f"{module}:{getattr(node, 'lineno', 0)}"
        if where in EXCEPTIONS:
            continue
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in RUNS_SQL:
                yield f"{where} calls .{func.attr}()"
            elif isinstance(func, ast.Name) and func.id in RUNS_SQL_FUNCTIONS:
                yield f"{where} calls {func.id}()"
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in DRIVERS:
                    yield f"{where} imports {name}"
        elif id(node) not in skip:
            text = text_of(node)
            if text is not None and STATEMENT.match(text):
                yield f"{where} holds SQL {text.strip()[:40]!r}"


def test_no_module_outside_mysql_and_replication_runs_sql() -> None:
    found = [v for module, tree in outside_modules() for v in violations(module, tree)]
    assert found == [], "SQL outside datatier/mysql and datatier/replication:\n" + "\n".join(found)


def test_every_exception_still_exists() -> None:
    """A listed exception whose SQL moved away is removed from the list too."""
    lines = {
        f"{module}:{getattr(node, 'lineno', 0)}"
        for module, tree in outside_modules()
        for node in ast.walk(tree)
    }
    assert sorted(set(EXCEPTIONS) - lines) == []


def test_the_check_sees_sql_when_there_is_some() -> None:
    """The detector itself, on made-up modules: each kind of violation is reported, and
    words that merely look like SQL in prose or docstrings are not."""
    source = '''
"""SELECT * FROM docstrings is prose."""
import pymysql
from MySQLdb.cursors import SSCursor

def f(conn):
    """SHOW SLAVE STATUS in a docstring."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    rows = query_dicts(conn, "SHOW REPLICA STATUS")
    hint = "show the plan"
    stop = f"STOP SLAVE {name}"
    return "GRANT the missing privileges", hint
'''
    found = sorted(violations("made/up.py", ast.parse(source)), key=lambda v: int(v[11:13]))
    assert [v.split(" ", 1)[1] for v in found] == [
        "imports pymysql",
        "imports MySQLdb.cursors",
        "calls .cursor()",
        "calls .execute()",
        "holds SQL 'SELECT 1'",
        "calls query_dicts()",
        "holds SQL 'SHOW REPLICA STATUS'",
        "holds SQL 'STOP SLAVE'",
    ], found
