"""Hostile and malformed HTTP over raw sockets: a 4xx or a closed connection, never a
forwarded request, and the proxy keeps serving afterwards."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.usefixtures("clean_env")

HOSTILE: dict[str, bytes] = {
    "garbage": b"GARBAGE\r\n\r\n",
    "http2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "absurd method": b"FOOBAR /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "trace": b"TRACE /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "connect": b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    "absolute form to another host": (
        b"GET http://evil.example/trade-api/v2/markets HTTP/1.1\r\nHost: evil.example\r\n\r\n"
    ),
    "invalid utf-8 in path": b"GET /trade-api/v2/\xff\xfe\xfd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "space in path": b"GET /trade-api/v2/a b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "nul in path": b"GET /trade-api/v2/a\x00b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "nul in header": (
        b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x00b\r\n\r\n"
    ),
    "space in header name": (
        b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: 1\r\n\r\n"
    ),
    "header without colon": (
        b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColon\r\n\r\n"
    ),
    "obsolete line folding": (
        b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n folded\r\n\r\n"
    ),
    "huge header": b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    + b"a" * 20000
    + b"\r\n\r\n",
    "too many headers": b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    + b"".join(b"X-H%d: 1\r\n" % i for i in range(300))
    + b"\r\n",
    "huge request line": b"GET /trade-api/v2/"
    + b"a" * 20000
    + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "content-length and chunked (CL.TE smuggling)": (
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 6\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"
    ),
    "two different content-lengths": (
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 3\r\n"
        b"Content-Length: 5\r\n\r\nabcde"
    ),
    "negative content-length": (
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: -1\r\n\r\n"
    ),
    "unknown transfer-encoding": (
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
    ),
    "chunk size overflow": (
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffffff\r\nx\r\n0\r\n\r\n"
    ),
    "dot segments": b"GET /trade-api/v2/%2e%2e/%2e%2e/admin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "fragment": b"GET /trade-api/v2/markets#x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "backslash traversal": b"GET /trade-api/v2/..\\..\\admin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
}


async def exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read(65536)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_request_is_refused_and_proxy_keeps_serving(
    make_upstream, make_proxy, name: str
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    reply = await exchange(client.port, HOSTILE[name])
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.") else None
    assert status is None or 400 <= status < 500, reply[:200]
    assert upstream.seen == [], f"{name} reached the upstream"
    after = await client.get("/trade-api/v2/markets")
    assert after.status == 200
    assert len(upstream.seen) == 1


async def test_pipelined_smuggle_attempt_forwards_only_the_real_request(
    make_upstream, make_proxy
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    payload = (
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 44\r\n\r\n"
        b"GET /trade-api/v2/admin HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    await exchange(client.port, payload)
    assert [(s.method, s.raw_path) for s in upstream.seen] == [
        ("POST", "/trade-api/v2/portfolio/events/orders")
    ]
    assert upstream.seen[0].body.startswith(b"GET /trade-api/v2/admin")
