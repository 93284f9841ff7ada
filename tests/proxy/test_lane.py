"""The order lane (proxy/lane.py): order calls go upstream on connections of their own,
without aiohttp's client. Same answers, same words for every failure, kept-alive
connections reused, nothing sent twice."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from tests.support.upstreams import (
    SSH_BANNER,
    banner_server,
    self_signed_certificate,
    tls_server,
)

pytestmark = pytest.mark.usefixtures("clean_env")

ORDERS = "/trade-api/v2/portfolio/events/orders"
ORDER = {"ticker": "KXLANE-1", "side": "bid", "count": "1", "price": "0.40"}


async def order(client: Any, body: Any = ORDER) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """(status, JSON answer, the call's log event) of one order through the proxy."""
    with capture_logs() as events:
        resp = await client.post(ORDERS, data=json.dumps(body))
        answer = await resp.json()
    (event,) = [e for e in events if e["event"] == "request"]
    return resp.status, answer, event


async def test_orders_reuse_one_kept_alive_connection_and_are_signed(
    make_upstream: Any, make_proxy: Any
) -> None:
    peers: list[object] = []

    async def book(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response({"order_id": f"o-{len(peers)}"}, status=201)

    upstream = await make_upstream(book)
    client = await make_proxy(upstream.url)
    for i in range(3):
        status, answer, _ = await order(client)
        assert (status, answer) == (201, {"order_id": f"o-{i + 1}"})
    assert len(set(peers)) == 1  # one connection, kept alive
    assert all(s.auth_error is None for s in upstream.seen)  # each signature verified
    assert [json.loads(s.body) for s in upstream.seen] == [ORDER] * 3
    journal = await (await client.get("/proxy/v1/journal")).json()
    assert sorted(row["order_id"] for row in journal["entries"]) == ["o-1", "o-2", "o-3"]


async def test_a_chunked_answer_reaches_the_client_whole_and_the_journal(
    make_upstream: Any, make_proxy: Any
) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=201, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b'{"order_id"', b':"o-chunked",', b'"pad":"' + b"x" * 70_000 + b'"}'):
            await response.write(part)
        await response.write_eof()
        return response

    client = await make_proxy((await make_upstream(chunked)).url)
    status, answer, event = await order(client)
    assert (status, answer["order_id"], len(answer["pad"])) == (201, "o-chunked", 70_000)
    assert event["bytes_out"] > 70_000
    journal = await (await client.get("/proxy/v1/journal")).json()
    assert [row["order_id"] for row in journal["entries"]] == ["o-chunked"]


@asynccontextmanager
async def refused() -> AsyncIterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def unresolvable() -> AsyncIterator[str]:
    yield "http://nonexistent.invalid"


@asynccontextmanager
async def speaks_ssh() -> AsyncIterator[str]:
    async with banner_server(SSH_BANNER) as server:
        yield f"http://127.0.0.1:{server.port}"


@asynccontextmanager
async def cut_short() -> AsyncIterator[str]:
    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"a":1,'
    async with banner_server(answer, hang_up=True) as server:
        yield f"http://127.0.0.1:{server.port}"


@asynccontextmanager
async def odd_length() -> AsyncIterator[str]:
    # '³' (UTF-8): str.isdigit takes it, int() does not.
    answer = b"HTTP/1.1 201 Created\r\nContent-Length: \xc2\xb3\r\n\r\n{}"
    async with banner_server(answer, hang_up=True) as server:
        yield f"http://127.0.0.1:{server.port}"


@asynccontextmanager
async def hangs_up() -> AsyncIterator[str]:
    async with banner_server(b"", hang_up=True) as server:
        yield f"http://127.0.0.1:{server.port}"


def self_signed(tmp: Path) -> Callable[[], Any]:
    @asynccontextmanager
    async def upstream() -> AsyncIterator[str]:
        cert, key = self_signed_certificate(tmp, "localhost")
        async with tls_server(cert, key) as server:
            yield f"https://127.0.0.1:{server.port}"

    return upstream


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (refused, "proxy_upstream_unreachable"),
        (unresolvable, "proxy_upstream_unreachable"),
        (speaks_ssh, "proxy_upstream_protocol_error"),
        (cut_short, "proxy_upstream_body_error"),
        (odd_length, "proxy_upstream_protocol_error"),
        (hangs_up, "proxy_upstream_error"),
        ("self_signed", "proxy_upstream_tls_error"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
async def test_an_order_that_fails_is_told_why_in_the_same_words_as_any_call(
    make_proxy: Any, tmp_path: Path, make: Any, code: str
) -> None:
    """The lane's failures read as aiohttp's do for other calls (tests/proxy/test_failures.py)."""
    upstream = self_signed(tmp_path) if make == "self_signed" else make
    async with upstream() as url:
        client = await make_proxy(url)
        status, answer, event = await order(client)
        with capture_logs():
            other = await (await client.post("/trade-api/v2/portfolio/order_groups/create")).json()
    assert status in (502, 504)
    assert answer["error"]["code"] == code
    # The order call's words begin as any call's do (those end with the upstream's origin).
    # (A hang-up races the request's write: "closed", or "reset by peer", either way.)
    if make is not hangs_up:
        assert answer["error"]["message"].startswith(other["error"]["message"].split(" (")[0])
    assert event["error"].startswith(code)
    for leaked in ("SSH-2.0", '{"a":1', "Error", "payload"):
        assert leaked not in json.dumps(answer)
    journal = await (await client.get("/proxy/v1/journal")).json()
    (row,) = journal["entries"]
    assert row["state"] == "unknown" if code in ("proxy_upstream_error",) else row["state"]


@pytest.mark.parametrize("journal", ["default", "null"])
async def test_a_connection_idle_too_long_is_not_trusted_with_an_order(
    make_upstream: Any, make_proxy: Any, monkeypatch: pytest.MonkeyPatch, journal: str
) -> None:
    """Kalshi may be closing an idle connection as an order goes into it (an order of
    unknown fate): one idle past IDLE_REUSE_SECONDS is closed and a fresh one opened.
    Orders take the lane with the journal off too (aiohttp's client would reuse it)."""
    from signing_proxy.proxy import lane

    monkeypatch.setattr(lane, "IDLE_REUSE_SECONDS", 0.2)
    peers: list[object] = []

    async def book(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response({"order_id": "o"}, status=201)

    env = {"SIGNING_PROXY_JOURNAL": "null"} if journal == "null" else {}
    client = await make_proxy((await make_upstream(book)).url, **env)
    await order(client)
    await order(client)  # at once: the same connection
    await asyncio.sleep(0.3)
    await order(client)  # idle too long: a new one
    assert peers[0] == peers[1] != peers[2]


# --- other calls: the lane reads their answers as they arrive ---------------------------------

BIG = bytes(range(256)) * (3 * 4096)  # 3 MiB, every byte value


async def big_answers(make_upstream: Any, *, chunked: bool) -> tuple[Any, list[object]]:
    """An upstream that answers BIG to every call (sized or chunked), and the peer (the
    proxy's connection) of each call."""
    peers: list[object] = []

    async def big(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(BIG)
        await response.prepare(request)
        for at in range(0, len(BIG), 100_000):  # odd pieces: chunks that end mid-read
            await response.write(BIG[at : at + 100_000])
        await response.write_eof()
        return response

    return await make_upstream(big), peers


@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
async def test_a_large_answer_streams_whole_and_its_connection_is_reused(
    make_upstream: Any, make_proxy: Any, chunked: bool
) -> None:
    upstream, peers = await big_answers(make_upstream, chunked=chunked)
    client = await make_proxy(upstream.url)
    for _ in range(2):
        resp = await client.get("/trade-api/v2/markets")
        assert (resp.status, await resp.read()) == (200, BIG)
    assert peers[0] == peers[1]  # read to its end: back in the pool
    assert all(s.auth_error is None for s in upstream.seen)


async def test_an_answer_that_ends_with_the_connection_streams_and_is_not_reused(
    make_proxy: Any,
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"z" * 2_000_000
    connections = []

    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername"))
        await reader.readuntil(b"\r\n\r\n")  # the request read: the close is a clean FIN
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_then_close, "127.0.0.1", 0)
    async with server:
        client = await make_proxy(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        for _ in range(2):
            resp = await client.get("/trade-api/v2/markets")
            assert (resp.status, await resp.read()) == (200, b"z" * 2_000_000)
    assert len(connections) == 2


async def test_a_client_that_leaves_midway_leaves_the_connection_closed(
    make_upstream: Any, make_proxy: Any
) -> None:
    upstream, peers = await big_answers(make_upstream, chunked=False)
    client = await make_proxy(upstream.url)
    resp = await client.get("/trade-api/v2/markets")
    await resp.content.readexactly(1000)
    resp.close()  # the client goes: the rest of the answer is never read
    await asyncio.sleep(0.2)
    resp = await client.get("/trade-api/v2/markets")
    assert await resp.read() == BIG
    assert peers[0] != peers[1]  # out of step: never reused


async def test_a_slow_client_holds_the_upstream_back(make_upstream: Any, make_proxy: Any) -> None:
    """The proxy does not take a large answer in faster than its client reads it: reading
    from the upstream pauses, so the upstream's writes wait and the proxy's memory does not
    grow with the answer."""
    total = 64 * 1024 * 1024
    written = [0]

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = total
        await response.prepare(request)
        piece = b"h" * (1024 * 1024)
        for _ in range(total // len(piece)):
            await response.write(piece)  # waits while the proxy does not read
            written[0] += len(piece)
        await response.write_eof()
        return response

    client = await make_proxy((await make_upstream(huge)).url)
    resp = await client.get("/trade-api/v2/markets")
    await resp.content.readexactly(1024)  # then stop reading
    await asyncio.sleep(1.0)
    # Kernel buffers on both sides hold a few MB; the rest waits in the upstream.
    assert written[0] < 24 * 1024 * 1024
    received = 1024 + len(await resp.read())  # reading again: the rest comes
    assert received == total == written[0]


@pytest.mark.parametrize("bad", ["\r", "\n", "\0", "\r\nX-Injected: 1"])
@pytest.mark.parametrize("where", ["name", "value"])
def test_a_header_that_would_break_the_framing_is_never_written(bad: str, where: str) -> None:
    """No header name or value with CR, LF or NUL is written upstream (a second line of
    defence: aiohttp's parser refuses them from clients), whichever header holds it."""
    from multidict import CIMultiDict
    from yarl import URL

    from signing_proxy.proxy.lane import _request_bytes

    url = URL("http://127.0.0.1:9/trade-api/v2/portfolio/events/orders")
    fine = CIMultiDict({"Content-Type": "application/json", "X-Request-ID": "abc"})
    assert b"\r\nX-Request-ID: abc\r\nContent-Length: 2\r\n\r\n{}" in _request_bytes(
        "POST", url, fine, b"{}"
    )
    headers = CIMultiDict(fine)
    headers.add(
        f"X-Bad{bad}" if where == "name" else "X-Bad", f"v{bad}" if where == "value" else "v"
    )
    headers.add("Accept", "*/*")
    with pytest.raises(ValueError, match="framing"):
        _request_bytes("POST", url, headers, b"{}")


async def test_an_address_that_drops_connections_costs_a_quarter_second_not_the_timeout(
    make_upstream: Any,
) -> None:
    """A name with two addresses, the first dropping every connection (a full accept queue
    on 127.0.0.2 drops SYNs, as a dead IPv6 route or a stale record would): the lane
    tries the next one 0.25 s later, as aiohttp's client does, instead of waiting out
    upstream.connect_timeout on the first (the container smoke test met this)."""
    import time

    from multidict import CIMultiDict
    from yarl import URL

    from signing_proxy.proxy.lane import Lane

    upstream = await make_upstream()
    good = URL(upstream.url)
    dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        dead.bind(("127.0.0.2", 0))
        dead.listen(0)
        for _ in range(2):  # the accept queue full: further SYNs are dropped
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex(dead.getsockname())
            fillers.append(filler)
        await asyncio.sleep(0.05)
        addresses = [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", dead.getsockname()),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", good.port)),
        ]

        async def resolve(host: str, port: int) -> list[Any]:
            assert (host, port) == ("upstream.test", good.port)
            return addresses

        lane = Lane(resolve=resolve)
        url = URL(f"http://upstream.test:{good.port}/trade-api/v2/portfolio/balance")
        started = time.monotonic()
        answer = await lane.request("GET", url, CIMultiDict(), None, connect_timeout=5.0)
        assert answer.status == 401  # the upstream's verdict on an unsigned call: reached
        assert time.monotonic() - started < 2.0  # not the 5 s connect timeout
        lane.close()
    finally:
        for held in (dead, *fillers):
            held.close()
