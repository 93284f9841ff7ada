"""Attacks on a real `signing-proxy run`, with its real log processors: floods bounded in
count and time, malformed requests that carry secrets, and shutdowns that must not hang."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.test_utils import TestServer

from signing_proxy.ops.logging import exception_summary
from tests.support.keys import KEY_ID, KeyMaterial, write_key
from tests.support.processes import Proc, base_env, start_cli
from tests.support.upstreams import accepting_upstream

# Every CLI process a test starts is killed if the test leaves it running.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leftover_processes")]

TOKEN = "inbound-token-0123456789abcdef"


@pytest.fixture
async def upstream() -> AsyncIterator[TestServer]:
    """Answers at once, except /trade-api/v2/slow, which never answers."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await accepting_upstream(request)
        await request.read()
        if request.path == "/trade-api/v2/slow":
            await asyncio.sleep(3600)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


async def start_proxy(
    tmp_path: Path, key_material: KeyMaterial, upstream: TestServer, extra: str = ""
) -> tuple[Proc, int]:
    key = write_key(tmp_path, key_material.pkcs8, name="attack-key.pem")
    config = tmp_path / "attack.yaml"
    config.write_text(
        f"credentials:\n  api_key_id: {KEY_ID}\n  private_key_file: {key}\n"
        f"upstream:\n  rest_url: {str(upstream.make_url('')).rstrip('/')}\n"
        f"  probe_interval: 0\nlisten:\n  port: 0\n{extra}"
    )
    env = base_env(SIGNING_PROXY_LOG_LEVEL="debug", SIGNING_PROXY_LOG_FORMAT="json")
    proc = await start_cli("run", "--config", str(config), env=env)
    port = int((await proc.wait_for(r'"listen": "http://[^"]+:(\d+)"')).group(1))
    return proc, port


async def send(port: int, payload: bytes, timeout: float = 5) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read(65536)
    except (ConnectionResetError, BrokenPipeError):
        return b""
    finally:
        writer.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


GET = b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def test_parse_errors_never_log_the_bytes_that_caused_them(
    tmp_path: Path, key_material: KeyMaterial, upstream: TestServer
) -> None:
    proc, port = await start_proxy(
        tmp_path,
        key_material,
        upstream,
        f"access:\n  tokens:\n    - {{name: bot, token: {TOKEN}}}\n",
    )
    order = b'{"ticker":"SECRET-ORDER-TICKER","count":"1"}'
    attacks = [
        # A malformed chunked body: the chunk size line is garbage after the order JSON.
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\nZZ-not-a-size %s\r\n\r\n"
        % (len(order), order, order),
        # A query with bytes the parser refuses.
        b"GET /trade-api/v2/markets?q=SECRET-QUERY-VALUE\x7f HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        # A near-miss of the real token, with a control character.
        b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\x01\r\n\r\n",
        b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"X-Proxy-Token: SECRET-NEAR-MISS-TOKEN\x00\r\n\r\n",
        # An absolute-form target with credentials in it.
        b"GET http://user:SECRET-USERINFO@127.0.0.1/trade-api/v2/markets HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n\r\n",
    ]
    for attack in attacks:
        answer = await send(port, attack)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), answer[:200]
        assert json.loads(body)["error"]["code"].startswith("proxy_")
        assert b"SECRET" not in answer and TOKEN.encode() not in answer
    assert (await send(port, GET)).startswith(b"HTTP/1.1 401")  # still serving
    code, out, err = await proc.stop()
    assert code == 0
    everything = out + err
    assert '"bad_request"' in everything
    secrets = (
        "SECRET-ORDER-TICKER",
        "SECRET-QUERY-VALUE",
        TOKEN,
        "SECRET-NEAR-MISS",
        "SECRET-USERINFO",
    )
    for secret in secrets:
        assert secret not in everything
    assert "Traceback" not in everything


async def test_a_flood_of_unfinished_heads_keeps_memory_bounded(
    tmp_path: Path, key_material: KeyMaterial, upstream: TestServer
) -> None:
    proc, port = await start_proxy(tmp_path, key_material, upstream)
    pid = proc.process.pid
    assert (await send(port, GET)).startswith(b"HTTP/1.1 200")
    # One head just over the bound, sent whole: the answer is a 431 in the proxy's shape.
    big = GET[:-2] + b"".join(b"X-Fill-%d: %s\r\n" % (i, b"a" * 6600) for i in range(5)) + b"\r\n"
    head, _, body = (await send(port, big)).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431")
    assert json.loads(body)["error"]["code"] == "proxy_header_too_large"
    before = rss_kib(pid)
    # 400 connections, each sending up to 100 headers of 8 KiB and never finishing the head:
    # before the bound this took RSS from about 53 MiB to 665 MiB, and kept it.
    header = b"X-Fill-%03d: " + b"a" * 8000 + b"\r\n"
    answers: list[bytes] = []

    async def flood() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for i in range(100):
                writer.write(header % i)
                await writer.drain()
            answers.append(await asyncio.wait_for(reader.read(4096), 5))
        except (ConnectionResetError, BrokenPipeError):
            answers.append(b"reset")
        finally:
            writer.close()

    async with asyncio.timeout(60):
        for _ in range(4):
            await asyncio.gather(*(flood() for _ in range(100)))
            assert (await send(port, GET)).startswith(b"HTTP/1.1 200")  # served throughout
    growth_mib = (rss_kib(pid) - before) / 1024
    assert growth_mib < 60, f"RSS grew by {growth_mib:.0f} MiB"
    # Each is refused: a 431, or a reset when the proxy closed while the flood still wrote.
    assert all(a.startswith(b"HTTP/1.1 431") or a == b"reset" for a in answers)
    code, out, err = await proc.stop()
    assert code == 0
    assert '"request_head_too_large"' in out
    assert "Task exception was never retrieved" not in out + err


async def test_connections_past_the_limit_are_refused_then_served_again(
    tmp_path: Path, key_material: KeyMaterial, upstream: TestServer
) -> None:
    proc, port = await start_proxy(
        tmp_path, key_material, upstream, "limits:\n  max_connections: 8\n"
    )
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
    await asyncio.sleep(0.2)
    answer = await send(port, GET)
    assert answer.startswith(b"HTTP/1.1 503")
    assert b"proxy_too_many_connections" in answer
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.3)
    assert (await send(port, GET)).startswith(b"HTTP/1.1 200")
    code, _, _ = await proc.stop()
    assert code == 0


async def hung_call(port: int) -> asyncio.Task[bytes]:
    task = asyncio.create_task(
        send(port, b"GET /trade-api/v2/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", timeout=60)
    )
    await asyncio.sleep(0.5)  # it has reached the silent upstream
    return task


async def test_shutdown_timeout_is_a_hard_cap(
    tmp_path: Path, key_material: KeyMaterial, upstream: TestServer
) -> None:
    proc, port = await start_proxy(tmp_path, key_material, upstream, "shutdown_timeout: 2\n")
    call = await hung_call(port)
    started = time.monotonic()
    code, out, err = await proc.stop(signal.SIGTERM)
    elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 2 + 2.5, f"took {elapsed:.1f} s for a 2 s shutdown_timeout"
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    cut = [
        e for e in events if e.get("event") == "request" and e.get("path") == "/trade-api/v2/slow"
    ]
    assert [(e["status"], e["error"]) for e in cut] == [(503, "proxy_cut_by_shutdown")]
    stopped = [e for e in events if e.get("event") == "stopped"]
    assert stopped and stopped[0]["forced"] is True
    assert "Traceback" not in err
    call.cancel()


async def test_a_second_signal_stops_at_once(
    tmp_path: Path, key_material: KeyMaterial, upstream: TestServer
) -> None:
    proc, port = await start_proxy(tmp_path, key_material, upstream, "shutdown_timeout: 60\n")
    call = await hung_call(port)
    process = proc.process
    process.send_signal(signal.SIGTERM)
    await proc.wait_for(r'"event": "stopping"')
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    code, out, err = await proc.stop(None)
    assert time.monotonic() - started < 3
    assert code == 0
    assert "second signal" in out
    assert "Traceback" not in err
    call.cancel()


def test_library_exception_text_never_reaches_an_event() -> None:
    # aiohttp's parser errors quote the raw bytes they refused; the processor keeps the type.
    try:
        raise BadHttpMessage(f"Invalid header value char: b'Bearer {TOKEN}\\x01'")
    except BadHttpMessage as exc:
        event = exception_summary(None, "error", {"event": "x", "exc_info": exc})
    assert event == {"event": "x", "exception": "BadHttpMessage"}


async def test_a_token_sent_where_it_does_not_belong_is_redacted(
    tmp_path: Path, key_material: KeyMaterial, upstream: TestServer
) -> None:
    # A client that sends its token as its request id: the id is logged, the token is not.
    proc, port = await start_proxy(
        tmp_path,
        key_material,
        upstream,
        f"access:\n  tokens:\n    - {{name: bot, token: {TOKEN}}}\n",
    )
    answer = await send(
        port,
        b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"X-Request-ID: " + TOKEN.encode() + b"\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 401")
    code, out, err = await proc.stop()
    assert code == 0
    assert '"request_id": "[REDACTED]"' in out
    assert TOKEN not in out + err


async def test_the_head_bound_counts_heads_only(
    tmp_path: Path, key_material: KeyMaterial, upstream: TestServer
) -> None:
    proc, port = await start_proxy(
        tmp_path, key_material, upstream, "limits:\n  max_header_bytes: 4096\n"
    )
    # A body larger than the head bound, in the same read as its head: served.
    body = b'{"pad":"' + b"a" * 20000 + b'"}'
    post = (
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert (await send(port, post)).startswith(b"HTTP/1.1 200")
    # The same, with the blank line that ends the head split across two reads.
    split = post.index(b"\r\n\r\n") + 3
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post[:split])
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.write(post[split:])
    async with asyncio.timeout(5):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    writer.close()
    # A bodiless request and an oversized head still arriving, in one write: the second
    # is refused without waiting for its end.
    unfinished = GET[:-2] + b"X-Fill: " + b"a" * 6000
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(GET + unfinished)
    async with asyncio.timeout(5):
        answers = await reader.read()  # until the proxy closes the connection
    writer.close()
    assert answers.count(b"HTTP/1.1 200") <= 1  # the oversized head is never served
    code, out, err = await proc.stop()
    assert code == 0
    assert out.count('"request_head_too_large"') == 1
    assert "Task exception was never retrieved" not in out + err


async def test_websocket_subprotocols_a_client_offers_are_never_logged(
    tmp_path: Path, key_material: KeyMaterial, upstream: TestServer
) -> None:
    # Browsers cannot set Authorization on a WebSocket, so clients put tokens here.
    proc, port = await start_proxy(tmp_path, key_material, upstream)
    handshake = (
        b"GET /trade-api/ws/v2 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Protocol: bearer.SECRET-PROTOCOL-TOKEN\r\n\r\n"
    )
    assert (await send(port, handshake)).startswith(b"HTTP/1.1 101")
    code, out, err = await proc.stop()
    assert code == 0
    assert "arguments withheld" in out  # aiohttp did log the mismatch, without the values
    assert "SECRET-PROTOCOL-TOKEN" not in out + err
