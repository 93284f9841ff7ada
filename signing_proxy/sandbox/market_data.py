"""The sandbox's market data: order books, trades, events and series, all read from the
engine's state (sandbox/book.py, matching.py) and the generated markets."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from signing_proxy.sandbox.book import Book
from signing_proxy.sandbox.state import SandboxState, market_or_404
from signing_proxy.sandbox.wire import (
    JSON,
    NOT_FOUND,
    Call,
    KalshiError,
    decode_cursor,
    dollars,
    first_param,
    fixed_point,
    limit_param,
    paginate,
    param_error,
    plain_int,
)

# Kalshi's categories for the generated series (their prefixes).
_CATEGORIES: Final = {"KXHIGHNY": "Climate and Weather", "KXBTCD": "Crypto", "KXFED": "Economics"}


def orderbook_fp(book: Book, depth: int) -> JSON:
    """Kalshi's OrderbookCountFp: YES bids and NO bids (a YES ask at p is a NO bid at 1 - p),
    each [price, contracts], lowest price first; `depth` levels from the best (0: all)."""
    bids = book.depth("bid")
    no_bids = [(1 - price, size) for price, size in book.depth("ask")]
    if depth:
        bids, no_bids = bids[:depth], no_bids[:depth]
    return {
        "no_dollars": [[dollars(p), fixed_point(s)] for p, s in sorted(no_bids)],
        "yes_dollars": [[dollars(p), fixed_point(s)] for p, s in sorted(bids)],
    }


def _depth(call: Call, operation: str) -> int:
    depth = plain_int(first_param(call.query, "depth") or "0")
    if depth is None or not 0 <= depth <= 100:
        raise param_error(operation, "Depth", "lte")
    return depth


def get_orderbook(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /markets/{ticker}/orderbook."""
    market = market_or_404(state, call.params[0])
    depth = _depth(call, "GetMarketOrderbook")
    return 200, {"orderbook_fp": orderbook_fp(state.books[market["ticker"]], depth)}


def get_orderbooks(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /markets/orderbooks?tickers=A,B."""
    tickers = [t for t in first_param(call.query, "tickers").split(",") if t]
    if not tickers or len(tickers) > 100:
        raise param_error("GetMarketOrderbooks", "Tickers", "required")
    books = [
        {"orderbook_fp": orderbook_fp(state.books[t], 0), "ticker": t}
        for t in tickers
        if t in state.books
    ]
    return 200, {"orderbooks": books}


def list_trades(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /markets/trades: newest first, by ticker and time."""
    limit = limit_param(call.query, "GetTrades", ("gte", "lte"))
    after = decode_cursor(call.query, "trades")
    ticker = first_param(call.query, "ticker")
    low, high = _seconds(call, "min_ts"), _seconds(call, "max_ts")
    rows = [
        (-index, trade)
        for index, trade in enumerate(state.trades)
        if (not ticker or trade.ticker == ticker)
        and (low is None or trade.created_ms // 1000 >= low)
        and (high is None or trade.created_ms // 1000 <= high)
    ]
    rows.reverse()
    page, cursor = paginate(rows, lambda row: row[0], after, limit, "trades")
    return 200, {"cursor": cursor, "trades": [trade.to_json() for _, trade in page]}


def _seconds(call: Call, name: str) -> int | None:
    raw = first_param(call.query, name)
    if not raw:
        return None
    seconds = plain_int(raw)
    if seconds is None or seconds < 0:
        raise param_error("GetTrades", name, "numeric")
    return seconds


def _events(state: SandboxState) -> dict[str, list[JSON]]:
    events: dict[str, list[JSON]] = {}
    for market in state.markets.values():
        events.setdefault(market["event_ticker"], []).append(market)
    return events


def _event(ticker: str, markets: list[JSON], with_markets: bool) -> JSON:
    series = ticker.split("-")[0]
    event: JSON = {
        "available_on_brokers": False,
        "category": _CATEGORIES.get(series, "Sports"),
        "collateral_return_type": "MECNET",
        "event_ticker": ticker,
        "mutually_exclusive": len(markets) > 1,
        "series_ticker": series,
        "strike_date": markets[0]["close_time"],
        "sub_title": markets[0]["close_time"][:10],
        "title": markets[0]["title"],
    }
    if with_markets:
        event["markets"] = markets
    return event


def list_events(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /events, with status, series_ticker and with_nested_markets."""
    limit = limit_param(call.query, "GetEvents", ("gte", "lte"))
    after = decode_cursor(call.query, "events")
    series = first_param(call.query, "series_ticker")
    status = first_param(call.query, "status")
    nested = first_param(call.query, "with_nested_markets") == "true"
    rows = [
        (index, _event(ticker, markets, nested))
        for index, (ticker, markets) in enumerate(_events(state).items())
        if (not series or ticker.split("-")[0] == series)
        and (not status or _event_status(markets) == status)
    ]
    page, cursor = paginate(rows, lambda row: row[0], after, limit, "events")
    return 200, {"cursor": cursor, "events": [event for _, event in page], "milestones": []}


def _event_status(markets: list[JSON]) -> str:
    states = {m["status"] for m in markets}
    if "active" in states:
        return "open"
    return "settled" if states <= {"finalized", "determined"} else "closed"


def get_event(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /events/{event_ticker}: the event and (deprecated, still sent) its markets."""
    markets = _events(state).get(call.params[0])
    if markets is None:
        raise KalshiError(404, NOT_FOUND)
    return 200, {"event": _event(call.params[0], markets, False), "markets": markets}


def _series(ticker: str, markets: list[JSON]) -> JSON:
    volume = sum((Decimal(m["volume_fp"]) for m in markets), Decimal(0))
    category = _CATEGORIES.get(ticker, "Sports")
    return {
        "additional_prohibitions": [],
        "categories": [category],
        "category": category,
        "contract_terms_url": f"https://kalshi.com/contract-terms/{ticker}",
        "contract_url": f"https://kalshi.com/series/{ticker}",
        "fee_multiplier": 1,
        "fee_type": "quadratic",
        "frequency": "daily",
        "settlement_sources": [],
        "tags": [],
        "ticker": ticker,
        "title": markets[0]["title"],
        "volume_fp": fixed_point(volume),
    }


def _all_series(state: SandboxState) -> dict[str, list[JSON]]:
    series: dict[str, list[JSON]] = {}
    for market in state.markets.values():
        series.setdefault(market["event_ticker"].split("-")[0], []).append(market)
    return series


def list_series(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /series."""
    category = first_param(call.query, "category")
    found = [_series(t, ms) for t, ms in _all_series(state).items()]
    return 200, {"series": [s for s in found if not category or s["category"] == category]}


def get_series(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /series/{series_ticker}."""
    markets = _all_series(state).get(call.params[0])
    if markets is None:
        raise KalshiError(404, NOT_FOUND)
    return 200, {"series": _series(call.params[0], markets)}
