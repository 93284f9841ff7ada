"""The rest of Kalshi's catalogue, as an exchange with nothing of the kind answers: no
milestones, structured targets, live data, multivariate collections, incentive programs,
fee changes, deposits or withdrawals (empty lists, or Kalshi's 404 for one by id); event
metadata and event candlesticks from the sandbox's own events; subaccount transfers and
netting as the sandbox's subaccounts have them.

With no multivariate collection, every collection ticker is unknown: creating a market in
one, looking one up and its lookup history answer Kalshi's 404 for an unknown collection
(as GET /multivariate_event_collections/{ticker} does), once the request itself is valid
(else 400). Spec 3.21 documents 404 for the lookup, not for the other two; the sandbox
still answers 404 there, as Kalshi's one lookup of the collection would, rather than a 400
that would blame a valid request. With no weather index configured, every city is
unknown: 400, as spec 3.30 documents; an event's live data is 404, as for milestones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from signing_proxy.kalshi.verifier import kalshi_error
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
    plain_int,
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
    ("live_data", "events", "{}"),
)


_TICKER_PAIR: Final = ("market_ticker", "event_ticker", "side")
_UNKNOWN_CITY: Final = kalshi_error("invalid_parameters", "invalid parameters",
                                    details="unknown city")  # fmt: skip


def _selected_markets(call: Call, struct: str) -> None:
    """A body whose `selected_markets` is a list of TickerPair; else Kalshi's 400."""
    doc = decode_body(call.body, struct, {"selected_markets": "array",
                                          "with_market_payload": "bool"})  # fmt: skip
    pairs = doc.get("selected_markets")
    if not isinstance(pairs, list) or not pairs:
        raise KalshiError(400, INVALID_PARAMETERS)
    for pair in pairs:
        fields = pair if isinstance(pair, dict) else {}
        if not all(isinstance(fields.get(k), str) for k in _TICKER_PAIR):
            raise KalshiError(400, INVALID_PARAMETERS)
        if fields["side"] not in ("yes", "no"):
            raise KalshiError(400, INVALID_PARAMETERS)


def create_in_collection(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /multivariate_event_collections/{ticker}: no collection is known (404)."""
    _selected_markets(call, "CreateMarketInMultivariateEventCollectionRequest")
    raise KalshiError(404, NOT_FOUND)


def lookup_in_collection(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """PUT /multivariate_event_collections/{ticker}/lookup: no collection is known (404)."""
    _selected_markets(call, "LookupTickersForMarketInMultivariateEventCollectionRequest")
    raise KalshiError(404, NOT_FOUND)


def lookup_history(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /multivariate_event_collections/{ticker}/lookup: lookback checked, then 404."""
    if first_param(call.query, "lookback_seconds") not in ("10", "60", "300", "3600"):
        raise param_error("GetMultivariateEventCollectionLookupHistory", "LookbackSeconds", "oneof")
    raise KalshiError(404, NOT_FOUND)


def unknown_city(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /live_data/weather/{city}[/calibrations]: no city has an index here (400)."""
    raise KalshiError(400, _UNKNOWN_CITY)


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
    start, end, period = (
        plain_int(first_param(call.query, name))
        for name in ("start_ts", "end_ts", "period_interval")
    )
    if start is None or end is None or period is None:
        raise param_error("GetEventCandlesticks", "StartTs", "required")
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
