"""A migration plan for one table: target name, key, fields with casts, indexes, verdict.

Contract: :func:`build_plan` decides everything that can be decided from the schema and
the mapping (no rows read); :meth:`TablePlan.apply_sample` adds what sampling found
(values that fail their cast, zero dates, over-long keys) and the estimates. The verdict
is ``blocked`` when any finding is an error (no usable key, a value the cast cannot carry,
an unsupported type), ``warnings`` when the move changes semantics, else ``ready``.
``run --execute`` refuses a blocked table before writing anything.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

from datatier.migrate.casts import Converter, converter, default_cast, risks
from datatier.migrate.mapping import ColumnMapping, MappingFile, check_against
from datatier.mysql.introspect import Column, Index, TableSchema

ASSUMED_DOCS_PER_SECOND = 5000
"""For the run-time estimate only: one client, batches of 500, a nearby server. Measure
with a rehearsal (``migrate run --execute`` into a scratch database) before trusting it."""

COMPOUND_KEY_INDEX = "mysql_key"
FindingLevel = Literal["error", "warning", "info"]
KeyKind = Literal["single", "generated", "none"]
Verdict = Literal["ready", "warnings", "blocked"]
"""``blocked``: an error finding (nothing is copied); ``warnings``: a warning finding."""
NAME_RE = re.compile(r"[A-Za-z0-9_]+")


@dataclass
class Finding:
    """One thing the plan says: ``level`` is error (blocks), warning or info."""

    level: FindingLevel
    text: str
    column: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "column": self.column, "text": self.text}


@dataclass
class FieldPlan:
    """One column -> one document field."""

    column: Column
    field: str
    cast: str | None
    scale: int | None
    risks: list[str]
    skipped: bool = False
    convert: Converter | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column.name,
            "mysql_type": self.column.column_type,
            "field": None if self.skipped else self.field,
            "cast": "skip" if self.skipped else self.cast,
            "scale": self.scale,
            "risks": self.risks,
        }


@dataclass
class KeyPlan:
    """How documents get their ``id``: ``single`` (a column's value) or ``generated``
    (a JSON array of the key columns' values, with a compound index on them); ``none``
    blocks the table."""

    kind: KeyKind
    columns: tuple[str, ...]
    source: str  # "PRIMARY", a unique index name, "mapping" or "none"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "columns": list(self.columns), "source": self.source}


@dataclass
class IndexPlan:
    """A secondary index to create (``fields`` are document field names)."""

    name: str
    fields: tuple[str, ...]
    source: str
    unique_lost: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fields": list(self.fields),
            "from": self.source,
            "compound": len(self.fields) > 1,
            "unique_not_enforced": self.unique_lost,
        }


@dataclass
class Estimates:
    documents: int
    exact: bool
    bytes: int
    seconds: float


@dataclass
class TablePlan:
    """Everything about moving one table (see module docstring)."""

    schema: TableSchema
    target_db: str
    target_table: str
    key: KeyPlan
    fields: list[FieldPlan]
    indexes: list[IndexPlan]
    findings: list[Finding]
    sample: dict[str, Any] | None = None
    estimates: Estimates | None = None

    @property
    def name(self) -> str:
        return self.schema.qualified

    @property
    def target(self) -> str:
        return f"{self.target_db}.{self.target_table}"

    @property
    def active_fields(self) -> list[FieldPlan]:
        return [f for f in self.fields if not f.skipped]

    @property
    def verdict(self) -> Verdict:
        levels = {f.level for f in self.findings}
        return "blocked" if "error" in levels else "warnings" if "warning" in levels else "ready"

    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    def apply_sample(self, found: dict[str, Any], exact_rows: int | None) -> None:
        """Record a :func:`~datatier.migrate.sampler.analyse` result and the estimates."""
        self.sample = found
        for col, info in found["failures"].items():
            examples = "; ".join(
                f"{e['key']}: {e['value']} ({e['problem']})" for e in info["examples"]
            )
            self.findings.append(
                Finding(
                    "error",
                    f"{info['count']} sampled value(s) cannot be carried by cast "
                    f"{info['cast']!r}: {examples}",
                    col,
                )
            )
        for col, count in found["zero_dates"].items():
            self.findings.append(
                Finding("warning", f"{count} sampled zero date(s) become null", col)
            )
        docs = exact_rows if exact_rows is not None else self.schema.rows_estimate
        self.estimates = Estimates(
            documents=docs,
            exact=exact_rows is not None,
            bytes=int(docs * found["avg_doc_bytes"]),
            seconds=docs / ASSUMED_DOCS_PER_SECOND,
        )

    def to_json(self) -> dict[str, Any]:
        est = self.estimates
        return {
            "table": self.name,
            "target": self.target,
            "verdict": self.verdict,
            "key": self.key.to_json(),
            "fields": [f.to_json() for f in self.fields],
            "indexes": [i.to_json() for i in self.indexes],
            "findings": [f.to_json() for f in self.findings],
            "sample": self.sample,
            "estimates": None
            if est is None
            else {
                "documents": est.documents,
                "documents_exact": est.exact,
                "bytes": est.bytes,
                "seconds": round(est.seconds, 1),
                "assumed_docs_per_second": ASSUMED_DOCS_PER_SECOND,
            },
        }


def _is_text_key(col: Column) -> bool:
    return col.collation is not None


def _covering_unique(schema: TableSchema, columns: list[str]) -> Index | None:
    """A unique index whose columns are all NOT NULL key columns: it makes the key unique.

    (A unique index on a subset of the key makes the whole key unique; MySQL lets a unique
    index hold NULL many times, so only NOT NULL columns count.)"""
    for idx in schema.indexes:
        if not idx.unique or not set(idx.columns) <= set(columns):
            continue
        if all((c := schema.column(n)) is not None and not c.nullable for n in idx.columns):
            return idx
    return None


def _mapping_key_findings(schema: TableSchema, columns: list[str]) -> list[Finding]:
    """Errors for a mapping key that keyset paging and ids cannot rely on.

    ``run`` reads in batches of ``key > last`` in key order: rows sharing a key across a
    batch boundary would be skipped, and those in one batch would get the same id (one
    document; ``replace`` silently keeps the last). A NULL in a key column never compares
    ``>``, so such rows would be skipped too."""
    out: list[Finding] = []
    key = ", ".join(columns)
    if _covering_unique(schema, columns) is None:
        out.append(
            Finding(
                "error",
                f"mapping key ({key}) is not covered by a unique index in MySQL: rows "
                "sharing a key would be skipped at batch boundaries or collapse into one "
                "document; choose columns with a unique NOT NULL index (or add one)",
            )
        )
    nullable = [n for n in columns if (c := schema.column(n)) is not None and c.nullable]
    if nullable:
        out.append(
            Finding(
                "error",
                f"mapping key column(s) {', '.join(nullable)} may be NULL: rows with NULL in "
                "the key would be skipped by the keyset batches (NULL never compares)",
            )
        )
    return out


def _key(schema: TableSchema, columns: list[str] | None) -> tuple[KeyPlan, list[Finding]]:
    notes: list[Finding] = []
    if columns:
        notes.extend(_mapping_key_findings(schema, columns))
        kind: KeyKind = "single" if len(columns) == 1 else "generated"
        return KeyPlan(kind, tuple(columns), "mapping"), notes
    pk = schema.primary_key
    chosen: Index | None = pk
    if chosen is None:
        chosen = next(
            (
                i
                for i in schema.indexes
                if i.unique
                and not i.prefixed
                and all(not (c := schema.column(n)) or not c.nullable for n in i.columns)
            ),
            None,
        )
        if chosen is None:
            notes.append(
                Finding(
                    "error",
                    "no primary key and no unique NOT NULL key: documents would get random "
                    "ids and a rerun would duplicate them; name key columns in a mapping "
                    "file (key = [...])",
                )
            )
            return KeyPlan("none", (), "none"), notes
        notes.append(Finding("info", f"no PRIMARY KEY: using unique key {chosen.name}"))
    kind = "single" if len(chosen.columns) == 1 else "generated"
    return KeyPlan(kind, chosen.columns, chosen.name), notes


def _key_findings(schema: TableSchema, key: KeyPlan, fields: dict[str, FieldPlan]) -> list[Finding]:
    out: list[Finding] = []
    if key.kind == "generated":
        out.append(
            Finding(
                "info",
                f"composite key ({', '.join(key.columns)}): id = JSON array of their values, "
                f"columns kept, compound index {COMPOUND_KEY_INDEX!r}",
            )
        )
    max_bytes = 2  # brackets of a generated id
    for name in key.columns:
        col = schema.columns[[c.name for c in schema.columns].index(name)]
        fp = fields[name]
        if fp.cast in ("json", "array", "binary"):
            out.append(Finding("error", f"a {fp.cast} value cannot be a primary key", name))
        if _is_text_key(col) and not str(col.collation).endswith("_bin"):
            out.append(
                Finding(
                    "warning",
                    f"collation-dependent key: {col.collation} compares case/accent-"
                    "insensitively and ignores trailing spaces; RethinkDB compares exact "
                    "bytes (lookups and order differ)",
                    name,
                )
            )
        max_bytes += (col.max_chars or 0) * 4 + 3 if col.max_chars else 24
    if max_bytes > 127 and any(_is_text_key(fields[n].column) for n in key.columns):
        out.append(
            Finding(
                "warning",
                f"the key can reach {max_bytes} bytes; RethinkDB primary keys are at most "
                "127 bytes (longer values fail; checked in the sample)",
            )
        )
    return out


def _indexes(
    schema: TableSchema, key: KeyPlan, fields: dict[str, FieldPlan]
) -> tuple[list[IndexPlan], list[Finding]]:
    plans: list[IndexPlan] = []
    notes: list[Finding] = []
    if key.kind == "generated":
        plans.append(
            IndexPlan(COMPOUND_KEY_INDEX, tuple(fields[c].field for c in key.columns), key.source)
        )
    for idx in schema.indexes:
        if idx.name == key.source or (
            idx.primary and key.kind == "single" and idx.columns == key.columns
        ):
            continue
        if idx.kind in ("FULLTEXT", "SPATIAL"):
            notes.append(Finding("info", f"{idx.kind} index {idx.name} is not migrated"))
            continue
        if any(fields[c].skipped for c in idx.columns):
            notes.append(Finding("info", f"index {idx.name} dropped: a column is skipped"))
            continue
        names = tuple(fields[c].field for c in idx.columns)
        plans.append(IndexPlan(idx.name, names, idx.name, unique_lost=idx.unique))
        if idx.unique:
            notes.append(
                Finding(
                    "warning",
                    f"unique constraint {idx.name} ({', '.join(idx.columns)}) cannot be "
                    "enforced: RethinkDB keeps only the primary key unique",
                )
            )
        if idx.prefixed:
            notes.append(Finding("info", f"prefix index {idx.name} becomes a full-value index"))
    return plans, notes


def build_plan(schema: TableSchema, mapping: MappingFile, default_db: str) -> TablePlan:
    """The plan for one table before sampling (see module docstring)."""
    tm = check_against(mapping, schema)
    key, findings = _key(schema, tm.key)
    fields: dict[str, FieldPlan] = {}
    for col in schema.columns:
        cm = tm.columns.get(col.name, ColumnMapping())
        cast = cm.cast or default_cast(col)
        name = "id" if key.kind == "single" and col.name in key.columns else cm.name or col.name
        fp = FieldPlan(col, name, cast, cm.scale, [], skipped=cm.skip)
        if not cm.skip:
            if cast is None:
                findings.append(
                    Finding(
                        "error", f"no cast for {col.column_type}: skip it in a mapping", col.name
                    )
                )
            else:
                fp.risks = risks(col, cast, mapping.timezone)
                fp.convert = converter(col, cast, scale=cm.scale, tz=mapping.timezone)
                for text in fp.risks:
                    findings.append(Finding("warning", text, col.name))
        fields[col.name] = fp
    seen: dict[str, str] = {"id": "the generated id"} if key.kind == "generated" else {}
    for fp in fields.values():
        if fp.skipped:
            continue
        if fp.field in seen:
            findings.append(
                Finding(
                    "error",
                    f"field {fp.field!r} would hold both {seen[fp.field]} and {fp.column.name}: "
                    "rename one in a mapping (name = ...)",
                    fp.column.name,
                )
            )
        seen[fp.field] = fp.column.name
    if key.kind != "none":
        findings.extend(_key_findings(schema, key, fields))
    indexes, notes = _indexes(schema, key, fields)
    findings.extend(notes)
    target_db, target_table = mapping.target_db or default_db, tm.target or schema.name
    for what, name in (
        ("database", target_db),
        ("table", target_table),
        *(("index", i.name) for i in indexes),
    ):
        if not NAME_RE.fullmatch(name):
            findings.append(
                Finding(
                    "error",
                    f"RethinkDB {what} name {name!r} may hold only A-Z, a-z, 0-9 and _ "
                    "(set target/target_db in a mapping)",
                )
            )
    for col_name, cm in tm.columns.items():
        if cm.name and key.kind == "single" and col_name in key.columns:
            findings.append(Finding("info", "name ignored: the key column becomes id", col_name))
    return TablePlan(
        schema=schema,
        target_db=target_db,
        target_table=target_table,
        key=key,
        fields=list(fields.values()),
        indexes=indexes,
        findings=findings,
    )
