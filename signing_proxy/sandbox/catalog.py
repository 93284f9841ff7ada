"""The rest of Kalshi's catalogue, as an exchange with nothing of the kind answers: no
milestones, structured targets, live data, multivariate collections, incentive programs,
fee changes, deposits or withdrawals (empty lists, or Kalshi's 404 for one by id); event
metadata and event candlesticks from the sandbox's own events; subaccount transfers and
netting as the sandbox's subaccounts have them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from signing_proxy.sandbox.history import candlesticks
from signing_proxy.sandbox.state import SandboxState
from signing_proxy.sandbox.wire import (
    INVALID_PARAMETERS,
    JSON,
    NOT_FOUND,
    Call,
    KalshiError,
    decode_body,
    first_param,
    param_error,
)

Handler = Callable[[SandboxState, Call], tuple[int, JSON]]


def empty(**fields: Any) -> Handler:
    """A handler answering 200 with `fields` (an exchange with none of these things)."""

    def handler(state: SandboxState, call: Call) -> tuple[int, JSON]:
        return 200, dict(fields)

    return handler


def not_found(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """Kalshi's 404: the sandbox has no such thing by that id."""
    raise KalshiError(404, NOT_FOUND)


EMPTY: Final[dict[tuple[str, ...], Handler]] = {
    ("series", "fee_changes"): empty(series_fee_change_arr=[]),
    ("events", "fee_changes"): empty(event_fee_changes=[], cursor=""),
    ("events", "multivariate"): empty(events=[], cursor=""),
    ("milestones",): empty(milestones=[], cursor=""),
    ("structured_targets",): empty(structured_targets=[], cursor=""),
    ("live_data", "batch"): empty(live_datas=[]),
    ("multivariate_event_collections",): empty(multivariate_contracts=[], cursor=""),
    ("incentive_programs",): empty(incentive_programs=[], next_cursor=""),
    ("search", "tags_by_categories"): empty(tags_by_categories={}),
    ("search", "filters_by_sport"): empty(filters_by_sports={}, sport_ordering=[]),
    ("portfolio", "deposits"): empty(deposits=[], cursor=""),
    ("portfolio", "withdrawals"): empty(withdrawals=[], cursor=""),
    ("historical", "positions"): empty(market_positions=[], event_positions=[], cursor=""),
}
# One of these by id: the sandbox has none.
BY_ID: Final = (
    ("milestones", "{}"),
    ("structured_targets", "{}"),
    ("live_data", "milestone", "{}"),
    ("live_data", "{}", "milestone", "{}"),
    ("live_data", "milestone", "{}", "game_stats"),
    ("multivariate_event_collections", "{}"),
    ("historical", "markets", "{}"),
    ("historical", "markets", "{}", "candlesticks"),
)


def _event_markets(state: SandboxState, event_ticker: str) -> list[JSON]:
    markets = [m for m in state.markets.values() if m["event_ticker"] == event_ticker]
    if not markets:
        raise KalshiError(404, NOT_FOUND)
    return markets


def event_metadata(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /events/{event_ticker}/metadata."""
    markets = _event_markets(state, call.params[0])
    details = [
        {"market_ticker": m["ticker"], "image_url": "", "color_code": "#1f6feb"} for m in markets
    ]
    return 200, {"image_url": "", "market_details": details, "settlement_sources": []}


def event_candlesticks(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /series/{series_ticker}/events/{ticker}/candlesticks: each market's candlesticks."""
    markets = _event_markets(state, call.params[1])
    try:
        start = int(first_param(call.query, "start_ts"))
        end = int(first_param(call.query, "end_ts"))
        period = int(first_param(call.query, "period_interval"))
    except ValueError:
        raise param_error("GetEventCandlesticks", "StartTs", "required") from None
    if period not in (1, 60, 1440) or end < start:
        raise param_error("GetEventCandlesticks", "PeriodInterval", "oneof")
    tickers = [m["ticker"] for m in markets]
    sticks = [candlesticks(state, t, start, end, period * 60) for t in tickers]
    return 200, {"adjusted_end_ts": end, "market_candlesticks": sticks, "market_tickers": tickers}


def forecast_history(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET .../events/{ticker}/forecast_percentile_history: the sandbox forecasts nothing."""
    _event_markets(state, call.params[1])
    return 200, {"forecast_history": []}


def subaccount_transfers(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/subaccounts/transfers, newest first."""
    return 200, {"cursor": "", "transfers": list(reversed(state.transfers))}


def get_netting(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/subaccounts/netting."""
    configs = [
        {"enabled": number in state.netting, "subaccount_number": number}
        for number in sorted(state.accounts)
    ]
    return 200, {"netting_configs": configs}


def put_netting(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """PUT /portfolio/subaccounts/netting: turn netting on or off for one subaccount."""
    doc = decode_body(
        call.body, "UpdateSubaccountNettingRequest", {"subaccount_number": "int", "enabled": "bool"}
    )
    number, enabled = doc.get("subaccount_number"), doc.get("enabled")
    if number not in state.accounts or not isinstance(enabled, bool):
        raise KalshiError(400, INVALID_PARAMETERS)
    if enabled:
        state.netting.add(number)
    else:
        state.netting.discard(number)
    return 200, {}
