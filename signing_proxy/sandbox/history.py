"""The sandbox's history: candlesticks from its trades, the historical endpoints (the
sandbox keeps everything live, so its cutoff is the start of its day and they answer
with what predates it: nothing), settlements, and portfolio summaries."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from signing_proxy.sandbox.state import SandboxState, Trade, market_or_404
from signing_proxy.sandbox.wire import (
    JSON,
    Call,
    dollars,
    first_param,
    fixed_point,
    iso_ms,
    param_error,
    plain_int,
)

PERIODS: Final = (1, 60, 1440)  # minutes
# At most this many candlesticks per answer, like Kalshi's 5,000 cap.
_MAX_CANDLES: Final = 5000


def _int_param(call: Call, name: str, operation: str) -> int:
    value = plain_int(first_param(call.query, name))
    if value is None:
        raise param_error(operation, name, "required")
    return value


def _window(call: Call, operation: str) -> tuple[int, int, int]:
    start, end = _int_param(call, "start_ts", operation), _int_param(call, "end_ts", operation)
    period = _int_param(call, "period_interval", operation)
    if period not in PERIODS:
        raise param_error(operation, "PeriodInterval", "oneof")
    if end < start or (end - start) // (period * 60) > _MAX_CANDLES:
        raise param_error(operation, "EndTs", "gtefield")
    return start, end, period * 60


def candlesticks(state: SandboxState, ticker: str, start: int, end: int, step: int) -> list[JSON]:
    """One candlestick per period with trades, ending in [start, end] (seconds)."""
    market = state.markets[ticker]
    buckets: dict[int, list[Trade]] = {}
    for trade in state.trades:
        if trade.ticker == ticker:
            end_of_period = (trade.created_ms // 1000 // step + 1) * step
            if start <= end_of_period <= end:
                buckets.setdefault(end_of_period, []).append(trade)
    quote = {name: market[name] for name in ("yes_bid_dollars", "yes_ask_dollars")}
    return [
        _candle(end_ts, trades, quote, Decimal(market["open_interest_fp"]))
        for end_ts, trades in sorted(buckets.items())
    ]


def _candle(end_ts: int, trades: list[Trade], quote: JSON, interest: Decimal) -> JSON:
    prices = [t.yes_price for t in trades]
    volume = sum((t.count for t in trades), Decimal(0))
    mean = sum((t.yes_price * t.count for t in trades), Decimal(0)) / volume
    flat = {
        side: {
            f"{k}_dollars": quote[f"yes_{side}_dollars"] for k in ("open", "low", "high", "close")
        }
        for side in ("bid", "ask")
    }
    return {
        "end_period_ts": end_ts,
        "open_interest_fp": fixed_point(interest),
        "price": {
            "close_dollars": dollars(prices[-1]),
            "high_dollars": dollars(max(prices)),
            "low_dollars": dollars(min(prices)),
            "max_dollars": dollars(max(prices)),
            "mean_dollars": dollars(mean),
            "min_dollars": dollars(min(prices)),
            "open_dollars": dollars(prices[0]),
            "previous_dollars": dollars(prices[0]),
        },
        "volume_fp": fixed_point(volume),
        "yes_ask": flat["ask"],
        "yes_bid": flat["bid"],
    }


def market_candlesticks(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /series/{series_ticker}/markets/{ticker}/candlesticks."""
    market = market_or_404(state, call.params[1])
    start, end, step = _window(call, "GetMarketCandlesticks")
    found = candlesticks(state, market["ticker"], start, end, step)
    return 200, {"candlesticks": found, "ticker": market["ticker"]}


def batch_candlesticks(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /markets/candlesticks?market_tickers=A,B."""
    tickers = [t for t in first_param(call.query, "market_tickers").split(",") if t]
    if not tickers or len(tickers) > 100:
        raise param_error("BatchGetMarketCandlesticks", "MarketTickers", "required")
    start, end, step = _window(call, "BatchGetMarketCandlesticks")
    markets = [
        {"candlesticks": candlesticks(state, t, start, end, step), "market_ticker": t}
        for t in tickers
        if t in state.markets
    ]
    return 200, {"markets": markets}


def historical_cutoff(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /historical/cutoff: the sandbox's state starts fresh, so nothing is older."""
    since = iso_ms(state.started_ms)
    return 200, {
        "market_settled_ts": since,
        "orders_updated_ts": since,
        "trades_created_ts": since,
    }


def historical_markets(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /historical/markets: nothing settled before the cutoff."""
    return 200, {"cursor": "", "markets": []}


def historical_fills(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /historical/fills."""
    return 200, {"cursor": "", "fills": []}


def historical_trades(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /historical/trades."""
    return 200, {"cursor": "", "trades": []}


def historical_orders(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /historical/orders."""
    return 200, {"cursor": "", "orders": []}


def user_data_timestamp(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /exchange/user_data_timestamp: the sandbox's data is always current."""
    return 200, {"as_of_time": iso_ms(state.now_ms())}


def resting_order_value(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/summary/total_resting_order_value, in cents."""
    value = Decimal(0)
    for order in state.orders.values():
        if order.status == "resting":
            price = order.yes_price if order.book_side == "bid" else 1 - order.yes_price
            value += order.remaining_count * price
    return 200, {"total_resting_order_value": int(value * 100)}


def queue_positions(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/orders/queue_positions?market_tickers=A,B (or event_ticker)."""
    tickers = {t for t in first_param(call.query, "market_tickers").split(",") if t}
    event = first_param(call.query, "event_ticker")
    if not tickers and not event:
        raise param_error("GetOrderQueuePositions", "MarketTickers", "required_without")
    positions = [
        {
            "market_ticker": order.ticker,
            "order_id": order.order_id,
            "queue_position_fp": fixed_point(
                state.books[order.ticker].ahead_of(order.book_side, order)
            ),
        }
        for order in state.orders.values()
        if order.status == "resting"
        and (order.ticker in tickers or state.markets[order.ticker]["event_ticker"] == event)
    ]
    return 200, {"queue_positions": positions}


def settlements(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/settlements: the positions settled in the sandbox so far."""
    ticker = first_param(call.query, "ticker")
    rows = [s for s in state.settlements if not ticker or s["ticker"] == ticker]
    return 200, {"cursor": "", "settlements": list(reversed(rows))}
