"""The trading gateway of one process: halts, risk rules, the daily notional, the dead-man's
switch and the journal, applied to each order call before it is signed.

The forwarder asks `judge` (may this call go?), `begin` (journal the intent, right before
it goes upstream) and `complete` (Kalshi's answer). Calls that are not order calls never
reach here, so they cost nothing.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from signing_proxy.config.risk import RiskConfig
from signing_proxy.config.tokens import TokenConfig
from signing_proxy.gateway import halt as halts_
from signing_proxy.gateway import risk
from signing_proxy.gateway.deadman import Heartbeats
from signing_proxy.gateway.halt import Caller, CancelReport
from signing_proxy.gateway.journal import ANONYMOUS, CallEntry, Halt, Intent, Journal, now_utc
from signing_proxy.gateway.orders import (
    JUDGED_KINDS,
    OrderCall,
    OrderFields,
    read_answer,
    read_orders,
)
from signing_proxy.gateway.risk import Refused
from signing_proxy.ops.logging import get_logger

ZERO: Final = Decimal(0)


@dataclass(slots=True)
class GateStats:
    """Counts for the metrics: refusals by code, halts by kind, dead-man triggers."""

    refusals: Counter[str] = field(default_factory=Counter)
    halts: Counter[str] = field(default_factory=Counter)
    deadman_triggers: Counter[str] = field(default_factory=Counter)
    orders_cancelled: int = 0
    journal_errors: int = 0


@dataclass(slots=True)
class Ticket:
    """An order call let through: what was reserved for it and where it is journaled."""

    call: OrderCall
    orders: Sequence[OrderFields]
    client: str
    day: str
    reserved: Decimal = ZERO
    intent: Intent | None = None  # its journal rows, once begun


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who sent which call: what the journal names it by."""

    request_id: str
    client: str | None
    method: str
    path: str


class Gate:
    """Halts, the per-client counters of the risk rules, heartbeats and the journal."""

    def __init__(self, journal: Journal | None) -> None:
        self.journal = journal
        self.halts = halts_.Halts(journal)
        self.order_rate = risk.OrderRate()
        self.daily = risk.DailyNotional(journal.daily_notional if journal else _nothing)
        self.heartbeats = Heartbeats()
        self.stats = GateStats()

    def configure(self, tokens: Sequence[TokenConfig]) -> None:
        """Take a generation's heartbeat tokens; those with orders in the journal count from
        now, so a bot that never comes back after a restart still has its orders cancelled."""
        intervals = {t.name: t.heartbeat for t in tokens if t.heartbeat is not None}
        armed = {c for c in intervals if self.journal and self.journal.placed_orders(c)}
        self.heartbeats.configure(intervals, armed)

    def saw(self, client: str) -> Halt | None:
        """Note a call from `client` (its heartbeat); the dead-man halt this call lifted."""
        fired = self.heartbeats.seen(client)
        if fired or self.halts.for_client(client) is not None:
            return self.halts.lift_automatic(client)
        return None

    def judge(
        self,
        rules: RiskConfig,
        client: str | None,
        call: OrderCall,
        orders: Sequence[OrderFields] | None,
        *,
        commit: bool,
        lifted: Halt | None = None,
    ) -> Ticket | Refused:
        """May `call` go? A ticket (with its reservations when `commit`), or why not."""
        name = client or ANONYMOUS
        ticket = Ticket(call, orders or (), name, now_utc().date().isoformat())
        # Only entry is halted; cancels always pass.
        stop = (lifted or self.halts.for_client(client)) if call.is_entry else None
        if stop is not None:
            return halts_.halted(stop)
        if call.kind not in JUDGED_KINDS or not risk.active(rules):
            return ticket
        refused = risk.unreadable(orders, rules)
        for order in ticket.orders:
            refused = refused or risk.check(order, rules)
        if refused is not None:
            return refused
        return self._count(rules, ticket, commit)

    def _count(self, rules: RiskConfig, ticket: Ticket, commit: bool) -> Ticket | Refused:
        """The rules that count across calls: orders per minute and dollars per day."""
        orders = len(ticket.orders)
        limit = rules.max_orders_per_minute
        refused = self.order_rate.take(ticket.client, orders, limit, count=False)
        cap = rules.max_daily_notional
        amount = sum((o.notional or ZERO for o in ticket.orders), ZERO)
        if refused is None and cap is not None:
            refused = self.daily.reserve(ticket.client, ticket.day, amount, cap, commit=commit)
            ticket.reserved = amount if commit else ZERO
        if refused is not None or not commit:
            return refused or ticket
        self.order_rate.take(ticket.client, orders, limit)
        return ticket

    def refused(
        self,
        info: CallInfo,
        call: OrderCall,
        orders: Sequence[OrderFields] | None,
        code: str | None,
        *,
        dry_run: bool = False,
    ) -> None:
        """Journal a call the proxy answered itself (refused, or a dry run) and count it."""
        if not dry_run and code is not None:
            self.stats.refusals[code] += 1
        if self.journal is not None:
            decision = "dry_run" if dry_run else "refused"
            entry = _entry(info, call, orders or (), decision, code)
            self._safely(lambda journal: journal.begin(entry))

    def begin(self, info: CallInfo, ticket: Ticket) -> bool:
        """Journal the intent, before the call goes upstream; False if it cannot be written.

        The rows reach SQLite with the answer (`complete`), or as pending (`record`) when
        the call is still in flight after a while."""
        if self.journal is None:
            return True
        entry = _entry(info, ticket.call, ticket.orders, "forwarded", None)
        try:
            ticket.intent = self.journal.intend(entry)
        except (sqlite3.Error, OSError) as exc:
            self.stats.journal_errors += 1
            get_logger().error("journal_write_failed", error=str(exc), path=str(self.journal.path))
            return False
        return True

    def record(self, ticket: Ticket) -> None:
        """Put a begun call's rows in SQLite as pending, while it is still in flight (a call
        answered first is written once, answer and all, by `complete`)."""
        intent = ticket.intent
        if intent is not None and intent.first is None:
            self._safely(lambda journal: journal.record(intent))

    def abandon(self, info: CallInfo, ticket: Ticket, code: str) -> None:
        """The call was stopped after admission (the local rate limit): nothing was sent."""
        self.daily.give_back(ticket.client, ticket.day, ticket.reserved)
        self.refused(info, ticket.call, ticket.orders, code)

    def complete(
        self, ticket: Ticket, status: int, body: bytes | None, error: str | None, *, known: bool
    ) -> None:
        """Record the answer; give back the daily notional of orders that did not go in.

        `known` is False when the call may or may not have reached Kalshi: its orders stay
        counted, and the journal marks the outcome unknown."""
        intent = ticket.intent
        give_back = bool(ticket.reserved) and known
        if intent is None and not give_back:
            return  # no journal, nothing reserved: the answer need not be read
        results = read_answer(body) if body is not None else []
        if give_back:
            failed = status >= 300
            back = sum(
                (
                    order.notional or ZERO
                    for index, order in enumerate(ticket.orders)
                    if failed or (index < len(results) and results[index].error)
                ),
                ZERO,
            )
            self.daily.give_back(ticket.client, ticket.day, back)
        if intent is not None:
            self._safely(
                lambda journal: journal.finish(intent, status, results, error, known=known)
            )

    def _safely(self, write: Callable[[Journal], object]) -> None:
        """A journal write whose failure is logged and counted, never the client's problem."""
        if self.journal is None:
            return
        try:
            write(self.journal)
        except sqlite3.Error as exc:
            self.stats.journal_errors += 1
            get_logger().error("journal_write_failed", error=str(exc), path=str(self.journal.path))

    async def cancel_orders(
        self, caller: Caller, label: str, *, subaccount: int | None, only: set[str] | None
    ) -> CancelReport:
        """Cancel resting orders (see halt.cancel_resting), journaling each batch as `label`."""

        async def journaled(method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
            if method != "DELETE":
                return await caller(method, path, body)
            info = CallInfo(os.urandom(8).hex(), label, method, path)
            found = read_orders("batch_cancel", body) or ()
            ticket = Ticket(OrderCall("batch_cancel"), found, label, "")
            self.begin(info, ticket)
            try:
                status, answer = await caller(method, path, body)
            except asyncio.CancelledError:
                # Cut (the proxy is stopping): its rows still go to SQLite, outcome unknown.
                self.complete(ticket, 499, None, "cut", known=False)
                raise
            except Exception:
                self.complete(ticket, 502, None, "proxy_upstream_error", known=False)
                raise
            self.complete(ticket, status, answer, None, known=True)
            return status, answer

        report = await halts_.cancel_resting(journaled, subaccount=subaccount, only=only)
        self.stats.orders_cancelled += report.cancelled
        return report

    async def fire(self, client: str, caller: Caller, token: TokenConfig | None) -> CancelReport:
        """The dead-man's switch of `client` fired: halt its order entry, cancel its orders."""
        interval = self.heartbeats.interval(client) or 0
        self.halts.halt(client, f"no call for more than {interval:g} s", automatic=True)
        self.stats.deadman_triggers[client] += 1
        self.stats.halts["deadman"] += 1
        subaccount = token.subaccount if token is not None else None
        if self.journal is None and subaccount is None:
            return CancelReport(error="no journal: which orders this client placed is unknown")
        only = self.journal.placed_orders(client) if self.journal is not None else None
        if only is not None and not only:
            return CancelReport()  # it placed nothing: nothing to list
        return await self.cancel_orders(caller, _DEADMAN, subaccount=subaccount, only=only)


# Who the journal names for the cancels the proxy sends itself.
_DEADMAN: Final = "proxy:dead-man"
HALT_LABEL: Final = "proxy:halt"


def _entry(
    info: CallInfo, call: OrderCall, orders: Sequence[OrderFields], decision: str, code: str | None
) -> CallEntry:
    if not orders and call.order_id is not None:
        orders = (OrderFields(order_id=call.order_id[:128]),)
    return CallEntry(
        info.request_id, info.client, info.method, info.path, call.kind, decision, orders, code
    )


def _nothing(client: str, day: str) -> Decimal:
    return ZERO
