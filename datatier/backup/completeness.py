"""Does a manifest's object list account for every table and row it records?

Checksums prove each listed object is intact; they cannot show that an object was never
listed. This is the structural check done by ``run_backup`` before a manifest is written,
by ``backups verify`` and by restore before anything is applied.

Contract every dump engine's manifest satisfies (MySQL and MongoDB alike):

* every table record (``Manifest.tables``) has exactly one definition: an object of kind
  ``schema`` (MySQL) or ``metadata`` (MongoDB) with the same database and table, or a
  section of a ``bundle`` object of its database (MySQL small tables, definition and rows
  together);
* a bundle's sections lie in order inside its decompressed bytes, after a prelude, end to
  end (no gap, no overlap) up to its last byte; its rows are its sections' rows; a bundled
  table has no data objects and its section's rows are the table record's (a selection of
  tables checks only the bundles holding one of them);
* a table's data objects (kind ``data`` or ``collection``) are numbered ``part`` 1..N, with
  no gap and no duplicate; a table without rows may have none;
* the data objects' ``rows`` add up to the table record's ``rows`` (a ``sequence`` record
  has no data objects: its one row is set by its definition object);
* no data object belongs to a table without a record, and no object key appears twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection
from typing import TYPE_CHECKING

from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.errors import IntegrityFailure

if TYPE_CHECKING:
    from datatier.backup.engine import RestoreOptions

DATA_KINDS = frozenset({"data", "collection"})
DEFINITION_KINDS = frozenset({"schema", "metadata"})
BUNDLE_KIND = "bundle"


def _name(database: str | None, table: str | None) -> str:
    return f"{database}.{table}"


def missing_parts(
    manifest: Manifest, tables: Collection[tuple[str, str]] | None = None
) -> list[str]:
    """Problems (one line each, empty when none) for the tables of ``manifest``, or only
    for ``tables`` ((database, table) pairs) when given."""

    def wanted(database: str | None, table: str | None) -> bool:
        return tables is None or (database, table) in tables

    problems = [
        f"object {key} is listed {n} times"
        for key, n in Counter(o.key for o in manifest.objects).items()
        if n > 1
    ]
    definitions: Counter[tuple[str | None, str | None]] = Counter()
    parts: dict[tuple[str | None, str | None], list[ObjectRecord]] = defaultdict(list)
    bundled: dict[tuple[str | None, str | None], int] = {}
    for obj in manifest.objects:
        if obj.kind in DEFINITION_KINDS:
            definitions[(obj.database, obj.table)] += 1
        elif obj.kind in DATA_KINDS:
            parts[(obj.database, obj.table)].append(obj)
        elif obj.kind == BUNDLE_KIND:
            # a damaged bundle does not stop a --tables restore of what it does not hold
            if tables is None or any(wanted(obj.database, t) for t in obj.table_names()):
                problems += _bundle_problems(obj)
            for section in obj.sections:
                definitions[(obj.database, section.table)] += 1
                bundled[(obj.database, section.table)] = section.rows
    recorded: set[tuple[str | None, str | None]] = set()
    for rec in manifest.tables:
        key = (rec.database, rec.name)
        recorded.add(key)
        if not wanted(*key):
            continue
        name = _name(*key)
        if definitions[key] != 1:
            what = "no" if definitions[key] == 0 else f"{definitions[key]}"
            problems.append(f"{name} has {what} definition object(s)")
        if key in bundled:
            if parts.get(key):
                problems.append(f"{name} is in a bundle but also has data objects")
            elif bundled[key] != rec.rows:
                problems.append(
                    f"{name}: its bundle section holds {bundled[key]} rows, "
                    f"the table record {rec.rows}"
                )
            continue
        numbers = sorted(o.part for o in parts.get(key, []))
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"{name}: data parts {_ranges(numbers)} are not 1..{len(numbers)}")
        rows = sum(o.rows for o in parts.get(key, []))
        if rec.kind == "sequence":
            if parts.get(key):
                problems.append(f"{name} is a sequence but has data objects")
        elif rows != rec.rows:
            problems.append(f"{name}: data objects hold {rows} rows, the table record {rec.rows}")
    for owner, objs in sorted(parts.items(), key=lambda item: str(item[0])):
        if owner not in recorded and wanted(*owner):
            problems.append(f"{len(objs)} data object(s) of {_name(*owner)}, which has no record")
    return problems


def _bundle_problems(obj: ObjectRecord) -> list[str]:
    """What is wrong with the layout of bundle ``obj`` (empty: nothing)."""
    if not obj.sections:
        return [f"bundle {obj.key} holds no table"]
    problems = []
    end = 1  # a prelude comes first, then the sections end to end, to the object's end
    for i, section in enumerate(obj.sections):
        placed = end <= section.start < section.end <= obj.raw_size and (
            i == 0 or section.start == end
        )
        if i == len(obj.sections) - 1 and section.end != obj.raw_size:
            placed = False
        if not placed or section.rows < 0:
            problems.append(f"bundle {obj.key}: section of {section.table} is out of place")
        end = max(end, section.end)
    if sum(s.rows for s in obj.sections) != obj.rows:
        problems.append(f"bundle {obj.key}: its sections' rows do not add up to its rows")
    if len({s.table for s in obj.sections}) != len(obj.sections):
        problems.append(f"bundle {obj.key} holds a table twice")
    return problems


def _ranges(numbers: list[int]) -> str:
    """``1-3,5,5`` for [1, 2, 3, 5, 5] (duplicates shown), ``none`` for []."""
    if not numbers:
        return "none"
    out: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ",".join(out)


def check_accounted(
    manifest: Manifest, objects: list[ObjectRecord], options: RestoreOptions, *, others: str
) -> None:
    """IntegrityFailure (exit 4) when the manifest's objects do not account for every row of
    the selected tables or collections: those of ``objects`` and the records ``options``
    select (a data part, or a table's every object, missing from the manifest). ``others``
    ends the hint: how to restore the rest."""
    selected = {(o.database, t) for o in objects if o.database for t in o.table_names()}
    selected |= {
        (t.database, t.name) for t in manifest.tables if options.selects(t.database, t.name)
    }
    problems = missing_parts(manifest, selected)
    if problems:
        raise IntegrityFailure(
            f"backup {manifest.backup_id} cannot be restored whole: {'; '.join(problems[:5])}",
            hint=f"nothing was applied; {others}",
        )
