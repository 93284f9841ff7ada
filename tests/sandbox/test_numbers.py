"""Numeric query parameters: only ASCII digits are numbers. Python's str.isdigit also
takes '³' and '²', which int() then refuses; the property-based conformance test found a
500 from GET /markets/trades?max_ts=³. Every such parameter answers Kalshi's 400."""

from __future__ import annotations

import pytest

from signing_proxy.sandbox.wire import plain_int
from tests.sandbox.exchange_client import Exchange
from tests.sandbox.test_engine import MARKET

API = "/trade-api/v2"
WINDOW = "end_ts=2000000000&period_interval=60"


@pytest.mark.parametrize(
    "target",
    [
        f"{API}/markets/trades?max_ts=%C2%B3",
        f"{API}/markets/trades?min_ts=%C2%B2",
        f"{API}/markets/{MARKET}/orderbook?depth=%C2%B3",
        f"{API}/portfolio/balance?subaccount=%C2%B9",
        f"{API}/portfolio/positions?subaccount=%C2%B9",
        f"{API}/communications/rfqs?subaccount=%C2%B9",
        f"{API}/communications/quotes?min_ts=%C2%B3",
        f"{API}/series/KXHIGHNY/markets/{MARKET}/candlesticks?start_ts=%C2%B3&{WINDOW}",
        f"{API}/series/KXHIGHNY/events/KXHIGHNY-26JUN12/candlesticks?start_ts=%C2%B3&{WINDOW}",
    ],
)
async def test_a_number_in_other_digits_is_kalshis_400_not_a_500(
    exchange: Exchange, target: str
) -> None:
    status, answer = await exchange.call("GET", target)
    assert status == 400, answer
    assert isinstance(answer, dict) and ("code" in answer or "msg" in answer), answer


@pytest.mark.parametrize(
    ("text", "number"),
    [("42", 42), ("-7", -7), ("³", None), ("٣", None), (" 3", None), ("3_0", None), ("", None)],
)
def test_plain_int_reads_ascii_digits_only(text: str, number: int | None) -> None:
    assert plain_int(text) == number
