"""The order journal: every order-entry call and cancel, in a SQLite file in WAL mode.

A call's rows (one per order; one for a call that names none) are written before it goes
upstream, as `pending`, and completed with Kalshi's status and order ids after. A crash
in between leaves them `pending`: the calls whose outcome is unknown. Before an order call
goes, its rows are appended to the intent log (gateway/intents.py), and reach SQLite
while the call is in flight (`intend`, then `record`): the order waits for no commit.
The file also keeps the halt state, so a halt survives a restart. No key, token, signature
or body is stored, only the orders' terms.

Writes happen on the event loop: with WAL and synchronous=NORMAL a commit is a write to
the OS, tens of microseconds, and it survives the process being killed.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from signing_proxy.gateway import intents
from signing_proxy.gateway.orders import ItemResult, OrderFields

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call INTEGER NOT NULL,
    item INTEGER NOT NULL,
    time TEXT NOT NULL,
    day TEXT NOT NULL,
    request_id TEXT NOT NULL,
    client TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    decision TEXT NOT NULL,
    state TEXT NOT NULL,
    ticker TEXT, side TEXT, count TEXT, price TEXT, notional TEXT,
    client_order_id TEXT, subaccount INTEGER,
    status INTEGER, order_id TEXT, error TEXT, done_time TEXT
);
CREATE INDEX IF NOT EXISTS journal_client_day ON journal (client, day);
-- Readers take the latest rows by time (ids follow when answers came, not when calls were
-- sent), and the calls since a time are looked up against the intent logs.
CREATE INDEX IF NOT EXISTS journal_time ON journal (time);
CREATE TABLE IF NOT EXISTS halts (
    scope TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    since TEXT NOT NULL,
    automatic INTEGER NOT NULL DEFAULT 0
);
"""
# Every column a reader gets, in order.
COLUMNS: Final = (
    "id", "call", "item", "time", "request_id", "client", "method", "path", "kind",
    "decision", "state", "ticker", "side", "count", "price", "notional", "client_order_id",
    "subaccount", "status", "order_id", "error", "done_time",
)  # fmt: skip
# How far back the orders a client placed are looked up (for its dead-man's switch).
_PLACED_DAYS: Final = 31
# Who the journal names for the proxy's own calls and for calls without a token.
ANONYMOUS: Final = ""


def now_utc() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """`moment` as ISO 8601 with milliseconds, e.g. 2026-11-30T06:24:48.123Z."""
    # isoformat is C; strftime took ~30 us a call on the order path.
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


@dataclass(frozen=True, slots=True)
class CallEntry:
    """One call to journal: who sent what, and what the proxy decided."""

    request_id: str
    client: str | None
    method: str
    path: str
    kind: str
    decision: str  # forwarded | refused | dry_run
    orders: Sequence[OrderFields]
    error: str | None = None  # the proxy's code, when it refused


@dataclass(slots=True, eq=False)  # compared by identity: two calls never share an intent
class Intent:
    """A forwarded call's rows, written to the intent log; `first` once SQLite has them."""

    rows: list[tuple[Any, ...]]
    first: int | None = None
    segment: intents.Segment | None = None  # the intent file holding it, while SQLite lacks it


@dataclass(frozen=True, slots=True)
class Halt:
    """A halt in force: everyone (`*`) or one client, why, since when, and whether it lifts
    itself (a dead-man's switch lifts on the client's next call)."""

    scope: str
    reason: str
    since: str
    automatic: bool = False


class Journal:
    """The SQLite journal file; one connection, used from the event loop only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = not path.exists()
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if fresh:
            os.chmod(path, 0o600)  # trading activity is nobody else's business
        # Small pages: a commit writes whole pages to the WAL, and a row is ~300 bytes
        # (only takes effect when the file is created).
        self._db.execute("PRAGMA page_size=1024")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Writes happen on the event loop: wait for another writer of the file briefly, then
        # give up (an order is then refused with 503, not delayed for long).
        self._db.execute("PRAGMA busy_timeout=250")
        # Checkpoints (which sync the file) run in a thread (`checkpoint`), not in a commit
        # on the order path.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.executescript(_SCHEMA)
        self._inode = os.stat(path).st_ino
        # Rows a dead proxy had only in its intent log: in flight when it died.
        intents.replay_orphans(path, self._put_back)
        self._intents = intents.IntentLog(path) if intents.SUPPORTED else None
        # Intents whose rows SQLite refused: retried before the next order goes.
        self._behind: list[Intent] = []

    def _still_there(self) -> None:
        """Refuse to write into a file someone deleted or replaced: nobody could read it."""
        try:
            same = os.stat(self.path).st_ino == self._inode
        except OSError:
            same = False
        if not same:
            raise sqlite3.OperationalError(f"the journal file {self.path} was deleted or replaced")

    def close(self) -> None:
        """Close the file (a checkpoint folds the WAL back into it)."""
        if self._intents is not None:
            self._intents.close()
        self._db.close()

    def begin(self, entry: CallEntry, moment: datetime | None = None) -> int:
        """Write a call's rows (pending when forwarded, done otherwise); the first row's id.

        The rows of one call are written in one transaction, so their ids run on from the
        first: `complete` finds them by primary key (no index on `call` to keep up)."""
        self._still_there()
        return self._insert(_rows(entry, moment or now_utc()))

    def intend(self, entry: CallEntry) -> Intent:
        """Write a forwarded call's rows to the intent log, before it goes upstream; `finish`
        puts them in SQLite with the answer (or `record`, as pending, while it is still in
        flight). Raises (the call must not go) when they cannot be written, or
        when SQLite still refuses rows of earlier calls (a replaced file among the reasons:
        `record` checks for that, off the order's path)."""
        if self._behind:
            self._catch_up()
        intent = Intent(_rows(entry, now_utc()))
        if self._intents is None:
            intent.first = self._insert(intent.rows)
        else:
            intent.segment = self._intents.append(intent.rows)
        return intent

    def record(self, intent: Intent) -> int:
        """Put an intent's rows in SQLite, once (while its call is in flight); the first id."""
        if intent.first is None:
            self._write(intent, intent.rows, _INSERT)
        assert intent.first is not None
        return intent.first

    def _write(self, intent: Intent, rows: Sequence[tuple[Any, ...]], statement: str) -> None:
        """Insert an intent's rows (as pending, or answered); kept to retry if SQLite refuses."""
        try:
            self._still_there()
            intent.first = self._insert(rows, statement)
        except sqlite3.Error:
            if intent not in self._behind:
                self._behind.append(intent)  # its rows go in as pending, before the next call
            raise
        if self._intents is not None and intent.segment is not None:
            self._intents.recorded(intent.segment)
            intent.segment = None

    def _catch_up(self) -> None:
        """Record the intents SQLite refused before (they stay in the log until it takes them)."""
        while self._behind:
            self.record(self._behind[0])
            self._behind.pop(0)

    def _insert(self, rows: Sequence[tuple[Any, ...]], statement: str = "") -> int:
        statement = statement or _INSERT
        with self._db:
            cursor = self._db.execute(statement, rows[0])
            first = int(cursor.lastrowid or 0)
            if len(rows) > 1:
                self._db.executemany(statement, rows[1:])
        return first

    def _put_back(self, calls: list[intents.Rows]) -> None:
        """Insert the calls of a dead proxy's intent log that SQLite does not have."""
        if not calls:
            return
        since = min(str(rows[0][_TIME]) for rows in calls)
        with self._db:
            # Which of these calls are here: one look at the rows since the oldest (by time).
            known = {c for (c,) in self._db.execute(_CALLS_SINCE, (since,))}
            for rows in calls:
                if rows[0][_CALL] not in known:
                    self._db.executemany(_INSERT, rows)

    def finish(
        self,
        intent: Intent,
        status: int,
        results: Sequence[ItemResult],
        error: str | None,
        *,
        known: bool = True,
    ) -> None:
        """Record a forwarded call's answer: status, each order's id or error; `known` is
        False when the call may or may not have reached Kalshi. A call answered before its
        rows reached SQLite (nearly every one) is written once, answer and all."""
        if intent.first is not None:
            self.complete(intent.first, status, results, error, known=known, rows=len(intent.rows))
            return
        done = iso(now_utc())
        state = "done" if known else "unknown"
        answered = []
        for index, row in enumerate(intent.rows):
            result = results[index] if index < len(results) else _NO_RESULT
            order_id = result.order_id or row[_ORDER_ID]
            outcome = (result.error or error, status, done)
            answered.append(
                (*row[:_STATE], state, *row[_STATE + 1 : _ORDER_ID], order_id, *outcome)
            )
        self._write(intent, answered, _INSERT_ANSWERED)

    def complete(
        self,
        first: int,
        status: int,
        results: Sequence[ItemResult],
        error: str | None,
        *,
        known: bool = True,
        rows: int = 1,
    ) -> None:
        """Record the answer for the call whose rows start at id `first` (`rows` of them):
        status, each order's id or error; `known` is False when the call may or may not
        have reached Kalshi."""
        done = iso(now_utc())
        state = "done" if known else "unknown"
        items = [
            (state, status, result.error or error, done, result.order_id, first + index)
            for index, result in enumerate(results[:rows])
        ]
        with self._db:
            self._db.executemany(_COMPLETE_ITEM, items)
            if len(items) < rows:
                self._db.execute(
                    "UPDATE journal SET state = ?, status = ?, error = ?, done_time = ?"
                    " WHERE id BETWEEN ? AND ?",
                    (state, status, error, done, first + len(items), first + rows - 1),
                )

    def checkpoint(self) -> None:
        """Fold the WAL back into the file, from another thread, off the order path."""
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=1000")
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def daily_notional(self, client: str, day: str) -> Decimal:
        """Dollars of orders `client` sent on `day`, counting calls whose outcome is unknown."""
        # A proxy on the same file that died since this one started left its last calls in
        # its intent log only: put them in first (asked once per client and day).
        intents.replay_orphans(self.path, self._put_back)
        rows = self._db.execute(
            "SELECT notional FROM journal WHERE client IS ? AND day = ? AND decision = 'forwarded'"
            " AND kind IN ('create', 'batch', 'amend') AND notional IS NOT NULL"
            " AND (state IN ('pending', 'unknown')"
            " OR (status BETWEEN 200 AND 299 AND error IS NULL))",
            (client or None, day),  # the anonymous client (no tokens) is stored as NULL
        )
        return sum((Decimal(notional) for (notional,) in rows), Decimal(0))

    def placed_orders(self, client: str) -> set[str]:
        """Ids of the orders `client` placed (recently) that Kalshi accepted."""
        since = iso(datetime.fromtimestamp(now_utc().timestamp() - _PLACED_DAYS * 86400, UTC))
        rows = self._db.execute(
            "SELECT order_id FROM journal WHERE client IS ? AND time >= ? AND order_id IS NOT NULL"
            " AND kind IN ('create', 'batch', 'amend') AND status BETWEEN 200 AND 299",
            (client or None, since),
        )
        return {order_id for (order_id,) in rows}

    def pending(self) -> int:
        """How many calls have no known outcome (in flight, cut by a crash, or timed out)."""
        row = self._db.execute(
            "SELECT COUNT(DISTINCT call) FROM journal WHERE state IN ('pending', 'unknown')"
        )
        return int(row.fetchone()[0])

    def halts(self) -> list[Halt]:
        """The halts in force."""
        rows = self._db.execute("SELECT scope, reason, since, automatic FROM halts ORDER BY scope")
        return [
            Halt(scope, reason, since, bool(automatic)) for scope, reason, since, automatic in rows
        ]

    def set_halt(self, halt: Halt) -> None:
        """Record a halt (replacing one of the same scope)."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO halts (scope, reason, since, automatic)"
                " VALUES (?, ?, ?, ?)",
                (halt.scope, halt.reason, halt.since, int(halt.automatic)),
            )

    def clear_halts(self, scopes: Iterable[str]) -> None:
        """Lift the halts of `scopes`."""
        with self._db:
            self._db.executemany("DELETE FROM halts WHERE scope = ?", [(s,) for s in scopes])


def read(
    path: Path, *, since: str | None = None, client: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """The journal's rows, oldest first, opened read-only (the proxy may be writing)."""
    # The intent logs first, then SQLite in one snapshot: a call answered (its rows put in
    # SQLite, its log perhaps emptied) while this reads is then in one or the other.
    calls = intents.read_all(path)
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        db.execute("BEGIN")  # the rows and the calls SQLite has, from the same snapshot
        query = f"SELECT {', '.join(COLUMNS)} FROM journal WHERE time >= ?"  # noqa: S608 - fixed names
        args: list[Any] = [since or ""]
        if client is not None:
            query += " AND client = ?"
            args.append(client)
        # By time, as the rows from the intent logs are merged: ids follow the order in which
        # answers came (and a killed proxy's calls are put back at the next start), not sent.
        query += " ORDER BY time DESC, id DESC LIMIT ?"
        args.append(limit)
        rows = db.execute(query, args).fetchall()
        found = [dict(zip(COLUMNS, row, strict=True)) for row in reversed(rows)]
        found += _in_flight(db, calls, since, client)
    finally:
        db.close()
    found.sort(key=lambda row: str(row["time"]))
    if limit < 0:
        return found  # as SQLite reads LIMIT -1: no limit
    return found[-limit:] if limit else []


def _in_flight(
    db: sqlite3.Connection, logged: list[intents.Rows], since: str | None, client: str | None
) -> list[dict[str, Any]]:
    """Rows only the intent logs hold yet: calls in flight, or a dead proxy's last ones."""
    calls = [rows for rows in logged if str(rows[0][_TIME]) >= (since or "")]
    if not calls:
        return []
    oldest = min(str(rows[0][_TIME]) for rows in calls)
    known = {c for (c,) in db.execute(_CALLS_SINCE, (oldest,))}
    return [
        _as_read(row)
        for rows in calls
        if rows[0][_CALL] not in known
        for row in rows
        if client is None or row[_CLIENT] == client
    ]


def _as_read(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row as the intent log holds it (see _row), in the shape `read` gives."""
    (call, item, time, _day, request_id, client, method, path, kind, decision, state) = row[:11]
    terms = dict(zip(COLUMNS[11:18], row[11:18], strict=True))
    return {
        "id": None, "call": call, "item": item, "time": time, "request_id": request_id,
        "client": client, "method": method, "path": path, "kind": kind, "decision": decision,
        "state": state, **terms, "status": None, "order_id": row[_ORDER_ID],
        "error": row[_ORDER_ID + 1], "done_time": None,
    }  # fmt: skip


_COMPLETE_ITEM: Final = (
    "UPDATE journal SET state = ?, status = ?, error = ?, done_time = ?,"
    " order_id = COALESCE(?, order_id) WHERE id = ?"
)
# Where a row holds its call number, time, state and order id (see _row).
_CALL: Final = 0
_TIME: Final = 2
_CLIENT: Final = 5
_STATE: Final = 10
_ORDER_ID: Final = 18
_INSERT_ANSWERED: Final = (
    "INSERT INTO journal (call, item, time, day, request_id, client, method, path, kind,"
    " decision, state, ticker, side, count, price, notional, client_order_id, subaccount,"
    " order_id, error, status, done_time)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_NO_RESULT: Final = ItemResult(None, None)
_CALLS_SINCE: Final = "SELECT DISTINCT call FROM journal WHERE time >= ?"
_INSERT: Final = (
    "INSERT INTO journal (call, item, time, day, request_id, client, method, path, kind,"
    " decision, state, ticker, side, count, price, notional, client_order_id, subaccount,"
    " order_id, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _rows(entry: CallEntry, moment: datetime) -> list[tuple[Any, ...]]:
    """A call's rows, one per order (one for a call that names none)."""
    state = "pending" if entry.decision == "forwarded" else "done"
    orders: Sequence[OrderFields] = entry.orders or (OrderFields(),)
    # A random number, so that two proxies sharing the file never mix their calls and
    # no second statement is needed to learn it.
    call = random.getrandbits(56)  # seeded from os.urandom; no system call per call
    return [_row(call, entry, index, order, moment, state) for index, order in enumerate(orders)]


def _row(
    call: int, entry: CallEntry, index: int, order: OrderFields, moment: datetime, state: str
) -> tuple[Any, ...]:
    notional = order.notional
    return (
        call,
        index,
        iso(moment),
        moment.date().isoformat(),
        entry.request_id,
        entry.client,
        entry.method,
        entry.path,
        entry.kind,
        entry.decision,
        state,
        order.ticker,
        order.side,
        _text(order.count),
        _text(order.price),
        _text(notional),
        order.client_order_id,
        order.subaccount,
        order.order_id,
        entry.error,
    )


def _text(number: Decimal | None) -> str | None:
    return None if number is None else str(number)
