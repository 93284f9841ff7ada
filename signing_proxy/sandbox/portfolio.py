"""The sandbox's portfolio beyond orders: fills, queue positions and subaccounts."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Final

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.state import Account, SandboxState, order_or_404
from signing_proxy.sandbox.wire import (
    INVALID_PARAMETERS,
    JSON,
    Call,
    KalshiError,
    decode_body,
    decode_cursor,
    dollars,
    first_param,
    fixed_point,
    limit_param,
    paginate,
    param_error,
    plain_int,
)

# Subaccounts are numbered 1-63 (the newer guide; the reference said 1-32).
MAX_SUBACCOUNT: Final = 63
_INSUFFICIENT = kalshi_error("insufficient_balance", "insufficient balance", service="exchange")


def subaccount_of(state: SandboxState, call: Call, operation: str) -> int | None:
    """The `subaccount` query parameter, checked; None when absent (all of them)."""
    raw = first_param(call.query, "subaccount")
    if not raw:
        return None
    number = plain_int(raw)
    if number is None or number not in state.accounts:
        raise param_error(operation, "Subaccount", "max")
    return number


def list_fills(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/fills: newest first, by ticker, order and subaccount."""
    limit = limit_param(call.query, "GetFills", ("gte", "lte"))
    after = decode_cursor(call.query, "fills")
    ticker, order_id = first_param(call.query, "ticker"), first_param(call.query, "order_id")
    subaccount = subaccount_of(state, call, "GetFills")
    rows = [
        (-index, fill)
        for index, fill in enumerate(state.fills)
        if (not ticker or fill.order.ticker == ticker)
        and (not order_id or fill.order.order_id == order_id)
        and (subaccount is None or fill.order.subaccount == subaccount)
    ]
    rows.reverse()
    page, cursor = paginate(rows, lambda row: row[0], after, limit, "fills")
    return 200, {"cursor": cursor, "fills": [fill.to_json() for _, fill in page]}


def queue_position(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/orders/{id}/queue_position: contracts ahead of a resting order."""
    order = order_or_404(state, call.params[0], resting=True)
    ahead = state.books[order.ticker].ahead_of(order.book_side, order)
    return 200, {"queue_position_fp": fixed_point(ahead)}


def create_subaccount(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /portfolio/subaccounts: the next number, with no money until a transfer."""
    number = len(state.accounts)
    if number > MAX_SUBACCOUNT:
        raise KalshiError(400, INVALID_PARAMETERS)
    state.accounts[number] = Account(number, balance=Decimal(0))
    return 201, {"subaccount_number": number}


def subaccount_balances(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/subaccounts/balances."""
    now = state.now_ms() // 1000
    balances = [
        {
            "balance": dollars(account.balance),
            "exchange_index": 0,
            "subaccount_number": number,
            "updated_ts": now,
        }
        for number, account in sorted(state.accounts.items())
    ]
    return 200, {"subaccount_balances": balances}


_TRANSFER_TYPES: Final = {
    "client_transfer_id": "string", "from_subaccount": "int", "to_subaccount": "int",
    "amount_cents": "int64", "exchange_index": "int",
}  # fmt: skip


def transfer(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /portfolio/subaccounts/transfer: cents from one subaccount to another, once per id."""
    doc = decode_body(call.body, "ApplySubaccountTransferRequest", _TRANSFER_TYPES)
    source, target = (
        state.accounts.get(doc.get("from_subaccount", -1)),
        state.accounts.get(doc.get("to_subaccount", -1)),
    )
    amount = doc.get("amount_cents")
    transfer_id = str(doc.get("client_transfer_id") or uuid.uuid4())
    if source is None or target is None or source is target or not isinstance(amount, int):
        raise KalshiError(400, INVALID_PARAMETERS)
    if amount <= 0:
        raise KalshiError(400, INVALID_PARAMETERS)
    if transfer_id in state.transfer_ids:
        return 200, {}  # idempotent: the same transfer is applied once
    move_cash(state, source, target, amount, transfer_id)
    return 200, {}


def move_cash(
    state: SandboxState, source: Account, target: Account, amount_cents: int, transfer_id: str
) -> None:
    """Move cents between two subaccounts, recorded in the subaccount transfer history."""
    dollars_moved = Decimal(amount_cents) / 100
    if source.balance < dollars_moved:
        raise KalshiError(400, _INSUFFICIENT)
    source.balance -= dollars_moved
    target.balance += dollars_moved
    state.transfer_ids.add(transfer_id)
    state.transfers.append(
        {
            "amount_cents": amount_cents,
            "created_ts": state.now_ms() // 1000,
            "exchange_index": 0,
            "from_subaccount": source.number,
            "to_subaccount": target.number,
            "transfer_id": transfer_id,
        }
    )
