"""Rate-limit attacks: batch billing and hostile /account/limits answers."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from signing_proxy.proxy.app import LIVE
from tests.proxy.attacks.helpers import V1, V2, cfg
from tests.proxy.test_limits_source import COSTS, LIMITS

pytestmark = pytest.mark.usefixtures("clean_env")


def hostile(limits_body: bytes, costs_body: bytes):
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/trade-api/v2/account/limits":
            return web.Response(body=limits_body, content_type="application/json")
        if request.path == "/trade-api/v2/account/endpoint_costs":
            return web.Response(body=costs_body, content_type="application/json")
        return web.json_response({}, status=201)

    return handler


async def learned_or_fallback(client, events, seconds=3.0):
    limiter = client.app[LIVE].current.limiter
    async with asyncio.timeout(seconds):
        while limiter.learned is None and not any(
            e["event"] == "rate_limit_fallback" for e in events
        ):
            await asyncio.sleep(0.02)
    return limiter


J = lambda doc: json.dumps(doc).encode()  # noqa: E731
CASES = {
    "costs_not_a_list": (J(LIMITS), J({"default_cost": 10, "endpoint_costs": 5})),
    "catch_all_not_last": (
        J(LIMITS),
        J({"endpoint_costs": [{"cost": 1, "method": "GET", "path": "/a/*x/b"}]}),
    ),
    "deeply_nested": (b"[" * 50_000 + b"]" * 50_000, J(COSTS)),
    "infinite_cost": (
        J(LIMITS),
        b'{"endpoint_costs": [{"cost": 1e999, "method": "GET", "path": "/x"}]}',
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_limits_answer_is_a_logged_fallback(
    make_upstream, make_proxy, tmp_path, name
) -> None:
    upstream = await make_upstream(hostile(*CASES[name]))
    with capture_logs() as events:
        client = await make_proxy(upstream.url, config_file=cfg(tmp_path, "rate_limit: {}\n"))
        try:
            await learned_or_fallback(client, events)
        except TimeoutError:
            pass
    print(name, [e["event"] for e in events])
    assert any(e["event"] in ("rate_limit_fallback", "rate_limit_learned") for e in events), (
        "learn_limits died silently (task exception); no fallback logged"
    )


async def test_tiny_rate_crashes_every_request(make_upstream, make_proxy, tmp_path) -> None:
    limits = {**LIMITS, "write": {"bucket_capacity": 1, "refill_rate": 5e-324}}
    upstream = await make_upstream(hostile(J(limits), J(COSTS)))
    with capture_logs() as events:
        client = await make_proxy(upstream.url, config_file=cfg(tmp_path, "rate_limit: {}\n"))
        await learned_or_fallback(client, events)
    reply = await client.post(V2, data=b"{}")
    print(reply.status, await reply.text())
    # Refused as an answer no exchange gives: the limiter keeps its own settings.
    assert reply.status == 201
    assert [e for e in events if e["event"] == "rate_limit_fallback"]


async def test_infinite_rate_and_capacity_disable_limiter(
    make_upstream, make_proxy, tmp_path
) -> None:
    body = b'{"usage_tier":"x","read":{"bucket_capacity":1e999,"refill_rate":Infinity},"write":{"bucket_capacity":1e999,"refill_rate":1e999}}'
    upstream = await make_upstream(hostile(body, J({"default_cost": 0.5})))
    with capture_logs() as events:
        client = await make_proxy(upstream.url, config_file=cfg(tmp_path, "rate_limit: {}\n"))
        limiter = await learned_or_fallback(client, events)
    print(limiter.learned, limiter.levels(), limiter.cost_of("POST", V2))
    assert limiter.learned is None, "Infinity / 1e999 / a 0.5 cost (int() -> 0) adopted"


# --- batch billing ------------------------------------------------------------------------
BIG = {**LIMITS, "write": {"bucket_capacity": 1000, "refill_rate": 1}}
ORDERS20 = [{"ticker": "T", "side": "bid", "price": "0.5000", "count": "1.00"}] * 20


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"{V2}/batched", {"orders": ORDERS20}),  # control: billed 20
        (f"{V2}/%62atched", {"orders": ORDERS20}),
        (
            f"{V2}/batched",
            {"Orders": ORDERS20},
        ),  # Go's encoding/json matches keys case-insensitively
        (f"{V2}/batched", {"orders": None, "ids": ["a"] * 20}),
    ],
)
async def test_batch_billed_per_order(make_upstream, make_proxy, tmp_path, path, body) -> None:
    upstream = await make_upstream(hostile(J(BIG), J({"default_cost": 10, "endpoint_costs": []})))
    with capture_logs() as events:
        client = await make_proxy(upstream.url, config_file=cfg(tmp_path, "rate_limit: {}\n"))
        limiter = await learned_or_fallback(client, events)
    before = limiter.levels()["write"]
    method = "DELETE" if "ids" in body else "POST"
    reply = await client.request(method, path, data=J(body))
    spent = before - limiter.levels()["write"]
    print(path, list(body), reply.status, spent)
    assert spent >= 20 * 10 - 1, f"billed {spent} for 20 orders"


async def test_v1_batch_cancel_orders_null_ids_many(make_upstream, make_proxy, tmp_path) -> None:
    upstream = await make_upstream(hostile(J(BIG), J({"default_cost": 10, "endpoint_costs": []})))
    with capture_logs() as events:
        client = await make_proxy(
            upstream.url,
            config_file=cfg(tmp_path, "rate_limit: {}\ncompat: {v1_orders: translate}\n"),
        )
        limiter = await learned_or_fallback(client, events)
    before = limiter.levels()["write"]
    reply = await client.delete(f"{V1}/batched", data=J({"orders": None, "ids": ["a"] * 10}))
    spent = before - limiter.levels()["write"]
    sent = [json.loads(s.body) for s in upstream.seen if s.method == "DELETE"]
    print(reply.status, spent, [len(s["orders"]) for s in sent])
    assert spent >= 10 * 10 - 1, f"billed {spent} for the {len(sent[0]['orders'])} cancels sent"


async def _raw(port: int, method: str, target: str, body: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return answer


@pytest.mark.parametrize(
    "tail", ["batched", "%62atched", "%62%61%74%63%68%65%64", "batched;x", "batched%3B"]
)
async def test_batch_spellings_billed_per_order_raw(
    make_upstream, make_proxy, tmp_path, tail
) -> None:
    upstream = await make_upstream(hostile(J(BIG), J({"default_cost": 10, "endpoint_costs": []})))
    with capture_logs() as events:
        client = await make_proxy(upstream.url, config_file=cfg(tmp_path, "rate_limit: {}\n"))
        limiter = await learned_or_fallback(client, events)
    before = limiter.levels()["write"]
    answer = await _raw(client.server.port, "POST", f"{V2}/{tail}", J({"orders": ORDERS20}))
    spent = before - limiter.levels()["write"]
    print(
        tail,
        answer.split(b"\r\n", 1)[0],
        spent,
        [s.raw_path for s in upstream.seen if s.method == "POST"],
    )
    assert spent >= 199 or not any(s.method == "POST" for s in upstream.seen), f"billed {spent}"
