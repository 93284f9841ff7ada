"""The sandbox's WebSocket messages, built from the engine's state and events in
Kalshi's shapes (asyncapi.yaml): order book snapshot and delta, ticker, trade, fill,
user order and market position."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from signing_proxy.sandbox.events import (
    Filled,
    LevelChanged,
    MarketLifecycle,
    OrderChanged,
    Traded,
)
from signing_proxy.sandbox.state import SandboxState, levels_of
from signing_proxy.sandbox.wire import JSON, SANDBOX_USER_ID, dollars, fixed_point, iso_ms

# Stable market ids: the REST markets carry none, Kalshi's messages do.
_MARKET_ID_NAMESPACE: Final = uuid.UUID("6f1c2b1e-3a51-4d0e-9b7a-2c8e5d4f1a90")


def market_id(ticker: str) -> str:
    """The market's stable id, as Kalshi's messages carry one."""
    return str(uuid.uuid5(_MARKET_ID_NAMESPACE, ticker))


def iso_micro(ms: int) -> str:
    """A timestamp as Kalshi's delta messages write it, to the microsecond."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def shown(side: str, price: Decimal, use_yes_price: bool) -> Decimal:
    """A NO bid's price as a subscription shows it: its own, or the YES price of it."""
    return 1 - price if side == "no" and use_yes_price else price


def snapshot(state: SandboxState, ticker: str, use_yes_price: bool) -> JSON:
    """orderbook_snapshot's msg: each side's bids, lowest first; an empty side is left out."""
    msg: JSON = {"market_ticker": ticker, "market_id": market_id(ticker)}
    levels = levels_of(state.books[ticker])
    for side in ("yes", "no"):
        prices = sorted(
            (shown(side, price, use_yes_price), size)
            for (name, price), size in levels.items()
            if name == side
        )
        if prices:
            msg[f"{side}_dollars_fp"] = [[f"{p:.4f}", f"{n:.2f}"] for p, n in prices]
    return msg


def delta(event: LevelChanged, use_yes_price: bool) -> JSON:
    """orderbook_delta's msg."""
    return {
        "market_ticker": event.ticker,
        "market_id": market_id(event.ticker),
        "price_dollars": f"{shown(event.side, event.price, use_yes_price):.4f}",
        "delta_fp": f"{event.delta:.2f}",
        "side": event.side,
        "ts": iso_micro(event.ms),
        "ts_ms": event.ms,
    }


def ticker(state: SandboxState, name: str) -> JSON:
    """ticker's msg: the market's quote, last price and volume now."""
    market = state.markets[name]
    now = state.now_ms()
    price = Decimal(market["last_price_dollars"])
    volume, interest = Decimal(market["volume_fp"]), Decimal(market["open_interest_fp"])
    last = next((t for t in reversed(state.trades) if t.ticker == name), None)
    msg: dict[str, Any] = {
        "market_ticker": name,
        "market_id": market_id(name),
        "price_dollars": market["last_price_dollars"],
        "yes_bid_dollars": market["yes_bid_dollars"],
        "yes_ask_dollars": market["yes_ask_dollars"],
        "volume_fp": market["volume_fp"],
        "open_interest_fp": market["open_interest_fp"],
        "dollar_volume": int(volume * price),
        "dollar_open_interest": int(interest * price),
        "yes_bid_size_fp": market["yes_bid_size_fp"],
        "yes_ask_size_fp": market["yes_ask_size_fp"],
        "last_trade_size_fp": fixed_point(last.count if last else Decimal(0)),
        "ts": now // 1000,
        "ts_ms": now,
        "time": datetime.fromtimestamp(now // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return msg


def trade(event: Traded) -> JSON:
    """trade's msg."""
    t = event.trade
    taker_yes = t.taker_book_side == "bid"
    return {
        "trade_id": t.trade_id,
        "market_ticker": t.ticker,
        "yes_price_dollars": dollars(t.yes_price),
        "no_price_dollars": dollars(1 - t.yes_price),
        "count_fp": fixed_point(t.count),
        "taker_side": "yes" if taker_yes else "no",
        "taker_outcome_side": "yes" if taker_yes else "no",
        "taker_book_side": t.taker_book_side,
        "ts": t.created_ms // 1000,
        "ts_ms": t.created_ms,
    }


def fill(event: Filled) -> JSON:
    """fill's msg: one of the account's orders filled, and its position after."""
    f, order = event.fill, event.fill.order
    yes = order.book_side == "bid"
    return {
        "trade_id": f.trade_id,
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "market_ticker": order.ticker,
        "is_taker": f.is_taker,
        "side": order.side,
        "action": order.action,
        "outcome_side": "yes" if yes else "no",
        "book_side": order.book_side,
        "purchased_side": "yes" if yes else "no",
        "yes_price_dollars": dollars(f.yes_price),
        "count_fp": fixed_point(f.count),
        "fee_cost": dollars(f.fee, 6),
        "post_position_fp": fixed_point(event.position),
        "subaccount": order.subaccount,
        "ts": f.created_ms // 1000,
        "ts_ms": f.created_ms,
    }


def user_order(event: OrderChanged) -> JSON:
    """user_order's msg: the order as it stands now."""
    order = event.order
    return {
        **{k: v for k, v in order.to_json().items() if k != "action" and k != "type"},
        "is_yes": order.book_side == "bid",
        "created_ts_ms": order.created_ms,
        "last_updated_ts_ms": order.updated_ms,
        "last_update_time": iso_ms(order.updated_ms),
        "user_id": SANDBOX_USER_ID,
    }


def market_position(state: SandboxState, event: Filled) -> JSON:
    """market_position's msg: the account's position in the market after a fill."""
    order = event.fill.order
    position = state.accounts[order.subaccount].positions[order.ticker]
    return {
        "user_id": SANDBOX_USER_ID,
        "market_ticker": order.ticker,
        "position_fp": fixed_point(position.position),
        "position_cost_dollars": dollars(position.exposure),
        "realized_pnl_dollars": dollars(position.realized_pnl),
        "fees_paid_dollars": dollars(position.fees),
        "position_fee_cost_dollars": dollars(position.fees),
        "volume_fp": fixed_point(position.traded_count),
        "subaccount": order.subaccount,
    }


def lifecycle(event: MarketLifecycle) -> JSON:
    """market_lifecycle_v2's msg: a market determined or settled, and how."""
    msg: JSON = {"event_type": event.event_type, "market_ticker": event.ticker}
    seconds = event.ms // 1000
    if event.event_type == "determined":
        msg.update({"result": event.result, "determination_ts": seconds})
    else:
        msg.update({"settled_ts": seconds, "settlement_value": 100 if event.result == "yes" else 0})
    return msg
