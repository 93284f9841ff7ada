"""An offline Kalshi-like upstream that verifies every signature exactly as Kalshi does.

It serves a realistic slice of Trade API v2 from memory (markets, orders, positions,
balance) so the proxy and its tests run without an account or a network. It knows
nothing of the proxy: only Kalshi's wire protocol (kalshi/API_FACTS.md, openapi.yaml).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final, NamedTuple
from urllib.parse import parse_qs, unquote

from aiohttp import web

from signing_proxy.kalshi.protocol import HEADER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP
from signing_proxy.kalshi.verifier import check_auth, parse_ms
from signing_proxy.sandbox import block_trades, catalog, communications, fcm, history, transfers
from signing_proxy.sandbox.account import account_limits, upgrade_usage_level, volume_progress
from signing_proxy.sandbox.api_keys import (
    create_api_key,
    delete_api_key,
    generate_api_key,
    list_api_keys,
)
from signing_proxy.sandbox.exchange_info import exchange_announcements, exchange_schedule
from signing_proxy.sandbox.handlers import (
    amend_order,
    balance,
    cancel_order,
    create_order,
    endpoint_costs,
    exchange_status,
    get_market,
    get_order,
    list_markets,
    list_orders,
    positions,
)
from signing_proxy.sandbox.market_data import (
    get_event,
    get_orderbook,
    get_orderbooks,
    get_series,
    list_events,
    list_series,
    list_trades,
)
from signing_proxy.sandbox.order_groups import (
    create_order_group,
    delete_order_group,
    get_order_group,
    list_order_groups,
    reset_order_group,
    trigger_order_group,
    update_order_group_limit,
)
from signing_proxy.sandbox.orders_v2 import (
    amend_order_v2,
    batch_cancel_v2,
    batch_create_v2,
    cancel_all,
    cancel_order_v2,
    create_order_v2,
    decrease_order_v2,
)
from signing_proxy.sandbox.portfolio import (
    create_subaccount,
    list_fills,
    queue_position,
    subaccount_balances,
    transfer,
)
from signing_proxy.sandbox.ratelimit import TOO_MANY_REQUESTS
from signing_proxy.sandbox.state import SANDBOX_STATE, SandboxState, SeenRequest
from signing_proxy.sandbox.wire import (
    JSON,
    NO_BODY,
    NOT_FOUND,
    PREFIX,
    V1_REMOVED,
    Call,
    KalshiError,
)

# --- routing --------------------------------------------------------------------------------

_Handler = Callable[[SandboxState, Call], tuple[int, JSON]]


class _Route(NamedTuple):
    method: str
    segments: tuple[str, ...]  # "{}" marks a path parameter
    handler: _Handler
    public: bool = False  # Kalshi serves it without a signature
    removed: bool = False  # a V1 order write Kalshi removed in 2026


def _removed_v1(state: SandboxState, call: Call) -> tuple[int, JSON]:
    raise KalshiError(400, V1_REMOVED)


_RFQS: Final = ("communications", "rfqs")
_QUOTES: Final = ("communications", "quotes")
_RFQ_QUOTE: Final = (*_RFQS, "{}", "quotes", "{}")
_PROPOSALS: Final = ("communications", "block-trade-proposals")
_COMMUNICATIONS: Final = (
    _Route("GET", ("communications", "id"), communications.comms_id),
    _Route("GET", _RFQS, communications.list_rfqs),
    _Route("POST", _RFQS, communications.create_rfq),
    _Route("GET", (*_RFQS, "{}"), communications.get_rfq),
    _Route("DELETE", (*_RFQS, "{}"), communications.delete_rfq),
    _Route("GET", _QUOTES, communications.list_quotes),
    _Route("POST", _QUOTES, communications.create_quote),
    # Spec 3.21's quote paths by quote id, and 3.30's under their RFQ: the same handlers.
    *(
        route
        for path in ((*_QUOTES, "{}"), _RFQ_QUOTE)
        for route in (
            _Route("GET", path, communications.get_quote),
            _Route("DELETE", path, communications.delete_quote),
            _Route("PUT", (*path, "accept"), communications.accept_quote),
            _Route("PUT", (*path, "confirm"), communications.confirm_quote),
        )
    ),
    _Route("GET", _PROPOSALS, block_trades.list_proposals),
    _Route("POST", _PROPOSALS, block_trades.propose),
    _Route("POST", (*_PROPOSALS, "{}", "accept"), block_trades.accept_proposal),
)

# Subtraders and their daily caps (spec 3.30): 403, the sandbox's user is no FCM member.
_FCM_SUBTRADERS: Final = tuple(
    _Route(method, ("fcm", "subtraders", *rest), fcm.not_an_fcm)
    for method, rest in (
        ("GET", ()),
        ("POST", ()),
        ("GET", ("event_contract_daily_cap",)),
        ("PUT", ("event_contract_daily_cap",)),
        ("DELETE", ("event_contract_daily_cap",)),
    )
)

_ROUTES: Final = (
    # First, so that their fixed words are not taken for ids by the routes below.
    # The rest of the catalogue (sandbox/catalog.py): empty lists, or 404 by id.
    *(_Route("GET", path, handler, public=True) for path, handler in catalog.EMPTY.items()),
    *(_Route("GET", path, catalog.not_found, public=True) for path in catalog.BY_ID),
    _Route("GET", ("events", "{}", "metadata"), catalog.event_metadata, public=True),
    _Route(
        "GET",
        ("series", "{}", "events", "{}", "candlesticks"),
        catalog.event_candlesticks,
        public=True,
    ),
    _Route(
        "GET",
        ("series", "{}", "events", "{}", "forecast_percentile_history"),
        catalog.forecast_history,
        public=True,
    ),
    _Route("GET", ("portfolio", "subaccounts", "transfers"), catalog.subaccount_transfers),
    _Route("GET", ("portfolio", "subaccounts", "netting"), catalog.get_netting),
    _Route("PUT", ("portfolio", "subaccounts", "netting"), catalog.put_netting),
    _Route("POST", ("multivariate_event_collections", "{}"), catalog.create_in_collection),
    _Route("PUT", ("multivariate_event_collections", "{}", "lookup"), catalog.lookup_in_collection),
    _Route(
        "GET",
        ("multivariate_event_collections", "{}", "lookup"),
        catalog.lookup_history,
        public=True,
    ),
    _Route("GET", ("live_data", "weather", "{}"), catalog.unknown_city, public=True),
    _Route(
        "GET", ("live_data", "weather", "{}", "calibrations"), catalog.unknown_city, public=True
    ),
    *_COMMUNICATIONS,
    _Route("GET", ("fcm", "orders"), fcm.fcm_orders),
    _Route("GET", ("fcm", "positions"), fcm.fcm_positions),
    *_FCM_SUBTRADERS,
    _Route("POST", ("account", "api_usage_level", "upgrade"), upgrade_usage_level),
    _Route("POST", ("portfolio", "intra_exchange_instance_transfer"), transfers.intra_transfer),
    _Route("GET", ("portfolio", "intra_exchange_instance_transfers"), transfers.intra_transfers),
    _Route(
        "GET",
        ("portfolio", "intra_exchange_instance_transfers", "{}"),
        transfers.intra_transfer_by_id,
    ),
    _Route("GET", ("portfolio", "target_balance_allocation"), transfers.get_allocation),
    _Route("POST", ("portfolio", "target_balance_allocation"), transfers.set_allocation),
    _Route("GET", ("exchange", "status"), exchange_status, public=True),
    _Route("GET", ("exchange", "schedule"), exchange_schedule, public=True),
    _Route("GET", ("exchange", "announcements"), exchange_announcements, public=True),
    _Route("GET", ("markets",), list_markets, public=True),
    _Route("GET", ("markets", "trades"), list_trades, public=True),
    _Route("GET", ("markets", "orderbooks"), get_orderbooks),
    _Route("GET", ("markets", "candlesticks"), history.batch_candlesticks, public=True),
    _Route("GET", ("markets", "{}"), get_market, public=True),
    _Route("GET", ("markets", "{}", "orderbook"), get_orderbook),
    _Route("GET", ("events",), list_events, public=True),
    _Route("GET", ("events", "{}"), get_event, public=True),
    _Route("GET", ("series",), list_series, public=True),
    _Route("GET", ("series", "{}"), get_series, public=True),
    _Route(
        "GET",
        ("series", "{}", "markets", "{}", "candlesticks"),
        history.market_candlesticks,
        public=True,
    ),
    _Route("GET", ("historical", "cutoff"), history.historical_cutoff, public=True),
    _Route("GET", ("historical", "markets"), history.historical_markets, public=True),
    _Route("GET", ("historical", "trades"), history.historical_trades, public=True),
    _Route("GET", ("historical", "fills"), history.historical_fills),
    _Route("GET", ("historical", "orders"), history.historical_orders),
    _Route("GET", ("exchange", "user_data_timestamp"), history.user_data_timestamp),
    _Route("GET", ("portfolio", "settlements"), history.settlements),
    _Route(
        "GET", ("portfolio", "summary", "total_resting_order_value"), history.resting_order_value
    ),
    _Route("GET", ("portfolio", "orders", "queue_positions"), history.queue_positions),
    _Route("GET", ("account", "limits"), account_limits),
    _Route("GET", ("account", "endpoint_costs"), endpoint_costs),
    _Route("GET", ("account", "api_usage_level", "volume_progress"), volume_progress),
    _Route("GET", ("api_keys",), list_api_keys),
    _Route("POST", ("api_keys",), create_api_key),
    _Route("POST", ("api_keys", "generate"), generate_api_key),
    _Route("DELETE", ("api_keys", "{}"), delete_api_key),
    _Route("GET", ("portfolio", "balance"), balance),
    _Route("GET", ("portfolio", "positions"), positions),
    _Route("GET", ("portfolio", "orders"), list_orders),
    _Route("GET", ("portfolio", "orders", "{}"), get_order),
    _Route("GET", ("portfolio", "orders", "{}", "queue_position"), queue_position),
    _Route("GET", ("portfolio", "fills"), list_fills),
    _Route("POST", ("portfolio", "subaccounts"), create_subaccount),
    _Route("GET", ("portfolio", "subaccounts", "balances"), subaccount_balances),
    _Route("POST", ("portfolio", "subaccounts", "transfer"), transfer),
    _Route("POST", ("portfolio", "events", "orders"), create_order_v2),
    _Route("POST", ("portfolio", "events", "orders", "batched"), batch_create_v2),
    _Route("DELETE", ("portfolio", "events", "orders", "batched"), batch_cancel_v2),
    _Route("DELETE", ("portfolio", "events", "orders"), cancel_all),
    _Route("DELETE", ("portfolio", "events", "orders", "{}"), cancel_order_v2),
    _Route("POST", ("portfolio", "events", "orders", "{}", "amend"), amend_order_v2),
    _Route("POST", ("portfolio", "events", "orders", "{}", "decrease"), decrease_order_v2),
    _Route("POST", ("portfolio", "order_groups", "create"), create_order_group),
    _Route("GET", ("portfolio", "order_groups"), list_order_groups),
    _Route("GET", ("portfolio", "order_groups", "{}"), get_order_group),
    _Route("DELETE", ("portfolio", "order_groups", "{}"), delete_order_group),
    _Route("PUT", ("portfolio", "order_groups", "{}", "reset"), reset_order_group),
    _Route("PUT", ("portfolio", "order_groups", "{}", "trigger"), trigger_order_group),
    _Route("PUT", ("portfolio", "order_groups", "{}", "limit"), update_order_group_limit),
    # Removed V1 writes: Kalshi's answer today, unless the state keeps them live (tests
    # compare a translated V2 order with the V1 order it stands for).
    _Route("POST", ("portfolio", "orders", "batched"), _removed_v1, removed=True),
    _Route("DELETE", ("portfolio", "orders", "batched"), _removed_v1, removed=True),
    _Route("POST", ("portfolio", "orders"), create_order, removed=True),
    _Route("DELETE", ("portfolio", "orders", "{}"), cancel_order, removed=True),
    _Route("POST", ("portfolio", "orders", "{}", "amend"), amend_order, removed=True),
    _Route("POST", ("portfolio", "orders", "{}", "decrease"), _removed_v1, removed=True),
)


def _match_route(method: str, path: str) -> tuple[_Route, tuple[str, ...]] | None:
    # Split the raw path before decoding, so an encoded "/" (%2F) stays inside its segment.
    parts = [unquote(part) for part in path.removeprefix(PREFIX + "/").split("/")]
    for route in _ROUTES:
        if route.method != method or len(route.segments) != len(parts):
            continue
        pairs = list(zip(route.segments, parts, strict=True))
        if all(want == got or (want == "{}" and got) for want, got in pairs):
            return route, tuple(got for want, got in pairs if want == "{}")
    return None


def _authenticate(
    state: SandboxState, request: web.Request, route: _Route | None
) -> tuple[bool, tuple[int, JSON] | None]:
    """Whether the request carries a valid signature, and the 401 to answer when it must."""
    headers = request.headers
    signed = any(name in headers for name in (HEADER_KEY, HEADER_TIMESTAMP, HEADER_SIGNATURE))
    if route is not None and route.public and not signed and not state.require_auth_everywhere:
        return False, None
    now, window = state.now_ms(), state.window_ms
    failure = check_auth(headers, request.method, request.raw_path, state.keys, now, window)
    return failure is None, failure


def _json_response(status: int, payload: JSON, *, sort_keys: bool = False) -> web.Response:
    if status == 204 or payload is NO_BODY:  # no body, no content type (DELETE /api_keys/{id})
        return web.Response(status=status)
    # Compact and unescaped UTF-8, like Go's encoder; Kalshi's data bodies have sorted keys.
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    return web.Response(status=status, text=text, content_type="application/json")


async def handle_request(request: web.Request) -> web.Response:
    """Answer one request to the offline exchange, as Kalshi would."""
    state = request.app[SANDBOX_STATE]
    body = await request.read()
    path, _, raw_query = request.raw_path.partition("?")
    under_api = path == PREFIX or path.startswith(PREFIX + "/")
    matched = _match_route(request.method, path) if under_api else None
    authenticated, failure = False, None
    if under_api:  # outside the API Kalshi answers 404 whatever the headers say
        authenticated, failure = _authenticate(state, request, matched[0] if matched else None)
    error = failure[1]["error"] if failure else None
    state.seen.append(
        SeenRequest(
            method=request.method,
            raw_path=request.raw_path,
            key_id=request.headers.get(HEADER_KEY) or None,
            authenticated=authenticated,
            auth_error=None if error is None else error.get("details", error["code"]),
            timestamp_ms=parse_ms(request.headers.get(HEADER_TIMESTAMP)),
            body=body,
        )
    )
    if failure is not None:
        return _json_response(*failure)
    if matched is None:
        return _json_response(404, NOT_FOUND)
    route, params = matched
    if state.limiter is not None and not state.limiter.allow(request.method, path, body):
        return _json_response(429, TOO_MANY_REQUESTS)  # no Retry-After, as at Kalshi
    if route.removed and not state.v1_orders_live:
        return _json_response(400, V1_REMOVED)
    query = parse_qs(raw_query, keep_blank_values=True)
    try:
        status, payload = route.handler(state, Call(params, query, body))
    except KalshiError as exc:
        return _json_response(exc.status, exc.body)
    return _json_response(status, payload, sort_keys=True)
