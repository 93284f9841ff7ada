"""The order lane: order calls go upstream on kept-alive HTTP/1.1 connections of their own,
head and body in one write, the answer read whole, with no client library in between.

aiohttp's ClientSession.request costs about 0.2 ms of Python per call more than this
(bench/README.md: measured side by side on loopback), and an order call pays it on its
way to the book. Order answers are small and read whole anyway (the journal needs their
ids), so nothing is lost by not streaming them. TLS is the same: the same SSLContext,
verifying the certificate and the host name. Failures are raised as the aiohttp errors
upstream.classify names, so a client is told the same words whichever way its call went.
Nothing is ever sent twice: a connection that breaks is closed, never retried.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Final, cast

import aiohttp
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from signing_proxy.proxy.upstream import ConnectionLost

# An order's answer is a few KB (a batch of 20: about 20 KB); past this it is refused.
MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024
_MAX_HEAD_BYTES: Final = 64 * 1024
# A kept-alive connection idle longer than this is closed, not reused: the upstream may be
# closing it at the same moment, and an order sent into that is an order of unknown fate.
IDLE_REUSE_SECONDS: Final = 10.0
_MAX_IDLE: Final = 16
_BODYLESS_METHODS: Final = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_BREAKS_FRAMING: Final = frozenset("\r\n\0")
_HTTP: Final = b"HTTP/1."
_FRAMED_HERE: Final = frozenset({"host", "content-length", "transfer-encoding"})


class LaneAnswer:
    """The answer, read whole, with the parts of aiohttp.ClientResponse the relay uses."""

    def __init__(self, status: int, reason: str, headers: CIMultiDict[str], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = CIMultiDictProxy(headers)
        self.body = body
        self.content = _Content(body)

    @property
    def content_length(self) -> int:
        """The body's length (it is all here)."""
        return len(self.body)

    async def read(self) -> bytes:
        """The whole body."""
        return self.body

    def release(self) -> None:
        """Nothing to give back: the connection went back to the pool when the body ended."""


class _Content:
    """The body as the streaming relay reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._at = 0

    async def read(self, n: int = -1) -> bytes:
        end = len(self._body) if n < 0 else self._at + n
        chunk = self._body[self._at : end]
        self._at += len(chunk)
        return chunk

    def at_eof(self) -> bool:
        return self._at >= len(self._body)

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        while not self.at_eof():
            yield await self.read(n)


class _Connection(asyncio.Protocol):
    """One upstream connection: bytes in, one answer at a time parsed out of them."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.broken = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are no asyncio.Transport subclass, but are one in all but name.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.broken = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _more(self) -> None:
        """Wait for more bytes (or the end of the connection)."""
        if self.broken:
            raise aiohttp.ServerDisconnectedError()
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    async def take(self, n: int) -> bytes:
        """Exactly `n` bytes of the answer."""
        while len(self._buffer) < n:
            if self.broken:
                raise aiohttp.ClientPayloadError("the answer was cut short")
            await self._more()
        chunk = bytes(self._buffer[:n])
        del self._buffer[:n]
        return chunk

    async def line(self, limit: int) -> bytes:
        """The next CRLF-ended line, without its CRLF."""
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > limit:
                raise _not_http()
            await self._more()
        chunk = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return chunk

    async def head(self) -> bytes:
        """The answer's status line and headers, up to the empty line."""
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > _MAX_HEAD_BYTES or not _HTTP.startswith(self._buffer[:7]):
                raise _not_http()  # another protocol (an SSH banner...): no use waiting
            await self._more()
        chunk = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        return chunk

    async def rest(self) -> bytes:
        """Everything until the upstream closes (an answer with neither length nor chunks)."""
        while not self.broken:
            if len(self._buffer) > MAX_ANSWER_BYTES:
                raise _too_large()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return bytes(self._buffer)

    def usable(self, now: float) -> bool:
        """Whether this idle connection may carry another call."""
        return (
            not self.broken
            and not self._buffer  # bytes nobody asked for: the connection is out of step
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < IDLE_REUSE_SECONDS
        )

    def close(self) -> None:
        """Close for good."""
        self.broken = True
        if self.transport is not None:
            self.transport.close()


class OrderLane:
    """Kept-alive connections to one upstream origin, for order calls."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context or ssl.create_default_context()
        self._idle: dict[tuple[str, int, bool], deque[_Connection]] = {}

    async def request(
        self,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        body: bytes | None,
        connect_timeout: float,
    ) -> LaneAnswer:
        """Send one call and read its answer whole; aiohttp's errors when it fails."""
        origin = (url.raw_host or "", url.port or 0, url.scheme == "https")
        message = _request_bytes(method, url, headers, body)
        connection = self._idle_connection(origin) or await self._connect(origin, connect_timeout)
        try:
            assert connection.transport is not None
            connection.transport.write(message)
            status, reason, answer_headers, answer, keep_alive = await _answer(connection, method)
        except BaseException:
            connection.close()  # its state is unknown: it never carries another call
            raise
        if keep_alive and not connection.broken:
            self._park(origin, connection)
        else:
            connection.close()
        return LaneAnswer(status, reason, answer_headers, answer)

    def _idle_connection(self, origin: tuple[str, int, bool]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the warmest
            if connection.usable(now):
                return connection
            connection.close()
        return None

    def _park(self, origin: tuple[str, int, bool], connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, deque())
        connection.idle_since = time.monotonic()
        idle.append(connection)
        while len(idle) > _MAX_IDLE:
            idle.popleft().close()

    async def _connect(self, origin: tuple[str, int, bool], within: float) -> _Connection:
        host, port, tls = origin
        key = ConnectionKey(host, port, tls, self._ssl if tls else True, None, None, None)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                _, connection = await loop.create_connection(
                    _Connection,
                    host,
                    port,
                    ssl=self._ssl if tls else None,
                    server_hostname=host if tls else None,
                )
        except TimeoutError:
            raise aiohttp.ConnectionTimeoutError() from None
        except ssl.CertificateError as exc:
            raise aiohttp.ClientConnectorCertificateError(key, exc) from None
        except ssl.SSLError as exc:
            raise aiohttp.ClientConnectorSSLError(key, exc) from None
        except socket.gaierror as exc:
            raise aiohttp.ClientConnectorDNSError(key, exc) from None
        except OSError as exc:
            raise aiohttp.ClientConnectorError(key, exc) from None
        return connection

    def close(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            while idle:
                idle.pop().close()


def _request_bytes(method: str, url: URL, headers: CIMultiDict[str], body: bytes | None) -> bytes:
    """The request's head and body, as one buffer for one write."""
    target = url.raw_path_qs
    host = url.raw_host or ""
    default_port = 443 if url.scheme == "https" else 80
    authority = host if url.port in (None, default_port) else f"{host}:{url.port}"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {authority}"]
    for name, value in headers.items():
        if name.lower() in _FRAMED_HERE:
            continue  # the upstream's own name, and the body's length, are written here
        if _BREAKS_FRAMING.intersection(name) or _BREAKS_FRAMING.intersection(value):
            raise ValueError("a header would break the request's framing")
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method not in _BODYLESS_METHODS:
        lines.append("Content-Length: 0")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    return head + body if body else head


async def _answer(
    connection: _Connection, method: str
) -> tuple[int, str, CIMultiDict[str], bytes, bool]:
    """Read one answer (passing over 1xx interim ones): status, reason, headers, body, and
    whether the connection may carry another call."""
    while True:
        try:
            status, reason, headers, keep_alive = _parse_head(await connection.head())
        except aiohttp.ServerDisconnectedError as exc:
            raise ConnectionLost("the upstream connection broke before an answer") from exc
        if status >= 200:
            break
    if method == "HEAD" or status in (204, 304):
        return status, reason, headers, b"", keep_alive
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        body = await _chunked(connection)
        headers.popall("Transfer-Encoding", None)  # the relay sends it with a length now
    elif (length := headers.get("Content-Length")) is not None:
        body = await connection.take(_length(length))
    else:
        body, keep_alive = await connection.rest(), False
    return status, reason, headers, body, keep_alive


async def _chunked(connection: _Connection) -> bytes:
    """A chunked body, joined."""
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = (await connection.line(1024)).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise aiohttp.ClientPayloadError("a chunk's size could not be read") from None
        if size == 0:
            while await connection.line(_MAX_HEAD_BYTES):
                pass  # trailers, not relayed
            return b"".join(parts)
        total += size
        if total > MAX_ANSWER_BYTES:
            raise _too_large()
        parts.append(await connection.take(size))
        if await connection.take(2) != b"\r\n":
            raise aiohttp.ClientPayloadError("a chunk did not end where it said")


def _parse_head(head: bytes) -> tuple[int, str, CIMultiDict[str], bool]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise _not_http()
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise _not_http()
        headers.add(name.decode("latin-1"), value.strip().decode("utf-8", "surrogateescape"))
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    connection = headers.get("Connection", "").lower()
    # HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told not to.
    keep_alive = (
        "keep-alive" in connection if parts[0] == b"HTTP/1.0" else "close" not in connection
    )
    return int(parts[1]), reason, headers, keep_alive


def _length(value: str) -> int:
    if not (value.isascii() and value.isdigit()):  # isdigit alone takes '³'
        raise _not_http()  # as aiohttp's parser words an unreadable Content-Length
    size = int(value)
    if size > MAX_ANSWER_BYTES:
        raise _too_large()
    return size


def _not_http() -> aiohttp.ClientResponseError:
    info = aiohttp.RequestInfo(URL(), "", CIMultiDictProxy(CIMultiDict()), URL())
    return aiohttp.ClientResponseError(info, ())


def _too_large() -> aiohttp.ClientPayloadError:
    return aiohttp.ClientPayloadError(f"an order's answer over {MAX_ANSWER_BYTES} bytes")
