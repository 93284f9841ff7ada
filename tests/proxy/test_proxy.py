"""Forwarding through a real proxy to a real upstream that verifies every signature."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from tests.support.clients import raw_request
from tests.support.keys import KEY_ID
from tests.support.upstreams import echo

pytestmark = pytest.mark.usefixtures("clean_env")


async def test_get_is_signed_and_verified(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    resp = await client.get("/trade-api/v2/portfolio/balance")
    assert resp.status == 200
    seen = upstream.seen[-1]
    assert seen.auth_error is None
    assert seen.headers["KALSHI-ACCESS-KEY"] == KEY_ID


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
async def test_every_method_is_signed(make_upstream, make_proxy, method: str) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    resp = await client.request(method, "/trade-api/v2/portfolio/events/orders/abc")
    assert resp.status == 200
    assert upstream.seen[-1].method == method
    assert upstream.seen[-1].auth_error is None


async def test_query_is_forwarded_but_not_signed(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    raw = "/trade-api/v2/markets?limit=5&status=open&cursor=a%2Fb%3D"
    reply = await raw_request(
        client.port, f"GET {raw} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 200")
    # The upstream verified the signature over the path alone, and got the query unchanged.
    assert upstream.seen[-1].auth_error is None
    assert upstream.seen[-1].raw_path == "/trade-api/v2/markets?limit=5&status=open&cursor=a%2Fb%3D"


async def test_encoded_path_goes_upstream_byte_for_byte_and_is_signed_as_sent(
    make_upstream, make_proxy
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    raw = "/trade-api/v2/series/A%2FB%20C/markets?tickers=X%2CY&q=%7E"
    reply = await raw_request(
        client.port, f"GET {raw} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 200")
    assert upstream.seen[-1].raw_path == raw
    assert upstream.seen[-1].auth_error is None


async def test_client_kalshi_headers_are_replaced(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    resp = await client.get(
        "/trade-api/v2/portfolio/balance",
        headers={
            "KALSHI-ACCESS-KEY": "someone-else",
            "KALSHI-ACCESS-SIGNATURE": "Zm9v",
            "KALSHI-ACCESS-TIMESTAMP": "1",
        },
    )
    assert resp.status == 200
    seen = upstream.seen[-1]
    assert seen.auth_error is None
    assert seen.headers["KALSHI-ACCESS-KEY"] == KEY_ID
    assert seen.headers["KALSHI-ACCESS-SIGNATURE"] != "Zm9v"


async def test_client_addresses_and_hop_headers_are_not_forwarded(
    make_upstream, make_proxy
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    await client.get(
        "/trade-api/v2/portfolio/balance",
        headers={
            "X-Forwarded-For": "192.0.2.1",
            "X-Real-IP": "192.0.2.1",
            "Forwarded": "for=192.0.2.1",
            "Authorization": "Bearer not-for-kalshi-123456",
            "Connection": "X-Secret-Hop",
            "X-Secret-Hop": "1",
            "X-App": "kept",
        },
    )
    forwarded = {k.lower() for k in upstream.seen[-1].headers}
    assert not forwarded & {
        "x-forwarded-for",
        "x-real-ip",
        "forwarded",
        "authorization",
        "x-secret-hop",
    }
    assert upstream.seen[-1].headers["X-App"] == "kept"


async def test_user_agent_added_only_when_missing(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    await client.get("/trade-api/v2/x", headers={"User-Agent": "my-bot/1"}, skip_auto_headers=())
    assert upstream.seen[-1].headers["User-Agent"] == "my-bot/1"
    await client.get("/trade-api/v2/x", skip_auto_headers=("User-Agent",))
    assert upstream.seen[-1].headers["User-Agent"].startswith("signing-proxy/")


async def test_post_body_with_length_arrives_exactly(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    body = json.dumps({"ticker": "KX-1", "count": "1.00", "price": "0.0100"}).encode()
    resp = await client.post(
        "/trade-api/v2/portfolio/events/orders",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 200
    seen = upstream.seen[-1]
    assert seen.body == body
    assert seen.headers["Content-Length"] == str(len(body))
    assert seen.headers["Content-Type"] == "application/json"


async def test_chunked_body_arrives_exactly(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)

    async def parts():
        for i in range(5):
            yield f'{{"part": {i}}}\n'.encode()

    resp = await client.post("/trade-api/v2/portfolio/events/orders/batched", data=parts())
    assert resp.status == 200
    assert upstream.seen[-1].body == b"".join(f'{{"part": {i}}}\n'.encode() for i in range(5))


async def test_body_over_limit_is_413_and_never_forwarded(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    upstream = await make_upstream()
    config = tmp_path / "c.yaml"
    config.write_text("access: {max_body_bytes: 100}\n")
    client = await make_proxy(upstream.url, config_file=config)
    resp = await client.post("/trade-api/v2/portfolio/events/orders", data=b"x" * 101)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "proxy_body_too_large"

    async def parts():
        for _ in range(3):
            yield b"y" * 50

    resp = await client.post("/trade-api/v2/portfolio/events/orders", data=parts())
    assert resp.status == 413
    assert upstream.seen == []
    ok = await client.post("/trade-api/v2/portfolio/events/orders", data=b"z" * 100)
    assert ok.status == 200


async def test_upstream_errors_pass_through_unchanged(make_upstream, make_proxy) -> None:
    kalshi_409 = (
        b'{"error":{"code":"order_already_exists","message":"order already exists",'
        b'"service":"exchange"}}'
    )

    async def conflict(request: web.Request) -> web.Response:
        resp = web.Response(status=409, body=kalshi_409, content_type="application/json")
        resp.headers.add("Set-Cookie", "a=1")
        resp.headers.add("Set-Cookie", "b=2")
        resp.headers["X-Kalshi-Trace"] = "t-1"
        return resp

    upstream = await make_upstream(conflict)
    client = await make_proxy(upstream.url)
    resp = await client.post("/trade-api/v2/portfolio/events/orders", json={})
    assert resp.status == 409
    assert await resp.read() == kalshi_409
    assert resp.headers.getall("Set-Cookie") == ["a=1", "b=2"]
    assert resp.headers["X-Kalshi-Trace"] == "t-1"
    assert resp.headers["Content-Type"] == "application/json"


async def test_upstream_401_body_passes_through(make_upstream, make_proxy, tmp_path: Path) -> None:
    # A proxy whose key the upstream does not know: Kalshi's own 401 reaches the client.
    upstream = await make_upstream()
    client = await make_proxy(
        upstream.url, KALSHI_API_KEY_ID="00000000-0000-0000-0000-000000000000"
    )
    resp = await client.get("/trade-api/v2/portfolio/balance")
    assert resp.status == 401
    assert (await resp.json())["error"]["details"] == "NOT_FOUND"


async def test_gzip_passes_through_undecoded(make_upstream, make_proxy) -> None:
    payload = gzip.compress(b'{"markets": []}')

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    upstream = await make_upstream(gzipped)
    client = await make_proxy(upstream.url)
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        resp = await session.get(
            client.make_url("/trade-api/v2/markets"), headers={"Accept-Encoding": "gzip"}
        )
        assert resp.headers["Content-Encoding"] == "gzip"
        assert await resp.read() == payload
    assert upstream.seen[-1].headers["Accept-Encoding"] == "gzip"


async def test_proxy_does_not_ask_for_compression_itself(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    await client.get("/trade-api/v2/x", skip_auto_headers=("Accept-Encoding",))
    assert "Accept-Encoding" not in upstream.seen[-1].headers


async def test_upstream_cookies_are_not_shared_between_clients(make_upstream, make_proxy) -> None:
    async def set_cookie(request: web.Request) -> web.Response:
        resp = web.json_response({"cookie": request.headers.get("Cookie")})
        resp.set_cookie("session", "for-client-a")
        return resp

    upstream = await make_upstream(set_cookie)
    client = await make_proxy(upstream.url)
    first = await client.get("/trade-api/v2/x")
    assert "session=for-client-a" in first.headers["Set-Cookie"]
    async with aiohttp.ClientSession() as other:
        second = await other.get(client.make_url("/trade-api/v2/x"))
        assert (await second.json())["cookie"] is None


async def test_head_passes_status_and_headers(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    resp = await client.head("/trade-api/v2/markets")
    assert resp.status == 200
    assert await resp.read() == b""
    assert upstream.seen[-1].method == "HEAD"


async def test_large_response_streams_intact(make_upstream, make_proxy) -> None:
    size = 8 * 1024 * 1024
    block = bytes(range(256)) * 256

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        for _ in range(size // len(block)):
            await resp.write(block)
        await resp.write_eof()
        return resp

    upstream = await make_upstream(big)
    client = await make_proxy(upstream.url)
    resp = await client.get("/trade-api/v2/big")
    received = hashlib.sha256()
    async for chunk in resp.content.iter_chunked(1 << 16):
        received.update(chunk)
    assert received.hexdigest() == hashlib.sha256(block * (size // len(block))).hexdigest()


@pytest.mark.parametrize(
    "target",
    ["/", "/favicon.ico", "/trade-api/v1/markets", "/admin", "/trade-api/v2"],
)
async def test_outside_namespace_is_404_and_not_forwarded(
    make_upstream, make_proxy, target: str
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    resp = await client.get(target)
    assert resp.status == 404
    body = await resp.json()
    assert body["error"]["code"] == "proxy_not_found"
    assert body["error"]["service"] == "signing-proxy"
    assert upstream.seen == []


@pytest.mark.parametrize(
    "raw",
    [
        "/trade-api/v2/../v1/markets",
        "/trade-api/v2/%2e%2e/v1/markets",
        "/trade-api/v2/..%2Fv1/markets",
        "/trade-api/v2/%2E%2E%2f..%2fhealthz",
    ],
)
async def test_dot_segments_are_refused_on_the_wire(make_upstream, make_proxy, raw: str) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    reply = await raw_request(
        client.port, f"GET {raw} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 400")
    assert b'"proxy_invalid_path"' in reply
    assert upstream.seen == []


async def test_unreachable_upstream_is_502(make_proxy) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = await make_proxy(f"http://127.0.0.1:{port}")
    resp = await client.get("/trade-api/v2/portfolio/balance")
    assert resp.status == 502
    body = await resp.json()
    assert body["error"]["code"] == "proxy_upstream_unreachable"
    assert body["error"]["service"] == "signing-proxy"


async def test_slow_upstream_is_504_within_timeout(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    upstream = await make_upstream(slow)
    config = tmp_path / "c.yaml"
    config.write_text("upstream: {timeout: 0.3}\n")
    client = await make_proxy(upstream.url, config_file=config)
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await client.get("/trade-api/v2/markets")
    assert resp.status == 504
    assert (await resp.json())["error"]["code"] == "proxy_upstream_timeout"
    assert loop.time() - started < 2


async def test_upstream_dying_mid_body_truncates_the_client(make_upstream, make_proxy) -> None:
    async def dies(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"x" * 1000)
        assert request.transport is not None
        request.transport.abort()
        return resp

    upstream = await make_upstream(dies)
    client = await make_proxy(upstream.url)
    resp = await client.get("/trade-api/v2/markets")
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    # The proxy keeps serving.
    upstream2 = await make_upstream(echo)
    client2 = await make_proxy(upstream2.url)
    assert (await client2.get("/trade-api/v2/x")).status == 200


async def test_request_id_is_returned_and_kept(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    resp = await client.get("/trade-api/v2/x", headers={"X-Request-ID": "bot-42.a"})
    assert resp.headers["X-Request-ID"] == "bot-42.a"
    generated = await client.get("/trade-api/v2/x", headers={"X-Request-ID": "bad id\u00e9"})
    assert len(generated.headers["X-Request-ID"]) == 32
    not_found = await client.get("/nowhere")
    assert not_found.headers["X-Request-ID"]


async def test_healthz(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
    assert upstream.seen == []


async def test_one_log_event_per_call_with_the_contract_fields(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    with capture_logs() as events:
        await client.post("/trade-api/v2/portfolio/events/orders?x=1", data=b"0123456789")
    calls = [e for e in events if e["event"] == "request"]
    assert len(calls) == 1
    event = calls[0]
    assert event["method"] == "POST"
    assert event["path"] == "/trade-api/v2/portfolio/events/orders"
    assert event["query"] is True
    assert event["status"] == 200
    assert event["bytes_in"] == 10
    assert event["bytes_out"] > 0
    assert event["total_ms"] >= event["upstream_ms"] >= 0
    assert event["client"] == "127.0.0.1"
    assert len(event["request_id"]) == 32
    signature = upstream.seen[-1].headers["KALSHI-ACCESS-SIGNATURE"]
    assert signature not in repr(events)
    assert "0123456789" not in repr(events)


async def test_proxy_error_is_logged_with_its_code(make_proxy) -> None:
    client = await make_proxy("http://127.0.0.1:9")
    with capture_logs() as events:
        await client.get("/trade-api/v2/x")
    (event,) = [e for e in events if e["event"] == "request"]
    assert event["status"] == 502
    # The code, then the reason in words.
    assert event["error"] == "proxy_upstream_unreachable: connection refused by 127.0.0.1:9"
    assert event["log_level"] == "warning"


async def test_one_keep_alive_session_is_reused(make_upstream, make_proxy) -> None:
    peers: set[tuple[str, int]] = set()

    async def who(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername"))
        return web.json_response({})

    upstream = await make_upstream(who)
    client = await make_proxy(upstream.url)
    for _ in range(10):
        assert (await client.get("/trade-api/v2/x")).status == 200
    assert len(peers) == 1


async def test_client_leaving_mid_answer_is_logged_as_such(
    make_upstream, make_proxy, caplog: pytest.LogCaptureFixture
) -> None:
    async def slow_stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(50):
            await resp.write(b"x" * 65536)
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    upstream = await make_upstream(slow_stream)
    client = await make_proxy(upstream.url)
    with capture_logs() as events:
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(b"GET /trade-api/v2/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await reader.readexactly(1000)
        writer.transport.abort()
        async with asyncio.timeout(5):
            while not [e for e in events if e["event"] == "request"]:
                await asyncio.sleep(0.02)
    (event,) = [e for e in events if e["event"] == "request"]
    # 499 when aiohttp cancelled the handler, 200 when the write failed first.
    assert event["status"] in (200, 499), repr(event)
    assert event["error"] == "client_disconnected"
    assert event["log_level"] == "info"
    assert not [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert (await client.get("/trade-api/v2/x")).status == 200


async def test_small_answer_headers_pass_exactly(make_upstream, make_proxy) -> None:
    async def bare(request: web.Request) -> web.Response:
        # No Content-Type at all: the proxy must not invent one.
        resp = web.Response()
        resp.body = b'{"a":1}'
        return resp

    upstream = await make_upstream(bare, verify=False)
    client = await make_proxy(upstream.url)
    resp = await client.get("/trade-api/v2/x")
    assert await resp.read() == b'{"a":1}'
    async with aiohttp.ClientSession() as session:
        direct = await session.get(f"{upstream.url}/trade-api/v2/x")
    # Everything but the per-hop Date and the proxy's own X-Request-ID is identical.
    proxied = {k: v for k, v in resp.headers.items() if k not in ("Date", "X-Request-ID")}
    assert proxied == {k: v for k, v in direct.headers.items() if k != "Date"}


async def test_a_compressed_request_body_goes_upstream_byte_for_byte(make_proxy) -> None:
    received: list[tuple[str | None, bytes]] = []

    async def raw_body(request: web.Request) -> web.Response:
        received.append((request.headers.get("Content-Encoding"), await request.read()))
        return web.json_response({"ok": True})

    # An upstream that does not inflate either, so it sees the bytes as they travelled.
    app = web.Application(handler_args={"auto_decompress": False})
    app.router.add_route("*", "/{tail:.*}", raw_body)
    upstream = TestServer(app)
    await upstream.start_server()
    try:
        client = await make_proxy(str(upstream.make_url("")).rstrip("/"))
        body = gzip.compress(b'{"ticker":"T","count":"1","pad":"' + b"a" * 5000 + b'"}')
        resp = await client.post(
            "/trade-api/v2/portfolio/events/orders",
            data=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert resp.status == 200
        assert received == [("gzip", body)]
    finally:
        await upstream.close()
