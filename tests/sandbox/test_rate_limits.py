"""Kalshi's rate limits in the sandbox served for real (off unless a tier is asked for):
a read and a write bucket per tier, endpoint costs, batches billed per order, and
Kalshi's 429 with no Retry-After header."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.ratelimit import cost_of
from tests.sandbox.exchange_client import ORDERS, Client, Exchange, serve
from tests.sandbox.test_sandbox import API, KEY_ID, MARKET, signed_headers
from tests.support.keys import new_rsa_key

BALANCE = f"{API}/portfolio/balance"
TOO_MANY = b'{"error":"too many requests"}'

Serve = Callable[..., Awaitable[Exchange]]


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
def make(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], key: rsa.RSAPrivateKey
) -> Serve:
    async def make(**options: Any) -> Exchange:
        return await serve(aiohttp_client, key, **options)

    return make


async def statuses(
    exchange: Exchange, count: int, method: str, target: str, body: Any = None
) -> list[int]:
    return [(await exchange.raw(method, target, body))[0] for _ in range(count)]


def order(price: str = "0.05", **extra: Any) -> dict[str, Any]:
    return {"ticker": MARKET, "side": "bid", "price": price, "count": "1",
            "time_in_force": "good_till_canceled",
            "self_trade_prevention_type": "taker_at_cross", **extra}  # fmt: skip


async def test_off_by_default(make: Serve) -> None:
    exchange = await make()
    assert set(await statuses(exchange, 40, "GET", BALANCE)) == {200}


async def test_basic_read_bucket_holds_20_gets_then_kalshis_429(make: Serve) -> None:
    exchange = await make(rate_limit_tier="basic")
    assert await statuses(exchange, 20, "GET", BALANCE) == [200] * 20
    headers = signed_headers(exchange.key, "GET", BALANCE, ts=exchange.clock.ms)
    async with exchange.client.get(BALANCE, headers=headers) as reply:
        assert (reply.status, await reply.read()) == (429, TOO_MANY)
        assert "Retry-After" not in reply.headers
        assert reply.content_type == "application/json"
    # The write bucket is another: a write still goes through.
    assert (await exchange.raw("POST", ORDERS, order()))[0] == 201
    # 50 ms refill 10 tokens at 200 a second: one more GET.
    exchange.clock.ms += 50
    assert await statuses(exchange, 2, "GET", BALANCE) == [200, 429]


async def test_a_refused_request_spends_nothing(make: Serve) -> None:
    exchange = await make(rate_limit_tier="basic")
    await statuses(exchange, 25, "GET", BALANCE)
    exchange.clock.ms += 50
    assert await statuses(exchange, 2, "GET", BALANCE) == [200, 429]


async def test_basic_write_bucket_holds_one_second_and_advanced_two(make: Serve) -> None:
    basic = await make(rate_limit_tier="basic")
    assert await statuses(basic, 11, "POST", ORDERS, order()) == [201] * 10 + [429]
    advanced = await make(rate_limit_tier="advanced")
    assert await statuses(advanced, 61, "POST", ORDERS, order()) == [201] * 60 + [429]


async def test_cheaper_endpoints_cost_less(make: Serve) -> None:
    exchange = await make(rate_limit_tier="basic")
    order_id = (await exchange.ok("POST", ORDERS, order()))["order_id"]
    # GET /portfolio/orders/{id} costs 2: 100 of them fill the read bucket of 200.
    target = f"{API}/portfolio/orders/{order_id}"
    assert await statuses(exchange, 101, "GET", target) == [200] * 100 + [429]


async def test_a_batch_is_billed_per_order(make: Serve) -> None:
    exchange = await make(rate_limit_tier="basic")
    batch = f"{ORDERS}/batched"
    eleven = {"orders": [order(client_order_id=f"b-{i}") for i in range(11)]}
    assert (await exchange.raw("POST", batch, eleven))[0] == 429  # 110 tokens > 100
    ten = {"orders": [order(client_order_id=f"c-{i}") for i in range(10)]}
    assert (await exchange.raw("POST", batch, ten))[0] == 201
    assert (await exchange.raw("POST", ORDERS, order()))[0] == 429


async def test_account_limits_name_the_tier_kept(make: Serve) -> None:
    basic = await make()
    assert (await basic.ok("GET", f"{API}/account/limits"))["usage_tier"] == "basic"
    premier = await make(rate_limit_tier="premier")
    assert await premier.ok("GET", f"{API}/account/limits") == {
        "grants": [],
        "read": {"bucket_capacity": 1000, "refill_rate": 1000},
        "usage_tier": "premier",
        "write": {"bucket_capacity": 2000, "refill_rate": 1000},
    }


def test_an_unknown_tier_is_refused(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="unknown rate limit tier 'gold'"):
        create_sandbox_app({KEY_ID: key.public_key()}, rate_limit_tier="gold")


@pytest.mark.parametrize(
    ("method", "path", "cost"),
    [
        ("GET", "/trade-api/v2/portfolio/balance", 10),
        ("GET", "/trade-api/v2/portfolio/orders/abc", 2),
        ("GET", "/trade-api/v2/portfolio/orders/abc/queue_position", 10),
        ("DELETE", "/trade-api/v2/portfolio/events/orders/abc", 2),
        ("DELETE", "/trade-api/v2/portfolio/events/orders/batched", 2),
        ("POST", "/trade-api/v2/portfolio/events/orders", 10),
        ("GET", "/trade-api/v2/cfbenchmarks", 150),
        ("GET", "/trade-api/v2/cfbenchmarks/a/b", 150),
        ("GET", "/trade-api/v2/margin/balance", 5),
        ("POST", "/trade-api/v2/account/api_usage_level/upgrade", 30),
    ],
)
def test_costs_follow_kalshis_table(method: str, path: str, cost: int) -> None:
    assert cost_of(method, path) == cost
