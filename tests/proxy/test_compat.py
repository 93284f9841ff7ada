"""Kalshi's removed V1 order writes: refused by default, never forwarded; reads pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.clients import raw_request

pytestmark = pytest.mark.usefixtures("clean_env")

V1 = "/trade-api/v2/portfolio/orders"
V2 = "/trade-api/v2/portfolio/events/orders"
REMOVED = [
    ("POST", "", b'{"ticker":"T","side":"yes","action":"buy","count":1,"yes_price":5}'),
    ("DELETE", "/o1", b""),
    ("POST", "/o1/amend", b"{}"),
    ("POST", "/o1/decrease", b'{"reduce_by":1}'),
    ("POST", "/batched", b'{"orders":[]}'),
    ("DELETE", "/batched", b'{"ids":["o1"]}'),
]


@pytest.mark.parametrize(("method", "rest", "body"), REMOVED)
async def test_a_removed_v1_write_is_410_naming_its_v2_route_and_never_forwarded(
    make_upstream, make_proxy, method: str, rest: str, body: bytes
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    reply = await client.request(method, V1 + rest + "?subaccount=2", data=body)
    assert reply.status == 410
    error = (await reply.json())["error"]
    assert error["code"] == "proxy_v1_order_endpoint_removed"
    assert f"{method} {V2}{rest}" in error["message"]
    assert "subaccount" not in error["message"]  # the query never appears in an answer
    assert upstream.seen == []


async def test_no_spelling_of_a_v1_write_gets_past_the_refusal(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    for target in (f"{V1}/", "/trade-api/v2/portfolio/%6Frders", "/trade-api/v2/portfolio//orders"):
        reply = await raw_request(
            client.port,
            f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
            "Connection: close\r\n\r\n{}",
        )
        assert reply.split(b" ", 2)[1] in (b"400", b"410"), (target, reply[:60])
    assert upstream.seen == []


@pytest.mark.parametrize("path", [V1, f"{V1}/o1", f"{V1}?status=resting"])
async def test_v1_order_reads_are_forwarded(make_upstream, make_proxy, path: str) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    assert (await client.get(path)).status == 200
    assert [s.raw_path for s in upstream.seen] == [path]


async def test_the_token_is_checked_before_the_refusal(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    upstream = await make_upstream()
    config = tmp_path / "c.yaml"
    config.write_text("access: {tokens: [{name: bot, token: bot-token-0123456789abcdef}]}\n")
    client = await make_proxy(upstream.url, config_file=config)
    assert (await client.post(V1, data=b"{}")).status == 401
