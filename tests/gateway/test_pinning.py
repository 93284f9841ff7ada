"""Subaccount pinning: a token with `subaccount: K` acts on K only, whatever the query,
body, batch or spelling, against an upstream that records what arrives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.clients import raw_request

pytestmark = pytest.mark.usefixtures("clean_env")

V2 = "/trade-api/v2/portfolio/events/orders"
BOT = "bot-token-0123456789abcdef"
CONFIG = {"access": {"tokens": [{"name": "bot", "token": BOT, "subaccount": 3}]}}
AUTH = {"Authorization": f"Bearer {BOT}"}


async def echo_ok(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"ok": True}, status=200)


@pytest.fixture
async def proxy(make_upstream, make_proxy, tmp_path: Path) -> Any:
    upstream = await make_upstream(echo_ok)
    config = tmp_path / "pin.yaml"
    config.write_text(json.dumps(CONFIG))
    return upstream, await make_proxy(upstream.url, config_file=config)


ORDER = {"ticker": "T", "side": "bid", "price": "0.30", "count": "1",
         "time_in_force": "good_till_canceled", "self_trade_prevention_type": "maker"}  # fmt: skip


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("GET", "/trade-api/v2/portfolio/balance?subaccount=4", None),
        ("GET", "/trade-api/v2/portfolio/positions?limit=5&sub%61ccount=0", None),
        ("GET", "/trade-api/v2/portfolio/fills?subaccount=3&subaccount=5", None),
        ("DELETE", f"{V2}/o-1?subaccount=0", None),
        ("POST", V2, {**ORDER, "subaccount": 0}),
        ("POST", V2, {**ORDER, "Subaccount": 5}),  # Go's decoder ignores letter case
        ("POST", f"{V2}/batched",
         {"orders": [{**ORDER, "subaccount": 3}, {**ORDER, "subaccount": 1}]}),
        ("DELETE", f"{V2}/batched", {"orders": [{"order_id": "a", "subaccount": 9}]}),
        ("POST", "/trade-api/v2/portfolio/subaccounts", {}),
        ("POST", "/trade-api/v2/portfolio/subaccounts/transfer", {"from_subaccount": 3}),
    ],
)  # fmt: skip
async def test_another_subaccount_is_403_and_never_sent(
    proxy: Any, method: str, target: str, body: Any
) -> None:
    upstream, client = proxy
    data = None if body is None else json.dumps(body)
    reply = await client.request(method, target, data=data, headers=AUTH)
    assert reply.status == 403
    assert (await reply.json())["error"]["code"] == "proxy_subaccount_mismatch"
    assert upstream.seen == []


@pytest.mark.parametrize(
    "target",
    [
        "/trade-api/v2/%70ortfolio/balance?subaccount=1",
        "/trade-api/v2/portfolio/balance?sub%61ccount=1",
        "/trade-api/v2/portfolio/balance?SUBACCOUNT=1",
        "/trade-api/v2/portfolio/balance?subaccount=%31",
    ],
)
async def test_no_spelling_reaches_another_subaccount(proxy: Any, target: str) -> None:
    # Sent as raw bytes: aiohttp's client would normalise these spellings.
    upstream, client = proxy
    reply = await raw_request(
        client.port,
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {BOT}\r\nConnection: close\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 403") and upstream.seen == []


@pytest.mark.parametrize(
    ("target", "sent"),
    [
        ("/trade-api/v2/portfolio/balance", "/trade-api/v2/portfolio/balance?subaccount=3"),
        ("/trade-api/v2/portfolio/orders?status=resting",
         "/trade-api/v2/portfolio/orders?status=resting&subaccount=3"),
        ("/trade-api/v2/portfolio/fills?subaccount=3",
         "/trade-api/v2/portfolio/fills?subaccount=3"),
        ("/trade-api/v2/markets?limit=1", "/trade-api/v2/markets?limit=1"),  # not a portfolio call
    ],
)  # fmt: skip
async def test_the_pinned_subaccount_is_named_where_none_is(
    proxy: Any, target: str, sent: str
) -> None:
    upstream, client = proxy
    assert (await client.get(target, headers=AUTH)).status == 200
    (seen,) = upstream.seen
    assert seen.raw_path == sent and seen.auth_error is None


async def test_order_bodies_get_the_subaccount_per_order(proxy: Any) -> None:
    upstream, client = proxy
    await client.post(V2, data=json.dumps(ORDER), headers=AUTH)
    batch = {"orders": [ORDER, {**ORDER, "subaccount": 3}]}
    await client.post(f"{V2}/batched", data=json.dumps(batch), headers=AUTH)
    single, batched = (json.loads(s.body) for s in upstream.seen)
    assert single["subaccount"] == 3
    assert [o["subaccount"] for o in batched["orders"]] == [3, 3]
    assert "subaccount" not in batched  # a batch names it per order
    assert all(s.auth_error is None for s in upstream.seen)


async def test_an_unpinned_token_is_untouched(make_upstream, make_proxy, tmp_path: Path) -> None:
    upstream = await make_upstream(echo_ok)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"access": {"tokens": [{"name": "desk", "token": BOT}]}}))
    client = await make_proxy(upstream.url, config_file=config)
    target = "/trade-api/v2/portfolio/balance?subaccount=7"
    assert (await client.get(target, headers=AUTH)).status == 200
    assert upstream.seen[0].raw_path == target


async def test_a_v1_cancel_by_bare_ids_is_pinned_per_order(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    # Bare ids name no subaccount, which Kalshi reads as the primary: a pinned bot must not
    # reach it that way, so each id becomes an order naming the pinned subaccount.
    async def batch_answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"orders": []})

    upstream = await make_upstream(batch_answer)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({**CONFIG, "compat": {"v1_orders": "translate"}}))
    client = await make_proxy(upstream.url, config_file=config)
    body = json.dumps({"ids": ["a", "b"]})
    reply = await client.delete("/trade-api/v2/portfolio/orders/batched", data=body, headers=AUTH)
    assert reply.status == 200
    (sent,) = [s for s in upstream.seen if s.method == "DELETE"]
    assert json.loads(sent.body)["orders"] == [
        {"order_id": "a", "subaccount": 3},
        {"order_id": "b", "subaccount": 3},
    ]
