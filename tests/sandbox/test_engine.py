"""The sandbox's matching engine, driven directly: price-time priority, makers and
users, self-trade prevention, time in force, and a state machine of random order flow
whose books, orders, fills and positions must always agree."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from signing_proxy.sandbox.matching import amend, cancel, place_order
from signing_proxy.sandbox.order import Order
from signing_proxy.sandbox.state import Account, SandboxState
from signing_proxy.sandbox.wire import KalshiError

MARKET = "KXHIGHNY-26JUN12-B74.5"  # makers quote 0.30 bid / 0.32 ask
D = Decimal


def new_state(subaccounts: int = 3) -> SandboxState:
    state = SandboxState({}, clock=lambda: 1_781_200_000.0, window_ms=5000,
                         require_auth_everywhere=True)  # fmt: skip
    for number in range(1, subaccounts):
        state.accounts[number] = Account(number)
    return state


def order(
    state: SandboxState, book_side: str, price: str, count: int, subaccount: int = 0, **doc: Any
) -> Order:
    action = "buy" if book_side == "bid" else "sell"
    fields = {"ticker": MARKET, "subaccount": subaccount, **doc}
    return place_order(state, fields, side="yes", action=action, yes_price=D(price), count=D(count))


def test_a_taker_fills_against_makers_at_their_prices_best_first() -> None:
    state = new_state()
    book = state.books[MARKET]
    top = dict(book.depth("ask"))[D("0.32")]
    taker = order(state, "bid", "0.33", int(top) + 5)
    assert taker.status == "executed" and taker.fill_count == top + 5
    # The best level went first, at its own price; the next level supplied the rest.
    assert [(t.yes_price, t.count) for t in state.trades] == [(D("0.32"), top), (D("0.33"), D(5))]
    assert state.markets[MARKET]["yes_ask_dollars"] == "0.3300"


def test_a_user_order_inside_the_spread_is_the_best_and_fills_a_later_taker() -> None:
    state = new_state()
    maker = order(state, "bid", "0.31", 4, subaccount=1)
    assert maker.status == "resting" and state.books[MARKET].best("bid") == D("0.31")
    taker = order(state, "ask", "0.31", 3, subaccount=2)
    assert taker.status == "executed" and maker.remaining_count == 1
    maker_fill, taker_fill = sorted(state.fills, key=lambda f: f.is_taker)
    assert (maker_fill.order, maker_fill.is_taker, maker_fill.fee) == (maker, False, 0)
    assert (taker_fill.order, taker_fill.yes_price) == (taker, D("0.31"))
    assert state.accounts[1].positions[MARKET].position == 3
    assert state.accounts[2].positions[MARKET].position == -3
    assert state.accounts[1].balance == D("1000") - 3 * D("0.31")


def test_earlier_orders_at_a_price_fill_first() -> None:
    state = new_state(4)
    first = order(state, "bid", "0.31", 2, subaccount=1)
    second = order(state, "bid", "0.31", 2, subaccount=2)
    assert state.books[MARKET].ahead_of("bid", second) == 2
    order(state, "ask", "0.31", 3, subaccount=3)
    assert (first.status, first.remaining_count) == ("executed", 0)
    assert (second.status, second.remaining_count) == ("resting", 1)


def test_self_trade_prevention_taker_at_cross_stops_the_taker() -> None:
    state = new_state()
    resting = order(state, "bid", "0.31", 2)
    taker = order(state, "ask", "0.30", 5)
    assert (taker.status, taker.fill_count) == ("canceled", 0)
    assert resting.status == "resting" and state.trades == []


def test_self_trade_prevention_maker_cancels_the_resting_order() -> None:
    state = new_state()
    resting = order(state, "bid", "0.31", 2)
    taker = order(state, "ask", "0.31", 2, self_trade_prevention_type="maker")
    assert resting.status == "canceled"
    assert taker.status == "resting"  # nothing else bid 0.31 or more: it rests on the ask


def test_fill_or_kill_fills_whole_or_not_at_all() -> None:
    state = new_state()
    top = dict(state.books[MARKET].depth("ask"))[D("0.32")]
    killed = order(state, "bid", "0.32", int(top) + 1, time_in_force="fill_or_kill")
    assert (killed.status, killed.fill_count, state.trades) == ("canceled", 0, [])
    filled = order(state, "bid", "0.32", int(top), time_in_force="fill_or_kill")
    assert filled.status == "executed"


def test_immediate_or_cancel_never_rests() -> None:
    state = new_state()
    ioc = order(state, "bid", "0.10", 1, time_in_force="immediate_or_cancel")
    assert ioc.status == "canceled" and state.books[MARKET].best("bid") == D("0.30")


def test_post_only_that_would_cross_is_refused_and_rests_nothing() -> None:
    state = new_state()
    with pytest.raises(KalshiError) as refused:
        order(state, "bid", "0.32", 1, post_only=True)
    assert refused.value.status == 400
    assert state.orders == {}
    assert order(state, "bid", "0.31", 1, post_only=True).status == "resting"


def test_reduce_only_is_capped_at_the_position() -> None:
    state = new_state()
    with pytest.raises(KalshiError):
        order(state, "ask", "0.30", 1, reduce_only=True)  # nothing to reduce
    order(state, "bid", "0.32", 3)
    reducing = order(state, "ask", "0.30", 10, reduce_only=True)
    assert reducing.initial_count == 3 and state.positions[MARKET].position == 0


def test_cancel_and_amend_move_the_order_on_the_book() -> None:
    state = new_state()
    resting = order(state, "bid", "0.25", 2)
    amend(state, resting, D("0.31"), D("2"))
    assert state.books[MARKET].best("bid") == D("0.31")
    assert D("0.25") not in dict(state.books[MARKET].depth("bid"))
    assert cancel(state, resting) == 2
    assert state.books[MARKET].best("bid") == D("0.30")


PRICES = st.integers(1, 99).map(lambda cents: D(cents) / 100)


class OrderFlow(RuleBasedStateMachine):
    """Random orders, cancels and amends from three subaccounts on one market."""

    def __init__(self) -> None:
        super().__init__()
        self.state = new_state()

    @rule(
        side=st.sampled_from(["bid", "ask"]),
        price=PRICES,
        count=st.integers(1, 60),
        subaccount=st.integers(0, 2),
        tif=st.sampled_from(["good_till_canceled", "immediate_or_cancel", "fill_or_kill"]),
        stp=st.sampled_from(["taker_at_cross", "maker"]),
    )
    def place(self, side: str, price: D, count: int, subaccount: int, tif: str, stp: str) -> None:
        order(self.state, side, str(price), count, subaccount, time_in_force=tif,
              self_trade_prevention_type=stp)  # fmt: skip

    def resting(self) -> list[Order]:
        return [o for o in self.state.orders.values() if o.status == "resting"]

    @precondition(lambda self: bool(self.resting()))
    @rule(pick=st.integers(0, 10_000))
    def cancel_one(self, pick: int) -> None:
        resting = self.resting()
        cancel(self.state, resting[pick % len(resting)])

    @precondition(lambda self: bool(self.resting()))
    @rule(pick=st.integers(0, 10_000), price=PRICES, more=st.integers(1, 20))
    def amend_one(self, pick: int, price: D, more: int) -> None:
        resting = self.resting()
        chosen = resting[pick % len(resting)]
        amend(self.state, chosen, price, chosen.fill_count + more)

    @invariant()
    def the_book_is_never_crossed(self) -> None:
        book = self.state.books[MARKET]
        bid, ask = book.best("bid"), book.best("ask")
        assert bid is None or ask is None or bid < ask

    @invariant()
    def resting_orders_and_the_book_agree(self) -> None:
        book = self.state.books[MARKET]
        on_book = {
            id(r.order): r.remaining
            for side in ("bid", "ask")
            for level in book.side(side).values()  # type: ignore[arg-type]
            for r in level
            if r.order is not None
        }
        resting = {id(o): o.remaining_count for o in self.resting()}
        assert on_book == resting
        assert all(count > 0 for count in resting.values())

    @invariant()
    def fills_add_up_to_orders_and_positions(self) -> None:
        filled: dict[int, D] = {}
        held: dict[int, D] = {}
        for fill in self.state.fills:
            filled[id(fill.order)] = filled.get(id(fill.order), D(0)) + fill.count
            sign = 1 if fill.order.book_side == "bid" else -1
            held[fill.order.subaccount] = held.get(fill.order.subaccount, D(0)) + sign * fill.count
        for o in self.state.orders.values():
            assert filled.get(id(o), D(0)) == o.fill_count
            assert o.fill_count + o.remaining_count <= o.initial_count
        for number, account in self.state.accounts.items():
            position = account.positions.get(MARKET)
            assert (position.position if position else D(0)) == held.get(number, D(0))

    @invariant()
    def every_trade_has_one_taker_fill(self) -> None:
        takers = sum((f.count for f in self.state.fills if f.is_taker), D(0))
        assert takers == sum((t.count for t in self.state.trades), D(0))


OrderFlow.TestCase.settings = settings(max_examples=20, stateful_step_count=50, deadline=None)
test_random_order_flow_keeps_books_orders_and_positions_consistent = OrderFlow.TestCase


def test_a_thousand_seeded_orders_leave_everything_consistent() -> None:
    import random

    rng = random.Random(1000)  # noqa: S311 - a reproducible order flow, not a secret
    flow = OrderFlow()
    for step in range(1000):
        if rng.random() < 0.8 or not flow.resting():
            flow.place(
                rng.choice(["bid", "ask"]), D(rng.randint(1, 99)) / 100, rng.randint(1, 60),
                rng.randint(0, 2), rng.choice(["good_till_canceled", "immediate_or_cancel"]),
                rng.choice(["taker_at_cross", "maker"]),
            )  # fmt: skip
        elif rng.random() < 0.5:
            flow.cancel_one(rng.randint(0, 10_000))
        else:
            flow.amend_one(rng.randint(0, 10_000), D(rng.randint(1, 99)) / 100, rng.randint(1, 9))
        if step % 100 == 99:
            flow.the_book_is_never_crossed()
            flow.resting_orders_and_the_book_agree()
            flow.fills_add_up_to_orders_and_positions()
            flow.every_trade_has_one_taker_fill()
    assert len(flow.state.orders) > 700 and len(flow.state.trades) > 100
