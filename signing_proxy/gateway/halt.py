"""The kill switch: halts in force, and cancelling resting orders in V2 batches.

A halt stops order entry (creates, amends, decreases, quotes) for everyone or for one
client; cancels still pass. Halts are kept in the journal, so they survive a restart.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from signing_proxy.gateway.journal import Halt, Journal, iso, now_utc
from signing_proxy.gateway.risk import Refused
from signing_proxy.ops.logging import get_logger

EVERYONE: Final = "*"
HALTED_CODE: Final = "proxy_trading_halted"
_ORDERS_LIST: Final = "/trade-api/v2/portfolio/orders?status=resting&limit=1000"
BATCH_CANCEL: Final = "/trade-api/v2/portfolio/events/orders/batched"
# Kalshi's largest batch on the lowest tier; a halt must work on every tier.
_BATCH: Final = 20
# Pages of resting orders read at most (1,000 each): Kalshi's cap is 200,000 open orders.
_MAX_PAGES: Final = 200

# Makes one signed call as the proxy (sent once, read whole): (status, body).
Caller = Callable[[str, str, bytes | None], Awaitable[tuple[int, bytes]]]


class Halts:
    """The halts in force, mirrored in the journal when there is one."""

    def __init__(self, journal: Journal | None) -> None:
        self._journal = journal
        self._halts = {h.scope: h for h in journal.halts()} if journal else {}
        self._persisted = True

    def active(self) -> list[Halt]:
        """Every halt in force."""
        return list(self._halts.values())

    def for_client(self, client: str | None) -> Halt | None:
        """The halt that stops `client`'s order entry, if any."""
        if not self._halts:
            return None  # the common case costs one test
        return self._halts.get(EVERYONE) or self._halts.get(client or "")

    def halt(self, scope: str, reason: str, *, automatic: bool = False) -> Halt:
        """Stop order entry for `scope` (a client name, or EVERYONE), at once.

        A dead-man halt never replaces a manual one: that would let the client's next call
        lift what an operator put in place."""
        current = self._halts.get(scope)
        if automatic and current is not None and not current.automatic:
            return current
        halt = Halt(scope, reason, iso(now_utc()), automatic)
        self._halts[scope] = halt
        self._persist(lambda journal: journal.set_halt(halt))
        return halt

    @property
    def persisted(self) -> bool:
        """Whether the last change reached the journal (so it survives a restart)."""
        return self._persisted

    def _persist(self, write: Callable[[Journal], None]) -> None:
        """Write a change to the journal; the halt holds in memory whatever happens there."""
        self._persisted = self._journal is None
        if self._journal is None:
            return
        try:
            write(self._journal)
        except sqlite3.Error as exc:
            get_logger().error("journal_write_failed", error=str(exc), what="halt state")
            return
        self._persisted = True

    def resume(self, client: str | None) -> list[str]:
        """Lift the halts on `client`, or every halt when `client` is None; the scopes lifted."""
        scopes = list(self._halts) if client is None else [s for s in self._halts if s == client]
        self._lift(scopes)
        return scopes

    def lift_automatic(self, client: str) -> Halt | None:
        """Lift `client`'s dead-man halt (it called again); the halt lifted, if there was one."""
        halt = self._halts.get(client)
        if halt is None or not halt.automatic:
            return None
        self._lift([client])
        return halt

    def _lift(self, scopes: Iterable[str]) -> None:
        scopes = list(scopes)
        for scope in scopes:
            del self._halts[scope]
        if scopes:
            self._persist(lambda journal: journal.clear_halts(scopes))


def halted(halt: Halt) -> Refused:
    """The 403 for order entry while `halt` is in force."""
    who = "all clients" if halt.scope == EVERYONE else f"client {halt.scope!r}"
    if halt.automatic:
        return Refused(
            403,
            HALTED_CODE,
            f"order entry for {who} was halted at {halt.since} by its dead-man's switch "
            f"({halt.reason}) and its resting orders were cancelled; this call lifts the "
            "halt: check your orders, then send again",
        )
    return Refused(
        403,
        HALTED_CODE,
        f"order entry for {who} is halted since {halt.since} ({halt.reason}); cancels "
        "still pass; an admin lifts it with POST /proxy/v1/resume or signing-proxy resume",
    )


@dataclass(slots=True)
class CancelReport:
    """What cancelling resting orders did: how many were listed, cancelled, and not."""

    listed: int = 0
    cancelled: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The report as the admin API answers it."""
        answer: dict[str, Any] = {
            "listed": self.listed,
            "cancelled": self.cancelled,
            "failed": self.failed,
        }
        if self.error:
            answer["error"] = self.error
        return answer


async def cancel_resting(
    call: Caller, *, subaccount: int | None = None, only: set[str] | None = None
) -> CancelReport:
    """Cancel every resting order (of one subaccount, or only those of `only`), in batches."""
    report = CancelReport()
    resting = await _resting(call, subaccount, report)
    if only is not None:
        resting = [order for order in resting if order["order_id"] in only]
    report.listed = len(resting)
    for start in range(0, len(resting), _BATCH):
        batch = resting[start : start + _BATCH]
        body = json.dumps({"orders": batch}).encode()
        try:
            status, answer = await call("DELETE", BATCH_CANCEL, body)
        except Exception as exc:  # reported per order, never raised into the admin call
            _all_failed(report, batch, f"no answer: {type(exc).__name__}")
            continue
        if status != 200:
            _all_failed(report, batch, f"Kalshi answered {status}")
            continue
        _count_results(report, batch, answer)
    return report


async def _resting(call: Caller, subaccount: int | None, report: CancelReport) -> list[Any]:
    """Every resting order as {order_id, subaccount}, following the cursor."""
    base = _ORDERS_LIST if subaccount is None else f"{_ORDERS_LIST}&subaccount={subaccount}"
    orders: list[Any] = []
    cursor = ""
    for _ in range(_MAX_PAGES):
        target = f"{base}&cursor={quote(cursor, safe='')}" if cursor else base
        try:
            status, body = await call("GET", target, None)
            page = json.loads(body) if status == 200 else None
        except Exception as exc:  # reported, never raised into the admin call
            report.error = f"could not list resting orders: {type(exc).__name__}"
            return orders
        if not isinstance(page, dict):
            report.error = f"could not list resting orders: Kalshi answered {status}"
            return orders
        for order in page.get("orders") or []:
            if isinstance(order, dict) and order.get("order_id"):
                number = order.get("subaccount_number")
                item: dict[str, Any] = {"order_id": str(order["order_id"])}
                item["subaccount"] = number if isinstance(number, int) else (subaccount or 0)
                if isinstance(order.get("exchange_index"), int):
                    item["exchange_index"] = order["exchange_index"]
                orders.append(item)
        cursor = str(page.get("cursor") or "")
        if not cursor:
            break
    return orders


def _all_failed(report: CancelReport, batch: list[Any], error: str) -> None:
    report.failed.extend({"order_id": order["order_id"], "error": error} for order in batch)


def _count_results(report: CancelReport, batch: list[Any], answer: bytes) -> None:
    try:
        items = json.loads(answer).get("orders")
    except (ValueError, AttributeError):
        items = None
    if not isinstance(items, list):
        _all_failed(report, batch, "Kalshi's answer could not be read")
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        error = item.get("error")
        if error:
            code = error.get("code") if isinstance(error, dict) else str(error)
            report.failed.append({"order_id": str(item.get("order_id")), "error": str(code)})
        else:
            report.cancelled += 1
