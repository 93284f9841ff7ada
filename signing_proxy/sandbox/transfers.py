"""Moving money within the account across exchange instances, and the target balance
allocation across exchange indexes (spec 3.30 only).

The sandbox has one exchange instance, `event_contract`, with one shard (index 0, the
only one Kalshi supports today), and its user has no margin account: a transfer from or
to `margined` is 403, as documented for "insufficient permissions". A transfer within
`event_contract` on one shard is, as Kalshi documents, a subaccount transfer: cash moves
between the two subaccounts at once (`complete`), and the transfer also shows in the
subaccount transfer history. Amounts are in centi-cents and must be whole cents, as
that history counts cents. An allocation can only name index 0; percentages total 100,
or the list is empty (no automatic rebalancing).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.portfolio import move_cash
from signing_proxy.sandbox.state import SandboxState
from signing_proxy.sandbox.wire import (
    JSON,
    NOT_FOUND,
    Call,
    KalshiError,
    decode_body,
    decode_cursor,
    dollars,
    page_limit,
    paginate,
    refused,
)

_INSTANCES: Final = ("event_contract", "margined")
_TRANSFER_TYPES: Final = {
    "source": "string", "destination": "string", "amount": "int64",
    "source_exchange_shard": "int", "destination_exchange_shard": "int",
    "source_subaccount": "int", "destination_subaccount": "int",
}  # fmt: skip
# Not recorded from Kalshi: the spec names the status (403), not the body.
_NO_MARGIN: Final = kalshi_error(
    "forbidden", "the account has no margined exchange instance", service="exchange"
)


def intra_transfer(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /portfolio/intra_exchange_instance_transfer: between subaccounts, on shard 0."""
    doc = decode_body(call.body, "IntraExchangeInstanceTransferRequest", _TRANSFER_TYPES)
    source, destination = doc.get("source"), doc.get("destination")
    if source not in _INSTANCES or destination not in _INSTANCES:
        raise refused("source and destination must be event_contract or margined")
    if "margined" in (source, destination):
        raise KalshiError(403, _NO_MARGIN)
    shards = (doc.get("source_exchange_shard") or 0, doc.get("destination_exchange_shard") or 0)
    if shards != (0, 0):
        raise refused("exchange shard 0 is the only one")
    amount = doc.get("amount")
    if not isinstance(amount, int) or amount <= 0 or amount % 100:
        raise refused("amount must be a positive whole number of cents, in centi-cents")
    accounts = state.accounts
    from_sub = accounts.get(doc.get("source_subaccount") or 0)
    to_sub = accounts.get(doc.get("destination_subaccount") or 0)
    if from_sub is None or to_sub is None or from_sub is to_sub:
        raise refused("source_subaccount and destination_subaccount must be two subaccounts")
    transfer_id = state.new_id()
    move_cash(state, from_sub, to_sub, amount // 100, transfer_id)
    state.intra_transfers.append(
        {
            "amount": dollars(Decimal(amount) / 10_000),
            "created_ts": state.now_ms() // 1000,
            "destination": destination,
            "destination_exchange_shard": 0,
            "source": source,
            "source_exchange_shard": 0,
            "status": "complete",
            "transfer_id": transfer_id,
        }
    )
    return 200, {"transfer_id": transfer_id}


def intra_transfers(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/intra_exchange_instance_transfers: newest first; no cursor on the last."""
    limit = page_limit(call.query, "GetIntraExchangeInstanceTransfers", 500, 100)
    after = decode_cursor(call.query, "intra_transfers")
    rows = list(enumerate(state.intra_transfers))
    rows.reverse()
    page, cursor = paginate(rows, lambda row: -row[0], after, limit, "intra_transfers")
    answer: JSON = {"transfers": [transfer for _, transfer in page]}
    if cursor:
        answer["cursor"] = cursor
    return 200, answer


def intra_transfer_by_id(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/intra_exchange_instance_transfers/{transfer_id}."""
    for transfer in state.intra_transfers:
        if transfer["transfer_id"] == call.params[0]:
            return 200, {"transfer": transfer}
    raise KalshiError(404, NOT_FOUND)


def get_allocation(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/target_balance_allocation."""
    return 200, {
        "allocations": [dict(item) for item in state.allocation["allocations"]],
        "resting_margin_reservation": state.allocation["resting_margin_reservation"],
    }


def set_allocation(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /portfolio/target_balance_allocation: replace it (percentages total 100)."""
    doc = decode_body(
        call.body, "SetTargetBalanceAllocationRequest",
        {"allocations": "array", "resting_margin_reservation": "string"},
    )  # fmt: skip
    items, reservation = doc.get("allocations"), doc.get("resting_margin_reservation") or "sum"
    if not isinstance(items, list) or reservation not in ("max", "sum"):
        raise refused("allocations must be a list; resting_margin_reservation max or sum")
    allocations = []
    for item in items:
        index = item.get("exchange_index") if isinstance(item, dict) else None
        percent = item.get("percent") if isinstance(item, dict) else None
        if index != 0 or isinstance(percent, bool) or not isinstance(percent, int | float):
            raise refused("each allocation names exchange_index 0 and a percent")
        allocations.append({"exchange_index": 0, "percent": percent})
    if allocations and (len(allocations) > 1 or sum(a["percent"] for a in allocations) != 100):
        raise refused("the percentages must total 100, once per exchange index")
    state.allocation = {"allocations": allocations, "resting_margin_reservation": reservation}
    return 200, {}
