"""The lane against malformed and awkward upstream answers: each is judged as aiohttp's
parser (llhttp) judged it before the lane took every call, or more safely. An answer
the lane cannot frame is a 502 in the proxy's words, never relayed to the client half
checked, never a 500 or a traceback, and a connection is reused only while in step."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from structlog.testing import capture_logs
from yarl import URL

from signing_proxy.proxy.lane import Lane, _request_bytes

pytestmark = pytest.mark.usefixtures("clean_env")

MARKETS = "/trade-api/v2/markets"


@asynccontextmanager
async def answering(answer: bytes, *, close: bool = False) -> AsyncIterator[str]:
    """An upstream that reads each request's head and answers it with `answer`, raw; it
    keeps the connection open (or, with `close`, closes it after the answer)."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def proxy_for(make_proxy: Any, tmp_path: Path, url: str) -> Any:
    """A proxy in front of `url` that waits 5 s for an answer and never retries."""
    config = tmp_path / "c.yaml"
    config.write_text("upstream: {timeout: 5, retries: 0}\n")
    return await make_proxy(url, config_file=config)


async def call(client: Any, method: str = "GET") -> tuple[int, dict[str, Any] | bytes]:
    """(status, JSON error or body) of one call through the proxy, within 3 s."""
    async with asyncio.timeout(3):
        resp = await client.request(method, MARKETS)
        body = await resp.read()
    if resp.headers.get("Content-Type") == "application/json" and body:
        return resp.status, json.loads(body)
    return resp.status, body


def head(*lines: bytes, body: bytes = b"") -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# Answers llhttp refused (502 before the lane): each was relayed by the lane as it came, so
# the client's own parser failed on the proxy's answer, or waited for bytes never coming.
UNFRAMABLE = {
    "length_and_chunked": head(
        b"HTTP/1.1 200 OK",
        b"Content-Length: 5",
        b"Transfer-Encoding: chunked",
        body=b"2\r\n{}\r\n0\r\n\r\n",
    ),
    "two_lengths": head(
        b"HTTP/1.1 200 OK", b"Content-Length: 2", b"Content-Length: 4", body=b"{}{}"
    ),
    "length_overflows": head(b"HTTP/1.1 200 OK", b"Content-Length: 99999999999999999999999"),
    # Past 4300 digits int() raises ValueError, which no caller expects (a 500).
    "length_of_5000_digits": head(b"HTTP/1.1 200 OK", b"Content-Length: " + b"9" * 5000),
}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("case", list(UNFRAMABLE))
async def test_an_answer_framed_two_ways_is_a_protocol_error_not_relayed(
    make_proxy: Any, tmp_path: Path, case: str, method: str
) -> None:
    async with answering(UNFRAMABLE[case]) as url:
        client = await proxy_for(make_proxy, tmp_path, url)
        status, answer = await call(client, method)
    assert status == 502
    if method == "GET":
        assert isinstance(answer, dict)
        assert answer["error"]["code"] == "proxy_upstream_protocol_error"


async def test_a_head_answer_with_an_unreadable_length_is_a_502_not_a_500(
    make_proxy: Any, tmp_path: Path
) -> None:
    """A HEAD answer has no body to frame, but its Content-Length is relayed all the same."""
    async with answering(head(b"HTTP/1.1 200 OK", b"Content-Length: 1 2")) as url:
        client = await proxy_for(make_proxy, tmp_path, url)
        status, _ = await call(client, "HEAD")
    assert status == 502


CHUNKS = b"2\r\n{}\r\n0\r\n\r\n"


async def test_transfer_encoding_is_read_from_every_header(make_proxy: Any, tmp_path: Path) -> None:
    """Transfer-Encoding may come as two headers: the codings are all of them, in order.
    The lane read only the first (gzip) and took the chunks for a body ending at the close."""
    answer = head(
        b"HTTP/1.1 200 OK", b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked", body=CHUNKS
    )
    async with answering(answer) as url:
        client = await proxy_for(make_proxy, tmp_path, url)
        assert await call(client) == (200, b"{}")


@pytest.mark.parametrize("coding", [b"chunked, gzip", b"xchunked"])
async def test_a_body_whose_last_coding_is_not_chunked_ends_at_the_close(
    make_proxy: Any, tmp_path: Path, coding: bytes
) -> None:
    """RFC 9112 section 6.3: chunked only when it is the last coding (the lane looked for
    "chunked" anywhere in the value); otherwise the body is all until the upstream closes."""
    answer = head(b"HTTP/1.1 200 OK", b"Transfer-Encoding: " + coding, body=CHUNKS)
    async with answering(answer, close=True) as url:
        client = await proxy_for(make_proxy, tmp_path, url)
        assert await call(client) == (200, CHUNKS)


# A CR, LF or NUL inside a head's line: llhttp refused them (CR, NUL) or took the LF for a
# line's end. The lane kept them in the header or reason it relayed, and aiohttp's server
# refused to write those: a 500, or a connection dropped with a traceback in the log.
BROKEN_LINES = {
    "lf_in_a_value": head(
        b"HTTP/1.1 200 OK", b"X-A: 1\nSet-Cookie: evil=1", b"Content-Length: 2", body=b"{}"
    ),
    "cr_in_a_value": head(
        b"HTTP/1.1 200 OK", b"X-A: 1\rSet-Cookie: evil=1", b"Content-Length: 2", body=b"{}"
    ),
    "nul_in_a_value": head(b"HTTP/1.1 200 OK", b"X-A: 1\0evil", b"Content-Length: 2", body=b"{}"),
    "lf_in_the_reason": head(b"HTTP/1.1 200 O\nevil", b"Content-Length: 2", body=b"{}"),
    "cr_in_the_reason": head(b"HTTP/1.1 200 O\revil", b"Content-Length: 2", body=b"{}"),
}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("case", list(BROKEN_LINES))
async def test_a_control_character_in_a_head_line_is_a_502_not_a_500(
    make_proxy: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, method: str
) -> None:
    async with answering(BROKEN_LINES[case]) as url:
        client = await proxy_for(make_proxy, tmp_path, url)
        with capture_logs() as events, caplog.at_level(logging.WARNING):
            status, answer = await call(client, method)
    assert status == 502
    if method == "GET":
        assert isinstance(answer, dict)
        assert answer["error"]["code"] == "proxy_upstream_protocol_error"
        assert "evil" not in json.dumps(answer)
    assert "Traceback" not in caplog.text
    assert "Unhandled exception" not in caplog.text
    (event,) = [e for e in events if e["event"] == "request"]
    assert event["error"].startswith("proxy_upstream_protocol_error")


async def test_a_head_whose_lines_end_in_bare_lf_is_refused_at_once(
    make_proxy: Any, tmp_path: Path
) -> None:
    """The lane waited for a CRLF CRLF never coming: a 504 after all of upstream.timeout.
    (llhttp took bare LFs for line ends; refusing them is the stricter choice.)"""
    answer = b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}"
    async with answering(answer) as url:
        client = await proxy_for(make_proxy, tmp_path, url)
        status, error = await call(client)
    assert status == 502
    assert isinstance(error, dict)
    assert error["error"]["code"] == "proxy_upstream_protocol_error"


async def test_a_chunk_line_that_ends_in_bare_lf_fails_at_once(
    make_proxy: Any, tmp_path: Path
) -> None:
    """The head is relayed already, so the client sees its answer cut, as for any broken
    body; but at once, not after upstream.timeout waiting for a CRLF never coming."""
    answer = head(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", body=b"2\n{}\n0\n\n")
    async with answering(answer) as url:
        client = await proxy_for(make_proxy, tmp_path, url)
        with pytest.raises(aiohttp.ClientPayloadError):
            await call(client)


# Status lines and header names llhttp refused: the lane relayed the first three as they
# came (the client's own parser then refused the proxy's answer), took 0200 for 200, and
# a 99 for an interim answer, skipped as 1xx are.
BAD_HEADS = {
    "status_of_four_digits": head(b"HTTP/1.1 1000 X", b"Content-Length: 2", body=b"{}"),
    "name_not_a_token": head(b"HTTP/1.1 200 OK", b"X(A): 1", b"Content-Length: 2", body=b"{}"),
    "name_not_ascii": head(b"HTTP/1.1 200 OK", b"X-\xc3\xa9: 1", b"Content-Length: 2", body=b"{}"),
    "status_0200": head(b"HTTP/1.1 0200 OK", b"Content-Length: 2", body=b"{}"),
    "version_1_9": head(b"HTTP/1.9 200 OK", b"Content-Length: 2", body=b"{}"),
    "status_99": head(b"HTTP/1.1 99 X") + head(b"HTTP/1.1 200 OK", b"Content-Length: 2") + b"{}",
}


@pytest.mark.parametrize("case", list(BAD_HEADS))
async def test_a_status_line_or_header_name_llhttp_refused_is_a_protocol_error(
    make_proxy: Any, tmp_path: Path, case: str
) -> None:
    async with answering(BAD_HEADS[case]) as url:
        client = await proxy_for(make_proxy, tmp_path, url)
        status, answer = await call(client)
    assert status == 502
    assert isinstance(answer, dict)
    assert answer["error"]["code"] == "proxy_upstream_protocol_error"


# Past the lane's high-water mark (256 KiB not yet taken) reading from the upstream pauses.
PAST_HIGH_WATER = 256 * 1024 + 1


@asynccontextmanager
async def large_answer_then_idle_close(prefix: bytes) -> AsyncIterator[tuple[str, list[int]]]:
    """An upstream that answers each connection's first call with a body of PAST_HIGH_WATER
    bytes (beginning with `prefix`), sent after its head, then closes the connection idle,
    as a server's keep-alive timeout does; and the count of connections."""
    connections: list[int] = []
    serving: list[asyncio.Task[Any]] = []
    body = prefix + b"x" * (PAST_HIGH_WATER - len(prefix) - 2) + b'"}'

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        task = asyncio.current_task()
        assert task is not None
        serving.append(task)
        try:
            request_head = await reader.readuntil(b"\r\n\r\n")
            for line in request_head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    await reader.readexactly(int(line.partition(b":")[2]))
            writer.write(head(b"HTTP/1.1 201 Created", b"Content-Length: %d" % len(body)))
            await writer.drain()
            await asyncio.sleep(0.1)  # the head taken first: then all the body comes at once
            writer.write(body)
            await writer.drain()
            await asyncio.sleep(0.2)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        try:
            yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", connections
        finally:
            for task in serving:
                task.cancel()  # none outlives the test (and its event loop)
            await asyncio.gather(*serving, return_exceptions=True)


async def test_an_idle_connection_whose_reading_paused_still_sees_the_upstream_close(
    make_proxy: Any, tmp_path: Path
) -> None:
    """The last bytes of a large answer took reading past the high-water mark; the body was
    then read whole without another wait, so reading stayed paused while the connection
    idled, and the upstream's FIN went unseen. The next order went into the closed
    connection: a 502, and an order of unknown fate in the journal."""
    async with large_answer_then_idle_close(b'{"order_id":"o","pad":"') as (url, connections):
        client = await proxy_for(make_proxy, tmp_path, url)
        for _ in range(2):
            async with asyncio.timeout(3):
                resp = await client.post(
                    "/trade-api/v2/portfolio/events/orders",
                    json={"ticker": "KXLANE-1", "side": "bid", "count": "1", "price": "0.40"},
                )
                assert resp.status == 201, await resp.text()
                assert len(await resp.read()) == PAST_HIGH_WATER
            await asyncio.sleep(0.5)  # the upstream closes the idle connection
    assert len(connections) == 2


async def test_a_streamed_body_read_to_its_end_leaves_its_connection_reading() -> None:
    """The same for a GET's body read as it arrives (a slow client lets it all come first):
    an idle connection must see the upstream close it."""
    async with large_answer_then_idle_close(b'{"pad":"') as (url, _):
        lane = Lane(limit=4)
        answer = await lane.request(
            "GET", URL(url + "/x"), CIMultiDict(), None, 1.0, whole=False, read_timeout=1.0
        )
        await asyncio.sleep(0.3)  # the relay is slow: all the body is here, reading paused
        assert len(await answer.read()) == PAST_HIGH_WATER
        await asyncio.sleep(0.3)  # the upstream closes the idle connection
        try:
            async with asyncio.timeout(3):
                again = await lane.request("GET", URL(url + "/x"), CIMultiDict(), None, 1.0)
            assert again.status == 201
        finally:
            lane.close()


def test_an_ipv6_upstream_is_named_in_brackets_in_the_host_header() -> None:
    """'Host: ::1:8443' is no authority (RFC 9112 section 3.2); aiohttp's client wrote
    '[::1]:8443'. No connection needed: the request's bytes tell."""
    request = _request_bytes("GET", URL("https://[::1]:8443/x"), CIMultiDict(), None)
    assert b"\r\nHost: [::1]:8443\r\n" in request
    request = _request_bytes("GET", URL("https://[::1]/x"), CIMultiDict(), None)
    assert b"\r\nHost: [::1]\r\n" in request


async def test_trailers_are_bounded_as_a_head_is(make_proxy: Any, tmp_path: Path) -> None:
    """aiohttp's parser refused 160 KB of trailers; the lane reads at most 64 KiB of them.
    An order's answer, read whole, is then a 502; a GET's, streamed, is cut."""
    trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"t" * 100) for i in range(1000))
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
    async with answering(answer + trailers + b"\r\n") as url:
        client = await proxy_for(make_proxy, tmp_path, url)
        async with asyncio.timeout(3):
            resp = await client.post("/trade-api/v2/portfolio/events/orders", data=b"{}")
            assert (resp.status, (await resp.json())["error"]["code"]) == (
                502,
                "proxy_upstream_body_error",
            )
            with pytest.raises(aiohttp.ClientPayloadError):
                await call(client)


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 5242880\r\n\r\n", b"Transfer-Encoding: chunked\r\n\r\n500000\r\n"],
    ids=["sized", "chunked"],
)
async def test_an_order_answer_past_its_bound_is_refused_not_held(
    make_proxy: Any, tmp_path: Path, framing: bytes
) -> None:
    """An order's answer is read whole, so it is bounded (MAX_ANSWER_BYTES, 4 MiB): one that
    says it is larger is a 502 at once, without its body ever being held."""
    async with answering(b"HTTP/1.1 201 Created\r\n" + framing) as url:
        client = await proxy_for(make_proxy, tmp_path, url)
        async with asyncio.timeout(3):
            resp = await client.post("/trade-api/v2/portfolio/events/orders", data=b"{}")
            error = (await resp.json())["error"]
    assert (resp.status, error["code"]) == (502, "proxy_upstream_body_error")
