"""The FCM endpoints (`/fcm/...`), as Kalshi answers a member that is no FCM, which the
sandbox's user is not.

Why these answers: every one of these operations is "for FCM members" and none documents
a success for anyone else, so an empty list would tell a bot something Kalshi never
says. Where the spec documents 403 "insufficient permissions" (subtraders and their
daily caps, spec 3.30) the sandbox answers it. The order and position reads document no
403 (3.21 and 3.30 list 400, 401, 404 and 500): a request missing its required filter
is 400, in Go's validation shape as for other parameters; a complete one names a
subtrader that is not the caller's (a non-FCM member has none), which is 404. The 403
body is Kalshi's error shape with a code of ours: no such answer was recorded.
"""

from __future__ import annotations

from typing import Final

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.state import SandboxState
from signing_proxy.sandbox.wire import JSON, NOT_FOUND, Call, KalshiError, first_param, param_error

_NOT_FCM: Final = kalshi_error("forbidden", "FCM member access level required", service="exchange")


def fcm_orders(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /fcm/orders: a subtrader_id or client_order_ids is required; none is the caller's."""
    if not (first_param(call.query, "subtrader_id") or first_param(call.query, "client_order_ids")):
        raise param_error("GetFCMOrders", "SubtraderId", "required")
    raise KalshiError(404, NOT_FOUND)


def fcm_positions(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /fcm/positions: subtrader_id is required, and names no subtrader of the caller."""
    if not first_param(call.query, "subtrader_id"):
        raise param_error("GetFCMPositions", "SubtraderId", "required")
    raise KalshiError(404, NOT_FOUND)


def not_an_fcm(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """The subtrader endpoints (spec 3.30): 403, the sandbox's user is no FCM member."""
    raise KalshiError(403, _NOT_FCM)
