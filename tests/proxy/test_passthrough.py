"""Today's Kalshi fields pass through untouched both ways: exchange_index (shards),
subaccounts, fixed-point strings; neither the body nor the answer is re-encoded."""

from __future__ import annotations

import pytest
from aiohttp import web

pytestmark = pytest.mark.usefixtures("clean_env")

# Spacing, key order, -1, big numbers and fixed-point strings exactly as a client wrote them.
ORDER = (
    b'{"ticker":"KXBTC-26DEC31-T100000", "side":"ask","count":"2.50","price":"0.5600",'
    b'"time_in_force":"good_till_canceled","self_trade_prevention_type":"maker",'
    b'"exchange_index": -1,"subaccount":63,"client_order_id":"c-1","expiration_time":1900000000}'
)
ANSWER = (
    b'{"order_id":"o-1","fill_count":"0.00","remaining_count":"2.50",'
    b'"average_fill_price":"0.560000","exchange_index":3,"subaccount_number":63,'
    b'"ts_ms":1781200000123}'
)


async def kalshi_answer(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=201, body=ANSWER, content_type="application/json")


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("POST", "/trade-api/v2/portfolio/events/orders"),
        ("POST", "/trade-api/v2/portfolio/events/orders/batched"),
        ("DELETE", "/trade-api/v2/portfolio/events/orders?subaccount=63&exchange_index=-1"),
        ("POST", "/trade-api/v2/portfolio/subaccounts/transfer"),
    ],
)
async def test_bodies_and_answers_pass_byte_for_byte(
    make_upstream, make_proxy, method: str, target: str
) -> None:
    upstream = await make_upstream(kalshi_answer)
    client = await make_proxy(upstream.url)
    reply = await client.request(method, target, data=ORDER)
    assert reply.status == 201
    assert await reply.read() == ANSWER
    (seen,) = upstream.seen
    assert (seen.method, seen.raw_path, seen.body) == (method, target, ORDER)
    assert seen.auth_error is None


@pytest.mark.parametrize(
    "target",
    [
        "/trade-api/v2/portfolio/positions?subaccount=5&count_filter=position,total_traded",
        "/trade-api/v2/portfolio/fills?subaccount=0&min_ts=1781200000&limit=1000",
        "/trade-api/v2/portfolio/orders?exchange_index=-1&status=resting",
        "/trade-api/v2/portfolio/subaccounts/balances",
    ],
)
async def test_subaccount_and_shard_queries_reach_kalshi_as_sent(
    make_upstream, make_proxy, target: str
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    assert (await client.get(target)).status == 200
    assert [s.raw_path for s in upstream.seen] == [target]
