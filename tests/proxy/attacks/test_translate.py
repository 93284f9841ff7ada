"""Translate mode attacks."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from tests.proxy.attacks.helpers import V1, cfg, create, kalshi_v2

pytestmark = pytest.mark.usefixtures("clean_env")
TRANSLATE = "compat: {v1_orders: translate}\n"


async def setup(make_upstream, make_proxy, tmp_path, handler=None, extra=""):
    upstream = await make_upstream(handler or kalshi_v2())
    client = await make_proxy(upstream.url, config_file=cfg(tmp_path, TRANSLATE + extra))
    return upstream, client


def writes(upstream):
    return [s for s in upstream.seen if s.method != "GET"]


# --- order ids that decode to characters sorting before '%' ------------------------------
@pytest.mark.parametrize(
    "oid", ["VICTIM%23junk", "batched%23x", "abc%20def", "abc%0D%0AX-Evil:%201"]
)
async def test_cancel_id_decoded_into_v2_path(make_upstream, make_proxy, tmp_path, oid) -> None:
    upstream, client = await setup(make_upstream, make_proxy, tmp_path)
    reply = await client.delete(f"{V1}/{oid}")
    text = await reply.text()
    seen = [(s.method, s.raw_path, s.auth_error) for s in upstream.seen]
    print(reply.status, text[:300], seen)
    # An encoded order id is not translated (a decoded form could name another order or
    # route): 400, and nothing is sent.
    assert reply.status in (400, 404)  # 404: aiohttp's router takes no CR/LF in a path
    assert seen == []


# --- failures after the write was placed -------------------------------------------------
async def test_read_back_fails_after_order_placed(make_upstream, make_proxy, tmp_path) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        request.transport.close()  # the read-back gets no answer
        raise web.HTTPInternalServerError

    upstream, client = await setup(make_upstream, make_proxy, tmp_path, kalshi_v2(read_back=drop))
    reply = await client.post(V1, json=create())
    print(reply.status, await reply.text())
    assert len(writes(upstream)) == 1  # the order was placed
    assert reply.status < 300, "client told the placed order failed; it will retry -> duplicate"


async def test_write_answer_not_json(make_upstream, make_proxy, tmp_path) -> None:
    upstream, client = await setup(
        make_upstream, make_proxy, tmp_path, kalshi_v2(write_body=b"<html>ok</html>")
    )
    reply = await client.post(V1, json=create())
    print(reply.status, await reply.text())
    assert len(writes(upstream)) == 1
    assert reply.status < 300


async def test_cancel_reduced_by_not_numeric(make_upstream, make_proxy, tmp_path) -> None:
    upstream, client = await setup(
        make_upstream,
        make_proxy,
        tmp_path,
        kalshi_v2(write_status=200, write_body=b'{"order_id":"x","reduced_by":"n/a"}'),
    )
    reply = await client.delete(f"{V1}/x")
    print(reply.status, await reply.text())
    assert len(writes(upstream)) == 1
    assert reply.status < 300


async def test_batch_answer_items_not_objects(make_upstream, make_proxy, tmp_path) -> None:
    upstream, client = await setup(
        make_upstream,
        make_proxy,
        tmp_path,
        kalshi_v2(write_body=b'{"orders":["o1"]}'),
    )
    reply = await client.post(f"{V1}/batched", json={"orders": [create()]})
    print(reply.status, await reply.text())
    assert len(writes(upstream)) == 1
    assert reply.status < 300


# --- economics ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("over", "field", "bad"),
    [
        ({"yes_price": None, "yes_price_dollars": "0.99999"}, "price", "1.0000"),
        ({"yes_price": None, "yes_price_dollars": "0.00004"}, "price", "0.0000"),
        ({"yes_price": 99.999}, "price", "1.0000"),
        ({"yes_price": None, "yes_price_dollars": "0.55555"}, "price", "0.5556"),
        ({"count": None, "count_fp": "0.001"}, "count", "0.00"),
        ({"count": None, "count_fp": "1.999"}, "count", "2.00"),
    ],
)
async def test_rounded_prices_and_counts(
    make_upstream, make_proxy, tmp_path, over, field, bad
) -> None:
    upstream, client = await setup(make_upstream, make_proxy, tmp_path)
    reply = await client.post(V1, json=create(**over))
    sent = [json.loads(s.body) for s in writes(upstream)]
    print(reply.status, sent)
    assert not sent or sent[0][field] != bad, f"sent {field}={bad} for {over}"


@pytest.mark.parametrize("body", [{"reduce_by": -5}, {"reduce_by": 0}, {"reduce_to_fp": "-1"}])
async def test_decrease_non_positive(make_upstream, make_proxy, tmp_path, body) -> None:
    upstream, client = await setup(make_upstream, make_proxy, tmp_path)
    reply = await client.post(f"{V1}/x/decrease", json=body)
    sent = [json.loads(s.body) for s in writes(upstream)]
    print(reply.status, sent)
    assert sent == [], f"sent {sent}"


async def test_batch_cancel_ids_not_strings(make_upstream, make_proxy, tmp_path) -> None:
    upstream, client = await setup(make_upstream, make_proxy, tmp_path)
    reply = await client.delete(f"{V1}/batched", json={"ids": [None, {"a": 1}, ["x"], 1.5]})
    sent = [json.loads(s.body) for s in writes(upstream)]
    print(reply.status, sent)
    assert sent == [], f"sent {sent}"


# --- the read-backs: fan-out, not billed -------------------------------------------------
async def test_batch_read_back_fan_out(make_upstream, make_proxy, tmp_path) -> None:
    upstream, client = await setup(make_upstream, make_proxy, tmp_path)
    n = 200
    reply = await client.post(f"{V1}/batched", json={"orders": [create() for _ in range(n)]})
    gets = [s for s in upstream.seen if s.method == "GET"]
    print(reply.status, len(writes(upstream)), len(gets))
    assert len(gets) <= 1, f"one client call made {len(gets)} upstream reads"


async def test_read_backs_not_billed(make_upstream, make_proxy, tmp_path) -> None:
    from signing_proxy.proxy.app import LIVE

    # A slow read bucket of 10 tokens: each read-back costs 2 (GET /portfolio/orders/:id),
    # so at most 5 of 20 are sent; the others show the order by its id, without waiting.
    text = (
        "rate_limit: {source: config, read_per_second: 0.001, read_capacity: 10, max_wait: 0,"
        " write_per_second: 1000, write_capacity: 1000}\n"
    )
    upstream, client = await setup(make_upstream, make_proxy, tmp_path, extra=text)
    reply = await client.post(f"{V1}/batched", json={"orders": [create() for _ in range(20)]})
    gets = [s for s in upstream.seen if s.method == "GET"]
    assert reply.status == 201 and len(gets) == 5
    assert client.app[LIVE].current.limiter.levels()["read"] < 0.1


# --- crashes on hostile bodies (nothing sent; 500 instead of 400) -------------------------
async def test_deeply_nested_body(make_upstream, make_proxy, tmp_path) -> None:
    upstream, client = await setup(make_upstream, make_proxy, tmp_path)
    deep = b"[" * 100_000 + b"]" * 100_000
    reply = await client.post(V1, data=deep)
    print(reply.status, (await reply.text())[:200])
    assert upstream.seen == []
    assert reply.status == 400


async def test_huge_count(make_upstream, make_proxy, tmp_path) -> None:
    upstream, client = await setup(make_upstream, make_proxy, tmp_path)
    reply = await client.post(V1, json=create(count=None, count_fp="1e40"))
    print(reply.status, (await reply.text())[:200])
    assert upstream.seen == []
    assert reply.status == 400
