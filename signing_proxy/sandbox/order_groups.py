"""The sandbox's order group endpoints (`/portfolio/order_groups`): create, list, get,
delete, reset, trigger and a new limit, in the shapes of Kalshi's spec 3.30."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from signing_proxy.sandbox.groups import MAX_LIMIT, OrderGroup
from signing_proxy.sandbox.matching import (
    announce_group,
    cancel_group_orders,
    subaccount_number,
    trigger_group,
)
from signing_proxy.sandbox.portfolio import subaccount_of
from signing_proxy.sandbox.state import SandboxState
from signing_proxy.sandbox.wire import (
    INVALID_PARAMETERS,
    JSON,
    NOT_FOUND,
    Call,
    KalshiError,
    decode_body,
    parse_count,
)

_CREATE_TYPES: Final = {
    "subaccount": "int", "contracts_limit": "int64", "contracts_limit_fp": "string",
    "exchange_index": "int",
}  # fmt: skip
_LIMIT_TYPES: Final = {"contracts_limit": "int64", "contracts_limit_fp": "string"}


def _contracts_limit(doc: JSON) -> Decimal:
    """contracts_limit or contracts_limit_fp (both: they must agree), 1 to 1,000,000."""
    whole, fp = doc.get("contracts_limit"), doc.get("contracts_limit_fp")
    given = [parse_count(fp)] if fp is not None else []
    if whole is not None:
        given.append(Decimal(whole))  # an int: decode_body checked its type
    if not given or given[0] != given[-1]:
        raise KalshiError(400, INVALID_PARAMETERS)
    limit = given[0]
    if not 1 <= limit <= MAX_LIMIT:
        raise KalshiError(400, INVALID_PARAMETERS)
    return limit


def _group(state: SandboxState, call: Call, operation: str) -> OrderGroup:
    """The group named in the path, if the `subaccount` query owns it (GetOrderGroup: any
    subaccount when absent; the others: the primary, as the spec's default says)."""
    subaccount = subaccount_of(state, call, operation)
    if subaccount is None and operation != "GetOrderGroup":
        subaccount = 0
    group = state.order_groups.get(call.params[0])
    if group is None or (subaccount is not None and group.subaccount != subaccount):
        raise KalshiError(404, NOT_FOUND)
    return group


def create_order_group(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /portfolio/order_groups/create."""
    doc = decode_body(call.body, "CreateOrderGroupRequest", _CREATE_TYPES)
    subaccount = subaccount_number(state, doc.get("subaccount"))
    group = OrderGroup(state.new_id(), subaccount, _contracts_limit(doc))
    state.order_groups[group.group_id] = group
    announce_group(state, group, "created")
    return 201, {"exchange_index": 0, "order_group_id": group.group_id, "subaccount": subaccount}


def list_order_groups(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/order_groups, of one subaccount or of all."""
    subaccount = subaccount_of(state, call, "GetOrderGroups")
    groups = [
        group.summary()
        for group in state.order_groups.values()
        if subaccount is None or group.subaccount == subaccount
    ]
    return 200, {"order_groups": groups}


def get_order_group(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/order_groups/{id}: its limit, state and order ids."""
    return 200, _group(state, call, "GetOrderGroup").detail()


def delete_order_group(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """DELETE /portfolio/order_groups/{id}: its resting orders cancelled, the group gone."""
    group = _group(state, call, "DeleteOrderGroup")
    cancel_group_orders(state, group)
    del state.order_groups[group.group_id]
    for order_id in group.order_ids:
        state.group_of.pop(order_id, None)
    announce_group(state, group, "deleted")
    return 200, {}


def reset_order_group(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """PUT /portfolio/order_groups/{id}/reset: active again, its window emptied."""
    group = _group(state, call, "ResetOrderGroup")
    group.reset()
    announce_group(state, group, "reset")
    return 200, {}


def trigger_order_group(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """PUT /portfolio/order_groups/{id}/trigger: its resting orders cancelled until reset."""
    trigger_group(state, _group(state, call, "TriggerOrderGroup"))
    return 200, {}


def update_order_group_limit(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """PUT /portfolio/order_groups/{id}/limit; a limit below the window's volume triggers."""
    group = _group(state, call, "UpdateOrderGroupLimit")
    doc = decode_body(call.body, "UpdateOrderGroupLimitRequest", _LIMIT_TYPES)
    group.contracts_limit = _contracts_limit(doc)
    announce_group(state, group, "limit_updated")
    if not group.triggered and group.over_limit(state.now_ms()):
        trigger_group(state, group)
    return 200, {}
