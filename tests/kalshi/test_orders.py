"""The V1 -> V2 order mapping, against an oracle: what each contract pays if YES or NO wins."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signing_proxy.kalshi.orders import (
    TranslationError,
    amend_to_v2,
    batch_cancel_to_v2,
    create_to_v2,
    decrease_to_v2,
    v1_order_write,
)


def v1_outcome(side: str, action: str, price: Decimal) -> tuple[Decimal, Decimal]:
    """(P&L if YES wins, P&L if NO wins) per contract of a V1 order at its side's price."""
    bought = (1 - price, -price)  # buying the named side: it pays 1 if that side wins
    if side == "no":
        bought = (bought[1], bought[0])
    return bought if action == "buy" else (-bought[0], -bought[1])


def v2_outcome(book: str, yes_price: Decimal) -> tuple[Decimal, Decimal]:
    """(P&L if YES wins, P&L if NO wins) per contract of a V2 order on the YES book."""
    if book == "bid":
        return 1 - yes_price, -yes_price
    return yes_price - 1, yes_price


@given(
    side=st.sampled_from(["yes", "no"]),
    action=st.sampled_from(["buy", "sell"]),
    cents=st.integers(1, 99),
    as_dollars=st.booleans(),
    count=st.integers(1, 10_000),
)
def test_a_translated_order_pays_exactly_what_the_v1_order_would(
    side: str, action: str, cents: int, as_dollars: bool, count: int
) -> None:
    field = f"{side}_price_dollars" if as_dollars else f"{side}_price"
    value: object = f"{Decimal(cents) / 100:.2f}" if as_dollars else cents
    v1 = {"ticker": "T", "side": side, "action": action, "count": count, field: value}
    v2 = create_to_v2(v1)
    assert v2_outcome(v2["side"], Decimal(v2["price"])) == v1_outcome(
        side, action, Decimal(cents) / 100
    )
    assert Decimal(v2["count"]) == count
    assert {"action", field} & set(v2) == set()


@pytest.mark.parametrize(
    ("side", "action", "price", "book", "v2_price"),
    [
        ("yes", "buy", {"yes_price": 40}, "bid", "0.4000"),
        ("yes", "sell", {"yes_price": 40}, "ask", "0.4000"),
        ("no", "buy", {"no_price": 40}, "ask", "0.6000"),
        ("no", "sell", {"no_price": 40}, "bid", "0.6000"),
        # A NO order priced in YES terms keeps that price.
        ("no", "buy", {"yes_price_dollars": "0.6100"}, "ask", "0.6100"),
    ],
)
def test_the_four_directions(
    side: str, action: str, price: dict[str, object], book: str, v2_price: str
) -> None:
    v2 = create_to_v2({"ticker": "T", "side": side, "action": action, "count_fp": "2.50", **price})
    assert (v2["side"], v2["price"], v2["count"]) == (book, v2_price, "2.50")
    # V2 requires these; Kalshi's V1 defaults fill them.
    assert v2["time_in_force"] == "good_till_canceled"
    assert v2["self_trade_prevention_type"] == "taker_at_cross"


def test_fields_that_mean_the_same_pass_through() -> None:
    v1 = {
        "ticker": "T", "side": "yes", "action": "buy", "count": 1, "yes_price": 5,
        "client_order_id": "c1", "time_in_force": "immediate_or_cancel", "post_only": True,
        "subaccount": 3, "exchange_index": -1, "expiration_ts": 1900000000,
        "order_group_id": "g", "cancel_order_on_pause": True,
    }  # fmt: skip
    v2 = create_to_v2(v1)
    for name in ("client_order_id", "time_in_force", "post_only", "subaccount", "exchange_index"):
        assert v2[name] == v1[name]
    assert v2["expiration_time"] == 1900000000 and "expiration_ts" not in v2


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"side": "yes", "action": "buy", "count": 1}, "yes_price"),
        ({"side": "yes", "action": "buy", "count": 1, "yes_price": 5, "no_price": 95}, "exactly"),
        ({"side": "maybe", "action": "buy", "count": 1, "yes_price": 5}, "side"),
        ({"side": "yes", "action": "hold", "count": 1, "yes_price": 5}, "action"),
        ({"side": "yes", "action": "buy", "count": 0, "yes_price": 5}, "count"),
        (
            {"side": "yes", "action": "buy", "count": 2, "count_fp": "3.00", "yes_price": 5},
            "differ",
        ),
        ({"side": "yes", "action": "buy", "count": 1, "yes_price": 100}, "yes_price"),
        (
            {"side": "yes", "action": "buy", "count": 1, "yes_price": 5, "buy_max_cost": 9},
            "buy_max",
        ),
        ({"side": "yes", "action": "buy", "count": 1, "type": "market", "yes_price": 5}, "market"),
    ],
)
def test_what_cannot_be_translated_is_named(doc: dict[str, object], named: str) -> None:
    with pytest.raises(TranslationError) as refused:
        create_to_v2({"ticker": "T", **doc})
    assert named in str(refused.value)


def test_amend_decrease_and_batch_cancel() -> None:
    amend = amend_to_v2(
        {"ticker": "T", "side": "no", "action": "buy", "no_price": 30, "count": 4,
         "updated_client_order_id": "c2", "subaccount": 2}
    )  # fmt: skip
    assert amend == {
        "ticker": "T", "updated_client_order_id": "c2", "side": "ask", "price": "0.7000",
        "count": "4.00",
    }  # fmt: skip
    assert decrease_to_v2({"reduce_by": 2}) == {"reduce_by": "2.00"}
    assert decrease_to_v2({"reduce_to_fp": "1.50"}) == {"reduce_to": "1.50"}
    with pytest.raises(TranslationError):
        decrease_to_v2({"reduce_by": 1, "reduce_to": 1})
    assert batch_cancel_to_v2({"ids": ["a", "b"]}) == {
        "orders": [{"order_id": "a"}, {"order_id": "b"}]
    }


V1 = "/trade-api/v2/portfolio/orders"
V2 = "/trade-api/v2/portfolio/events/orders"


@pytest.mark.parametrize(
    ("method", "rest", "kind"),
    [
        ("POST", "", "create"),
        ("DELETE", "/o1", "cancel"),
        ("POST", "/o1/amend", "amend"),
        ("POST", "/o1/decrease", "decrease"),
        ("POST", "/batched", "batch_create"),
        ("DELETE", "/batched", "batch_cancel"),
    ],
)
def test_every_removed_write_is_recognised(method: str, rest: str, kind: str) -> None:
    write = v1_order_write(method, V1 + rest)
    assert write is not None
    assert (write.kind, write.v2_method, write.v2_path) == (kind, method, V2 + rest)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/trade-api/v2/portfolio/orders"),
        ("GET", "/trade-api/v2/portfolio/orders/o1"),
        ("POST", "/trade-api/v2/portfolio/events/orders"),
        ("POST", "/trade-api/v2/portfolio/orders_extra"),
        ("GET", "/trade-api/v2/portfolio/orders/o1/queue_position"),
    ],
)
def test_reads_and_v2_routes_are_not_v1_writes(method: str, path: str) -> None:
    assert v1_order_write(method, path) is None
