"""Candlesticks from the engine's trades, settlement of a market, and the portfolio
summaries, driven on the engine's state directly."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from signing_proxy.sandbox import history
from signing_proxy.sandbox.settlement import settle
from signing_proxy.sandbox.wire import Call, KalshiError
from tests.sandbox.test_engine import MARKET, new_state, order


def call(*params: str, **query: str) -> Call:
    return Call(tuple(params), {k: [v] for k, v in query.items()}, b"")


def test_candlesticks_summarise_the_trades_of_each_period() -> None:
    state = new_state()
    taker = order(state, "bid", "0.33", 300)  # takes 0.32 and then 0.33 from the makers
    now = state.now_ms() // 1000
    window = {"start_ts": str(now - 60), "end_ts": str(now + 120), "period_interval": "1"}
    status, body = history.market_candlesticks(state, call("KXHIGHNY", MARKET, **window))
    assert status == 200
    (candle,) = body["candlesticks"]
    assert candle["end_period_ts"] > now
    price = candle["price"]
    assert (price["open_dollars"], price["high_dollars"], price["close_dollars"]) == (
        "0.3200", "0.3300", "0.3300",
    )  # fmt: skip
    assert candle["volume_fp"] == f"{taker.fill_count:.2f}"


def test_a_bad_candlestick_window_is_kalshis_400() -> None:
    state = new_state()
    with pytest.raises(KalshiError) as refused:
        history.market_candlesticks(
            state, call("S", MARKET, start_ts="10", end_ts="20", period_interval="5")
        )
    assert refused.value.status == 400


def test_settling_pays_the_winners_and_records_it() -> None:
    state = new_state()
    order(state, "bid", "0.32", 10, subaccount=1)  # 10 YES at 0.32
    order(state, "ask", "0.30", 4, subaccount=2)  # 4 NO, i.e. YES sold at 0.30
    resting = order(state, "bid", "0.05", 3)
    before = {n: state.accounts[n].balance for n in (1, 2)}
    settle(state, MARKET, "yes")
    assert resting.status == "canceled"
    assert state.accounts[1].balance == before[1] + 10  # $1 per winning YES
    assert state.accounts[2].balance == before[2]  # NO lost
    assert state.markets[MARKET]["status"] == "finalized"
    _, body = history.settlements(state, call())
    yes_row = next(s for s in body["settlements"] if s["yes_count_fp"] == "10.00")
    assert (yes_row["market_result"], yes_row["revenue"]) == ("yes", 1000)
    assert state.accounts[1].positions[MARKET].position == 0


def test_resting_value_and_queue_positions() -> None:
    state = new_state()
    first = order(state, "bid", "0.31", 4, subaccount=1)
    order(state, "bid", "0.31", 2, subaccount=2)
    _, value = history.resting_order_value(state, call())
    assert value == {"total_resting_order_value": int(D("0.31") * 6 * 100)}
    _, queue = history.queue_positions(state, call(market_tickers=MARKET))
    ahead = {q["order_id"]: q["queue_position_fp"] for q in queue["queue_positions"]}
    assert ahead[first.order_id] == "0.00" and sorted(ahead.values()) == ["0.00", "4.00"]


def test_settling_is_announced_as_market_lifecycle_v2() -> None:
    from signing_proxy.sandbox import ws_messages
    from signing_proxy.sandbox.events import MarketLifecycle

    state = new_state()
    seen: list[object] = []
    state.listeners.append(seen.append)
    settle(state, MARKET, "no")
    steps = [e for e in seen if isinstance(e, MarketLifecycle)]
    assert [e.event_type for e in steps] == ["determined", "settled"]
    settled = ws_messages.lifecycle(steps[1])
    assert (settled["market_ticker"], settled["settlement_value"]) == (MARKET, 0)
