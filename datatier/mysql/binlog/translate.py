"""One archived transaction as the SQL that replays it on another server.

Row events go back as ``BINLOG '<base64>'`` statements, exactly what ``mariadb-binlog``
prints and the server applies as a replica would (after a ``BINLOG`` of the format
description); table maps of tables not restored are dropped with their rows events, and
those of renamed databases point at the new name. Query events (DDL, statement-format DML)
go back as their text, after the session they ran in (``SET`` statements, ``USE``), with
qualified database names renamed. Transactions get new GTIDs on the target (no
``gtid_seq_no``: the originals are older than the target's own and would break strict mode).

What cannot be replayed faithfully is refused with :class:`ReplayRefused` (exit 2) before
anything is applied: XA transactions, user-variable statements and statement-format LOAD
DATA acting on restored databases (those on other databases are left out), incident events,
a statement that mixes restored and other databases, and statement-format data changes in a
``--tables`` restore. Account statements (``CREATE USER``, ``GRANT``...) are left out: they
act on the server's accounts, whatever database their session had as default.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field

from datatier.log import get_logger
from datatier.mysql.binlog import events as ev
from datatier.mysql.binlog import query as q
from datatier.mysql.binlog.created import CreatedObject, named_objects
from datatier.mysql.binlog.euc import EUC
from datatier.mysql.binlog.groups import Group, ends_transaction
from datatier.mysql.binlog.multibyte import CHARSETS, Charset, UnspelledName
from datatier.mysql.binlog.selection import ReplayRefused, Selection, tables_kept
from datatier.mysql.binlog.singlebyte import SINGLE_BYTE
from datatier.mysql.binlog.sqlrefs import (
    Scan,
    account_statement,
    account_text,
    ambiguous_qualifiers,
    referenced_databases,
    rewrite,
    statement_tables,
    written_table,
)
from datatier.mysql.binlog.xa import XaLedger
from datatier.mysql.sqltext import ident, string_literal

log = get_logger(__name__)

LISTED_ACCOUNTS = 100
# Single-byte character sets whose lexer reads a byte above 0x7F as a space (their no-break
# space; checked on MariaDB 10.11): statements sent in them are scanned byte for byte.
BYTE_SPACES = dict.fromkeys(
    ["armscii8", "cp1250", "dec8", "geostd8", "greek", "hebrew", "latin1", "latin2", "latin5",
     "latin7"], 0xA0,
) | dict.fromkeys(["cp852", "cp866", "keybcs2"], 0xFF)  # fmt: skip

CLIENT_CHARSETS = CHARSETS | EUC | SINGLE_BYTE
"""Client character sets whose statements are scanned byte for byte (latin-1), their names
read as the server reads them."""


@dataclass
class Session:
    """Session settings already sent on the replay connection (sent again only on change)."""

    values: dict[str, object] = field(default_factory=dict)
    fde: bytes = b""

    def changed(self, name: str, value: object) -> bool:
        if self.values.get(name, object()) == value:
            return False
        self.values[name] = value
        return True


def binlog_statement(events: list[bytes]) -> bytes:
    return b"BINLOG '" + base64.b64encode(b"".join(events)) + b"'"


def _statement_end(chunk: list[bytes], checksum: bool) -> list[bytes]:
    """A statement's kept events (table maps, rows events); the last rows event flagged as
    its end (the original end may have been a dropped table's). Empty when no rows are
    kept."""
    if not any(e[4] in ev.ROWS_EVENTS for e in chunk):
        return []
    last = chunk[-1]
    if not ev.rows_flags(last) & ev.STMT_END:
        chunk = [*chunk[:-1], ev.with_stmt_end(last, checksum)]
    return chunk


class Translator:
    """Turns groups into statements for one replay connection (it remembers the session).

    ``charset_name`` maps a collation ID to its character set name (asked of the target).
    With ``selection.lowered`` the replayed statements spell the restored databases and
    tables, and the tables they create, lower-cased (:func:`sqlrefs.rewrite`).
    """

    def __init__(
        self,
        selection: Selection,
        charset_name: Callable[[int], str],
        *,
        max_binlog: int = 8 * 1024 * 1024,
    ) -> None:
        self.selection = selection
        self.max_binlog = max_binlog
        self.charset_name = charset_name
        self.session = Session()
        self._version = (0, 0, 0)
        self._checksum = True
        self.known = set(selection.known_databases) | set(selection.databases)
        self._maps: dict[bytes, tuple[int, bytes | None]] = {}  # table map body -> (id, new)
        self._xa = XaLedger()
        self.accounts_skipped = 0  # account statements left out; the first ones listed:
        self.accounts_listed: list[tuple[str, str]] = []  # (GTID, the statement's start)
        self.tables: set[tuple[str, str]] = set()  # (database, table) the replay writes
        self.mapped: set[tuple[str, str]] = set()  # of them, rows' tables, as the binlog has
        # objects of restored databases the replay creates, drops, renames or alters by
        # name, or writes rows to (folded when the selection folds; see
        # datatier.mysql.binlog.created), and restored databases it drops
        self.created: set[CreatedObject] = set()
        self.dropped_databases: set[str] = set()
        self._temporary: set[tuple[int, str, str]] = set()  # (thread, db, table) of sessions
        self._lowered: set[str] | None = None  # names statements spell lower-cased
        if selection.lowered is not None:
            self._lowered = {*selection.lowered, *selection.databases}

    def rows_only(self, fde: ev.FormatDescription, group: Group) -> list[list[bytes]] | None:
        """The row statements (each its table maps and rows events) replaying ``group``
        when it is a plain row transaction (row events and a commit, nothing else): several
        such transactions may share one ``BINLOG`` statement. None when it is anything else
        (see :meth:`statements`)."""
        if group.flags & (ev.FL_STANDALONE | ev.FL_PREPARED_XA | ev.FL_COMPLETED_XA):
            return None
        events = group.events
        if events[-1][4] != ev.XID:
            return None
        checksum = self._checksum = fde.checksum
        kept: list[list[bytes]] = []
        chunk: list[bytes] = []
        live: dict[int, bool] = {}
        rows_kinds = ev.ROWS_EVENTS
        for i in range(1, len(events) - 1):
            event = events[i]
            kind = event[4]
            if kind == ev.TABLE_MAP:
                table_id, renamed = self._table_map(event, checksum)
                live[table_id] = renamed is not None
                if renamed is not None:
                    chunk.append(renamed)
            elif kind in rows_kinds:
                if live.get(int.from_bytes(event[19:25], "little")):
                    chunk.append(event)
                if event[25] & ev.STMT_END:
                    if statement := _statement_end(chunk, checksum):
                        kept.append(statement)
                    chunk, live = [], {}
            elif kind != ev.ANNOTATE_ROWS:
                return None
        if chunk:
            raise ReplayRefused(f"transaction {group.gtid} ends inside a statement's row events")
        return kept

    def _table_map(self, event: bytes, checksum: bool) -> tuple[int, bytes | None]:
        """(table ID, the event as replayed or None if its table is not restored); the
        decision is cached by the event's body, the same for every use of the table."""
        body = event[ev.HEADER_LEN : len(event) - (ev.CRC_LEN if checksum else 0)]
        found = self._maps.get(body)
        if found is None:
            mapped = ev.table_map(event)
            target = self.selection.target_of(mapped.database, mapped.table)
            if target is None:
                found = (mapped.table_id, None)
            elif target == mapped.database:
                found = (mapped.table_id, b"")
            else:
                renamed = ev.rename_table_map(event, target, checksum)
                found = (
                    mapped.table_id,
                    renamed[ev.HEADER_LEN : len(renamed) - (ev.CRC_LEN if checksum else 0)],
                )
            self._maps[body] = found
            if target is not None:
                self._note_mapped(mapped.database, mapped.table)
        table_id, new_body = found
        if new_body is None:
            return table_id, None
        if not new_body:
            return table_id, event
        return table_id, ev.with_body(event, new_body, checksum)

    def statements(self, fde: ev.FormatDescription, group: Group) -> list[bytes]:
        """The statements replaying ``group`` (empty: nothing of it is restored). Row
        events of consecutive statements share one ``BINLOG`` statement (split only above
        ``max_binlog``); a ``BINLOG`` statement must end its packet (the server answers
        none of the statements after it in a multi-statement packet)."""
        xa = bool(group.flags & (ev.FL_PREPARED_XA | ev.FL_COMPLETED_XA))
        user_var = False  # a USER_VAR event is waiting for its statement
        xa_steps: list[tuple[str, str]] = []  # (XA verb, xid) of this group's XA statements
        self._version = fde.version
        self._checksum = fde.checksum
        body: list[bytes] = []
        rows: list[list[bytes]] = []  # row statements waiting for their BINLOG statement
        chunk: list[bytes] = []  # the current statement's table maps and rows events
        maps: dict[int, bool] = {}
        pending: list[bytes] = []  # INTVAR/RAND settings for the next statement
        for event in group.events[1:]:
            kind = event[4]
            if kind == ev.TABLE_MAP:
                mapped = ev.table_map(event)
                target = self.selection.target_of(mapped.database, mapped.table)
                maps[mapped.table_id] = target is not None
                if target is not None:
                    self._note_mapped(mapped.database, mapped.table)
                    if target != mapped.database:
                        event = ev.rename_table_map(event, target, fde.checksum)
                    chunk.append(event)
            elif kind in ev.ROWS_EVENTS:
                if maps.get(ev.rows_table_id(event)):
                    chunk.append(event)
                if ev.rows_flags(event) & ev.STMT_END:
                    if statement := _statement_end(chunk, fde.checksum):
                        rows.append(statement)
                    chunk, maps = [], {}
            elif kind in ev.QUERY_EVENTS:
                parsed = q.parse_query(event, fde.checksum)
                if xa and parsed.words[:1] == [b"XA"]:  # names no table: never replayed
                    xa_steps.append(q.xa_step(parsed.text))
                    continue
                statements = self._query(group, parsed, pending)
                pending = []
                if user_var and statements:
                    raise ReplayRefused(
                        f"transaction {group.gtid} uses user variables in statement format "
                        "on a restored database: not replayable (binlog_format=ROW avoids this)"
                    )
                user_var = False
                if statements:
                    body.extend(self.binlog(rows))
                    rows = []
                    body.extend(statements)
            elif kind == ev.XID:
                body.extend(self.binlog(rows))
                rows = []
                body.append(b"COMMIT")
            elif kind == ev.INTVAR:
                which, value = ev.intvar(event)
                name = b"LAST_INSERT_ID" if which == 1 else b"INSERT_ID"
                pending.append(b"SET " + name + b"=" + str(value).encode())
            elif kind == ev.RAND:
                one, two = ev.rand_seeds(event)
                pending.append(f"SET @@RAND_SEED1={one}, @@RAND_SEED2={two}".encode())
            elif kind in (ev.ANNOTATE_ROWS, ev.BINLOG_CHECKPOINT, ev.GTID_LIST):
                continue
            elif kind == ev.USER_VAR:
                user_var = True  # refused only if its statement acts on a restored database
            elif kind == ev.XA_PREPARE:
                xa_steps.append(("START", ev.xa_prepare_xid(event)))  # the xid its commit names
            elif kind in (ev.BEGIN_LOAD_QUERY, ev.APPEND_BLOCK, ev.DELETE_FILE):
                continue  # a LOAD DATA's file blocks (see EXECUTE_LOAD_QUERY)
            elif kind == ev.EXECUTE_LOAD_QUERY:
                self._load_data(group, q.parse_query(event, fde.checksum, q.EXECUTE_LOAD_EXTRA))
            elif kind == ev.INCIDENT:
                raise ReplayRefused(f"the binlog records an incident (lost events) at {group.gtid}")
            else:
                raise ReplayRefused(f"transaction {group.gtid} holds binlog event type {kind}")
        empty = all(s in (b"COMMIT", b"ROLLBACK") for s in body)
        if xa:  # rows kept or statements replayed: it acts on a restored table
            self._xa.settle(group.gtid, xa_steps, acts=bool(chunk or rows) or not empty)
            return []
        if chunk or rows:
            raise ReplayRefused(f"transaction {group.gtid} ends inside a statement's row events")
        if empty:
            return []
        head = self._fde(fde)
        if group.standalone:
            return head + body
        if body[-1] not in (b"COMMIT", b"ROLLBACK"):
            raise ReplayRefused(f"transaction {group.gtid} does not end with a commit")
        return [*head, b"START TRANSACTION", *body]

    def _fde(self, fde: ev.FormatDescription) -> list[bytes]:
        if self.session.fde == fde.event:
            return []
        self.session.fde = fde.event
        return [binlog_statement([fde.event])]

    def binlog(self, statements: list[list[bytes]]) -> list[bytes]:
        """Row statements as BINLOG statements of about ``max_binlog`` bytes of events.

        Several row statements share one BINLOG statement; a row statement larger than
        that is cut between its rows events, each piece with the statement's table maps
        again and its last rows event flagged as a statement end: rows events whose table
        map is in an earlier BINLOG statement are skipped by the server without an error.
        """
        out: list[bytes] = []
        piece: list[bytes] = []
        size = 0
        for statement in statements:
            for part in self._pieces(statement):
                length = sum(len(e) for e in part)
                if piece and size + length > self.max_binlog:
                    out.append(binlog_statement(piece))
                    piece, size = [], 0
                piece.extend(part)
                size += length
        if piece:
            out.append(binlog_statement(piece))
        return out

    def _pieces(self, statement: list[bytes]) -> list[list[bytes]]:
        """``statement`` cut into statements of at most about ``max_binlog`` bytes."""
        if sum(len(e) for e in statement) <= self.max_binlog:
            return [statement]
        maps = [e for e in statement if e[4] == ev.TABLE_MAP]
        rows = [e for e in statement if e[4] != ev.TABLE_MAP]
        budget = max(1, self.max_binlog - sum(len(e) for e in maps))
        pieces: list[list[bytes]] = []
        current: list[bytes] = []
        size = 0
        for event in rows:
            if current and size + len(event) > budget:
                current[-1] = ev.with_stmt_end(current[-1], self._checksum)
                pieces.append([*maps, *current])
                current, size = [], 0
            current.append(event)
            size += len(event)
        pieces.append([*maps, *current])
        return pieces

    def transaction(self, statements: list[list[bytes]]) -> list[bytes]:
        """Row statements of several source transactions as one transaction of BINLOG
        statements (:meth:`binlog`)."""
        return [b"START TRANSACTION", *self.binlog(statements), b"COMMIT"]

    def binlog_sizes(self, statements: list[list[bytes]]) -> list[int]:
        """The sizes :meth:`binlog` would give each row statement's pieces (base64)."""
        sizes = []
        for statement in statements:
            maps = sum(len(e) for e in statement if e[4] == ev.TABLE_MAP)
            largest = max(len(e) for e in statement)
            total = sum(len(e) for e in statement)
            sizes.append(min(total, max(self.max_binlog, maps + largest)) * 4 // 3 + 12)
        return sizes

    # -- query events ---------------------------------------------------------------------

    def _query(self, group: Group, event: q.QueryEvent, pending: list[bytes]) -> list[bytes]:
        words = event.words
        if not group.standalone and ends_transaction(words):
            return [words[0]]
        if event.gtid_flags3 & q.FL_START_ALTER:
            raise ReplayRefused(f"{group.gtid} is a two-phase ALTER (binlog_alter_two_phase)")
        text, codec, space, charset = self._text(event)
        found = self.selection.scan(text, event.sql_mode, space, charset)
        if account_statement(found):  # accounts are the server's, not a restored database's
            shown = account_text(text, found)[:60]
            log.info("replay.account_statement_skipped", gtid=group.gtid, statement=shown)
            self.accounts_skipped += 1
            if len(self.accounts_listed) < LISTED_ACCOUNTS:
                self.accounts_listed.append((str(group.gtid), shown))
            return []
        default = self.selection.key(event.database)
        session_tables = self._session_temporary(found, default, event.thread_id)
        refs = referenced_databases(found, default, self.known, event.sql_mode or 0)
        restored = refs & self.selection.databases
        if not restored:
            return []
        where = f"{group.gtid} ({text[:60] if charset is None else charset.decode(text[:60])!r})"
        if refs - self.selection.databases:
            others = ", ".join(sorted(refs - self.selection.databases))
            raise ReplayRefused(
                f"statement {where} acts on restored databases and on {others}: not replayable"
            )
        if self.selection.by_table and not tables_kept(self.selection, found, default, where):
            return []
        self._note_tables(found, default, session_tables)
        renames = self.selection.renames
        if unclear := ambiguous_qualifiers(found, renames):
            raise ReplayRefused(
                f"statement {where} names {', '.join(unclear)} both as a table (or alias) and "
                "as the qualifier of a two-part name: whether that is the renamed database "
                "or the table's column cannot be told apart without the server's parser",
                hint="restore that database under its own name (no --rename), or replay this "
                "window by hand; nothing was changed",
            )
        try:
            text = rewrite(text, found, renames, self.known, self._lowered or (), charset)
        except UnspelledName as exc:
            raise ReplayRefused(f"statement {where}: {exc}") from exc
        statements = self._session(event, self._version)
        # a default database outside the restore plays no part (every name is qualified,
        # see qualified.py) and may not exist on the target: no USE of it. CREATE/DROP
        # DATABASE run without USE (their database need not exist), but ALTER DATABASE
        # without a name acts on the default database.
        if default in self.selection.databases and (
            not event.suppress_use or found.default_database
        ):
            spelled = event.database if self._lowered is None else default
            target = renames.get(default, spelled)
            if self.session.changed("db", target):
                statements.append(b"USE " + _spelled(target, charset, where))
        statements.extend(pending)
        statements.append(text.encode(codec, "surrogateescape"))
        return statements

    def _text(self, event: q.QueryEvent) -> tuple[str, str, str, Charset | None]:
        """A statement's text, the codec giving its bytes back, the one more space
        character of its client character set (:data:`BYTE_SPACES`) and that character
        set when the scanner reads it byte for byte (:data:`CLIENT_CHARSETS`: read as
        latin-1, names in the charset), else None (read as UTF-8)."""
        client = self.charset_name(event.charset[0]) if event.charset else ""
        if (charset := CLIENT_CHARSETS.get(client)) is None:
            return event.text.decode("utf-8", "surrogateescape"), "utf-8", "", None
        byte = BYTE_SPACES.get(client)
        return event.text.decode("latin-1"), "latin-1", "" if byte is None else chr(byte), charset

    def _note_mapped(self, database: str, table: str) -> None:
        """A restored table rows are replayed to, spelled as its table map spells it (a
        source storing names lower-cased writes them so, a case-sensitive one as they are),
        into :attr:`mapped` and :attr:`tables` (folded when the selection folds)."""
        self.mapped.add((database, table))
        key = self.selection.key
        self.tables.add((key(database), key(table)))
        self.created.add(("table", key(database), key(table)))

    def _session_temporary(self, found: Scan, default: str, thread: int) -> set[tuple[str, str]]:
        """The temporary tables of session ``thread`` as of this statement (run in
        ``default``): a ``CREATE TEMPORARY TABLE`` adds its table, a ``DROP [TEMPORARY]
        TABLE`` of one takes it away (a session's own temporary table hides a table of that
        name). Any statement, replayed or not, for what it tells of the session."""
        words = found.words
        if words[:1] in (["CREATE"], ["DROP"]) and "TABLE" in words[1:5]:
            tables = {(thread, db, t) for db, t in statement_tables(found, default) or []}
            if words[0] == "CREATE" and "TEMPORARY" in words[1:4]:
                self._temporary |= tables
            elif words[0] == "DROP":  # the tables it drops are its session's, if they are
                before = {(db, t) for th, db, t in self._temporary if th == thread}
                self._temporary -= tables
                return before
        return {(db, t) for th, db, t in self._temporary if th == thread}

    def _note_tables(self, found: Scan, default: str, temporary: set[tuple[str, str]]) -> None:
        """Into :attr:`tables`, the restored tables a replayed statement names as a table
        DDL's (CREATE, ALTER, RENAME...) or as the one table a data change writes; into
        :attr:`created`, the objects of restored databases it names (creates, drops...) and
        writes, but not its session's ``temporary`` tables (no object of the database: a
        table of that name made later on the target is not the window's); into
        :attr:`dropped_databases`, the restored databases it drops."""
        databases = self.selection.databases
        self.created.update(
            o
            for o in named_objects(found, default)
            if o[1] in databases and (o[0] != "table" or (o[1], o[2]) not in temporary)
        )
        named = statement_tables(found, default) or []
        if written := written_table(found, default):
            named.append(written)
            if written[0] in databases and written not in temporary:
                self.created.add(("table", *written))
        if found.words[:1] == ["DROP"]:
            self.dropped_databases.update(
                d.value for d in found.database_objects if d.value in databases
            )
        restored = [t for t in named if t[0] in self.selection.databases]
        self.tables.update(restored)
        if self._lowered is not None:
            self._lowered.update(table for _, table in restored)

    def _load_data(self, group: Group, event: q.QueryEvent) -> None:
        """A statement-format LOAD DATA: refused when it loads into a restored database
        (its file is in the binlog, but no replay of its text can point the server at
        it), left out otherwise."""
        text, _, space, charset = self._text(event)
        found = self.selection.scan(text, event.sql_mode, space, charset)
        default = self.selection.key(event.database)
        refs = referenced_databases(found, default, self.known, event.sql_mode or 0)
        if refs & self.selection.databases:
            raise ReplayRefused(
                f"transaction {group.gtid} is a statement-format LOAD DATA into a restored "
                f"database ({text[:80]!r}): not replayable",
                hint="restore up to the transaction before it (--until-gtid), then load that "
                "file again by hand; binlog_format=ROW or MIXED logs LOAD DATA as rows",
            )

    def _session(self, event: q.QueryEvent, version: tuple[int, int, int]) -> list[bytes]:
        out: list[str] = []
        stamp = f"{event.timestamp}" + (
            f".{event.microseconds:06d}" if event.microseconds is not None else ""
        )
        out.append(f"SET TIMESTAMP={stamp}")
        if self.session.changed("thread", event.thread_id):
            out.append(f"SET @@session.pseudo_thread_id={event.thread_id}")
        if event.flags2 is not None and self.session.changed("flags2", event.flags2):
            out.append("SET " + ", ".join(flag_settings(event.flags2, version)))
        if event.sql_mode is not None and self.session.changed("sql_mode", event.sql_mode):
            out.append(f"SET @@session.sql_mode={event.sql_mode}")
        if event.auto_increment and self.session.changed("auto_inc", event.auto_increment):
            inc, off = event.auto_increment
            out.append(
                f"SET @@session.auto_increment_increment={inc}, "
                f"@@session.auto_increment_offset={off}"
            )
        if event.charset and self.session.changed("charset", event.charset):
            client, connection, server = event.charset
            out.append(
                f"SET @@session.character_set_client={self.charset_name(client)}, "
                f"@@session.collation_connection={connection}, @@session.collation_server={server}"
            )
        zone = event.time_zone or "SYSTEM"
        if self.session.changed("time_zone", zone):
            out.append(f"SET @@session.time_zone={string_literal(zone)}")
        names = event.lc_time_names or 0
        if self.session.changed("lc_time_names", names):
            out.append(f"SET @@session.lc_time_names={names}")
        collation = event.charset_database or "DEFAULT"
        if self.session.changed("charset_database", collation):
            out.append(f"SET @@session.collation_database={collation}")
        return [s.encode() for s in out]


def _spelled(name: str, charset: Charset | None, where: str) -> bytes:
    """``name`` quoted as a statement in ``charset`` (UTF-8 when None) writes it: read in
    the session's client character set, a name in UTF-8 bytes is another name there."""
    if charset is None:
        return ident(name).encode()
    try:
        return charset.quoted(name).encode("latin-1")
    except UnspelledName as exc:
        raise ReplayRefused(f"statement {where}: its database name {exc}") from exc


def flag_settings(flags2: int, version: tuple[int, int, int]) -> list[str]:
    """The session variables ``flags2`` of a query event stands for; the newer ones only
    when the server that wrote the event (``version``) had them."""
    found = [
        f"@@session.foreign_key_checks={int(not flags2 & q.NO_FOREIGN_KEY_CHECKS)}",
        f"@@session.sql_auto_is_null={int(bool(flags2 & q.AUTO_IS_NULL))}",
        f"@@session.unique_checks={int(not flags2 & q.RELAXED_UNIQUE_CHECKS)}",
        f"@@session.check_constraint_checks={int(not flags2 & q.NO_CHECK_CONSTRAINT_CHECKS)}",
    ]
    if version >= (10, 5, 2):
        found.append(f"@@session.sql_if_exists={int(bool(flags2 & q.IF_EXISTS))}")
    if version >= (10, 10, 1):
        found.append(
            "@@session.explicit_defaults_for_timestamp="
            f"{int(bool(flags2 & q.EXPLICIT_DEFAULTS_FOR_TIMESTAMP))}"
        )
    if version >= (10, 11, 0):
        found.append(
            f"@@session.system_versioning_insert_history={int(bool(flags2 & q.INSERT_HISTORY))}"
        )
    return found
