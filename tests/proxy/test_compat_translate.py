"""compat.v1_orders: translate, proven against the sandbox's matching engine: a V1 order
sent through the proxy (as V2) rests, fills and cancels exactly as the same V1 order does
on an exchange that still serves V1."""

from __future__ import annotations

import base64
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import hashes

from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.state import SANDBOX_STATE
from tests.support.keys import KALSHI_PSS, KEY_ID, KeyMaterial

pytestmark = pytest.mark.usefixtures("clean_env")

MARKET = "KXHIGHNY-26JUN12-B74.5"  # quoted 0.30 bid / 0.32 ask
V1 = "/trade-api/v2/portfolio/orders"
# What a V1 client reads in an order; both exchanges must agree on all of it.
COMPARED = (
    "client_order_id", "ticker", "side", "action", "book_side", "outcome_side", "type",
    "status", "yes_price_dollars", "no_price_dollars", "fill_count_fp", "remaining_count_fp",
    "initial_count_fp", "taker_fees_dollars", "taker_fill_cost_dollars",
)  # fmt: skip


@pytest.fixture
async def exchanges(
    key_material: KeyMaterial, make_proxy, tmp_path: Path
) -> AsyncIterator[tuple[Any, Any, TestServer]]:
    """(a V1 client straight to a sandbox that still serves V1, a V1 client through a
    translating proxy to a sandbox that serves V2 only, that sandbox)."""
    keys = {KEY_ID: key_material.public_key}
    legacy = TestServer(create_sandbox_app(keys, v1_orders_live=True))
    modern = TestServer(create_sandbox_app(keys))
    await legacy.start_server()
    await modern.start_server()
    config = tmp_path / "c.yaml"
    config.write_text("compat: {v1_orders: translate}\n")
    proxy = await make_proxy(str(modern.make_url("")).rstrip("/"), config_file=config)
    async with ClientSession(str(legacy.make_url(""))) as direct:

        async def v1_direct(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            stamp = str(time.time_ns() // 1_000_000)
            message = f"{stamp}{method}{path}".encode()
            signature = key_material.key.sign(message, KALSHI_PSS, hashes.SHA256())
            headers = {
                "KALSHI-ACCESS-KEY": KEY_ID,
                "KALSHI-ACCESS-TIMESTAMP": stamp,
                "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode(),
            }
            data = None if body is None else json.dumps(body).encode()
            async with direct.request(method, path, data=data, headers=headers) as reply:
                return reply.status, await reply.json()

        async def v1_proxied(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            data = None if body is None else json.dumps(body).encode()
            reply = await proxy.request(method, path, data=data)
            return reply.status, await reply.json()

        yield v1_direct, v1_proxied, modern
    await legacy.close()
    await modern.close()


def _seen(order: dict[str, Any]) -> dict[str, Any]:
    return {name: order.get(name) for name in COMPARED}


def _random_create(rng: random.Random) -> dict[str, Any]:
    side = rng.choice(["yes", "no"])
    cents = rng.randint(1, 99)
    price_field = rng.choice([f"{side}_price", f"{side}_price_dollars"])
    price: Any = cents if not price_field.endswith("dollars") else f"{cents / 100:.2f}"
    return {
        "ticker": MARKET,
        "side": side,
        "action": rng.choice(["buy", "sell"]),
        "count": rng.randint(1, 5),
        price_field: price,
        "client_order_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "time_in_force": rng.choice(["good_till_canceled", "immediate_or_cancel"]),
    }


async def test_translated_orders_rest_fill_and_cancel_as_v1_orders_did(exchanges) -> None:
    v1_direct, v1_proxied, modern = exchanges
    rng = random.Random(20261130)  # noqa: S311 - a reproducible order flow, not a secret
    resting: list[tuple[str, str, dict[str, Any]]] = []  # (direct id, proxied id, order)
    for _ in range(120):
        step = rng.random()
        if step < 0.7 or not resting:
            order = _random_create(rng)
            (s1, a1), (s2, a2) = (
                await v1_direct("POST", V1, order),
                await v1_proxied("POST", V1, order),
            )
            assert (s1, s2) == (201, 201), (a1, a2)
            assert _seen(a2["order"]) == _seen(a1["order"]), order
            if a1["order"]["status"] == "resting":
                resting.append((a1["order"]["order_id"], a2["order"]["order_id"], order))
        elif step < 0.85:
            direct_id, proxied_id, _ = resting.pop(rng.randrange(len(resting)))
            (s1, a1) = await v1_direct("DELETE", f"{V1}/{direct_id}")
            (s2, a2) = await v1_proxied("DELETE", f"{V1}/{proxied_id}")
            assert (s1, s2) == (200, 200)
            assert _seen(a2["order"]) == _seen(a1["order"])
            assert (a2["reduced_by_fp"], a2["reduced_by"]) == (
                a1["reduced_by_fp"],
                a1["reduced_by"],
            )
        else:
            direct_id, proxied_id, order = resting.pop(rng.randrange(len(resting)))
            cents = rng.randint(1, 99)
            amend = {
                "ticker": MARKET, "side": order["side"], "action": order["action"],
                f"{order['side']}_price": cents, "count": order["count"] + rng.randint(0, 3),
            }  # fmt: skip
            (s1, a1) = await v1_direct("POST", f"{V1}/{direct_id}/amend", amend)
            (s2, a2) = await v1_proxied("POST", f"{V1}/{proxied_id}/amend", amend)
            assert (s1, s2) == (200, 200), (a1, a2)
            assert _seen(a2["old_order"]) == _seen(a1["old_order"])
            assert _seen(a2["order"]) == _seen(a1["order"])
            if a1["order"]["status"] == "resting":
                resting.append((direct_id, proxied_id, order))
    # The two exchanges end in the same place: balance and position.
    for path in ("/trade-api/v2/portfolio/balance", "/trade-api/v2/portfolio/positions"):
        (_, b1), (_, b2) = await v1_direct("GET", path), await v1_proxied("GET", path)
        b1.pop("updated_ts", None), b2.pop("updated_ts", None)
        for position in b1.get("market_positions", []) + b2.get("market_positions", []):
            position.pop("last_updated_ts")
        assert b2 == b1
    # And only V2 writes reached the exchange that no longer serves V1.
    seen = modern.app[SANDBOX_STATE].seen
    assert not [r for r in seen if r.method != "GET" and "/events/orders" not in r.raw_path]


async def test_kalshis_refusal_passes_through_a_translation(exchanges) -> None:
    _, v1_proxied, _ = exchanges
    order = {"ticker": "NO-SUCH-MARKET", "side": "yes", "action": "buy", "count": 1, "yes_price": 5}
    status, body = await v1_proxied("POST", V1, order)
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_a_translated_batch_answers_per_order(exchanges) -> None:
    _, v1_proxied, _ = exchanges
    good = {"ticker": MARKET, "side": "no", "action": "buy", "count": 2, "no_price": 10}
    bad = {"ticker": "NO-SUCH-MARKET", "side": "yes", "action": "buy", "count": 1, "yes_price": 5}
    status, body = await v1_proxied("POST", f"{V1}/batched", {"orders": [good, bad]})
    assert status == 201
    placed, refused = body["orders"]
    assert placed["order"]["side"] == "no" and placed["order"]["action"] == "buy"
    assert (
        placed["order"]["book_side"] == "ask" and placed["order"]["yes_price_dollars"] == "0.9000"
    )
    assert refused["order"] is None and refused["error"]["code"] == "not_found"
    order_id = placed["order"]["order_id"]
    status, body = await v1_proxied("DELETE", f"{V1}/batched", {"ids": [order_id, "nope"]})
    assert status == 200
    canceled, missing = body["orders"]
    assert canceled["order"]["status"] == "canceled" and canceled["reduced_by_fp"] == "2.00"
    assert missing["error"]["code"] == "not_found"


async def test_decrease_is_translated(exchanges) -> None:
    _, v1_proxied, _ = exchanges
    order = {"ticker": MARKET, "side": "yes", "action": "buy", "count": 5, "yes_price": 5}
    _, placed = await v1_proxied("POST", V1, order)
    order_id = placed["order"]["order_id"]
    status, body = await v1_proxied("POST", f"{V1}/{order_id}/decrease", {"reduce_by": 2})
    assert status == 200 and body["order"]["remaining_count_fp"] == "3.00"


async def test_an_untranslatable_order_is_400_and_never_sent(exchanges) -> None:
    _, v1_proxied, modern = exchanges
    order = {"ticker": MARKET, "side": "yes", "action": "buy", "count": 1, "yes_price": 5,
             "buy_max_cost": 500}  # fmt: skip
    status, body = await v1_proxied("POST", V1, order)
    assert (status, body["error"]["code"]) == (400, "proxy_v1_translation_failed")
    assert "buy_max_cost" in body["error"]["message"]
    assert modern.app[SANDBOX_STATE].orders == {}
