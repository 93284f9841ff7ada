"""The lane: calls go upstream on kept-alive HTTP/1.1 connections of their own, head and
body in one write, with no client library in between.

aiohttp's ClientSession.request costs about 0.2 ms of Python per call more than this
(bench/README.md: measured side by side on loopback), and every call pays it. Order calls
have a lane of their own (never queued behind reads) and their answers are read whole
(the journal needs their ids); other calls' answers are handed to the relay as they
arrive, as aiohttp's are (it reads small ones whole), the upstream paused while the
client is slower. TLS is the same: the same SSLContext, verifying the certificate and the
host name. Failures are raised as the aiohttp errors upstream.classify names, so a client
is told the same words whichever way its call went. Nothing is ever sent twice: a
connection that breaks is closed, never retried.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, Literal, cast

import aiohappyeyeballs
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
# Reading from the upstream pauses past this many bytes not yet taken by the relay.
_HIGH_WATER: Final = 256 * 1024
_BODYLESS_METHODS: Final = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_BREAKS_FRAMING: Final = re.compile("[\r\n\0]")
_HTTP: Final = b"HTTP/1."
_HEX: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: (.*))?")
# RFC 9110 section 5.6.2: a header's name is a token.
_TOKEN: Final = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# A CR or LF not in a CRLF, or a NUL: no line of an answer's head may hold one.
_BREAKS_LINE: Final = re.compile(rb"\r(?!\n)|(?<!\r)\n|\0")
_FRAMED_HERE: Final = frozenset({"host", "content-length", "transfer-encoding"})
# The largest Content-Length a client's parser takes (llhttp's: a signed 64-bit count).
_MAX_LENGTH: Final = 2**63 - 1
_LENGTH_DIGITS: Final = len(str(_MAX_LENGTH))
# How an answer's body ends: after its stated length, after its last chunk, at the close.
Framing = Literal["length", "chunked", "close"]
# The pieces a streamed body is read in when it is read whole (read()).
_PIECE: Final = 64 * 1024
# Seconds after which the next of a name's addresses is tried, the last not having
# connected yet (aiohttp's client waits as long).
_NEXT_ADDRESS_AFTER: Final = 0.25
# What getaddrinfo gives for one address; a Resolver gives a name's addresses.
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
Resolver = Callable[[str, int], Awaitable[Sequence[AddrInfo]]]


class LaneAnswer:
    """The answer, with the parts of aiohttp.ClientResponse the relay uses: read whole, or
    (`streamed`) its body still arriving."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: CIMultiDict[str],
        body: bytes,
        streamed: StreamedBody | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = CIMultiDictProxy(headers)
        self.body = body
        self.streamed = streamed
        self.content: _Content | StreamedBody = streamed or _Content(body)

    @property
    def whole(self) -> bool:
        """Whether the body is all here."""
        return self.streamed is None

    @property
    def content_length(self) -> int | None:
        """The body's length (None for a streamed body of unknown size)."""
        if self.streamed is not None:
            return self.streamed.length
        return len(self.body)

    async def read(self) -> bytes:
        """The whole body."""
        return self.body if self.streamed is None else await self.streamed.read()

    def release(self) -> None:
        """A streamed body not read to its end closes its connection (it is out of step)."""
        if self.streamed is not None:
            self.streamed.abandon()


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
        # Seconds a wait for more of a streamed body may take (None: bounded by the caller).
        self.read_timeout: float | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are no asyncio.Transport subclass, but are one in all but name.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _HIGH_WATER and not self._paused and self.transport is not None:
            self.transport.pause_reading()  # a slow client: the upstream waits, memory stays flat
            self._paused = True
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
        await self._wait()

    async def _wait(self) -> None:
        """Wait for more bytes, or the end: reading goes on (if paused) while someone waits.
        TimeoutError past read_timeout (a timer only while waiting, as aiohttp's reads)."""
        self.resume_reading()
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        if self.read_timeout is None:
            await waiter
            return
        timer = loop.call_later(self.read_timeout, _time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()

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
            if len(self._buffer) > limit or b"\n" in self._buffer:
                raise _not_http()  # a bare LF: no use waiting for a CRLF
            await self._more()
        chunk = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return chunk

    async def head(self) -> bytes:
        """The answer's status line and headers, up to the empty line."""
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if (
                len(self._buffer) > _MAX_HEAD_BYTES
                or not _HTTP.startswith(self._buffer[:7])
                or b"\n\n" in self._buffer  # lines ended by bare LFs: it never ends
            ):
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
            await self._wait()
        return bytes(self._buffer)

    async def piece(self, n: int) -> bytes:
        """Up to `n` bytes (at least one) of a body still arriving: what is here, or the next."""
        while not self._buffer:
            if self.broken:
                raise aiohttp.ClientPayloadError("the answer was cut short")
            await self._wait()
        return self._cut(n)

    async def piece_until_close(self, n: int) -> bytes:
        """Up to `n` bytes of a body that ends when the upstream closes; b"" at its end."""
        while not self._buffer and not self.broken:
            await self._wait()
        return self._cut(n)

    def _cut(self, n: int) -> bytes:
        """The first `n` bytes held (or all), copied once: a body streams through here."""
        if len(self._buffer) <= n:
            chunk = bytes(self._buffer)
            self._buffer.clear()
            return chunk
        with memoryview(self._buffer) as view:
            chunk = bytes(view[:n])
        del self._buffer[:n]  # from the front: CPython moves a start offset, not the bytes
        return chunk

    def resume_reading(self) -> None:
        """Read from the upstream again, if paused."""
        if self._paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._paused = False

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


class Lane:
    """Kept-alive connections to upstream origins; at most `limit` in use per origin."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        limit: int | None = None,
        resolve: Resolver | None = None,
    ) -> None:
        self._ssl = ssl_context or ssl.create_default_context()
        self._resolve = resolve or _addresses
        self._idle: dict[tuple[str, int, bool], deque[_Connection]] = {}
        self._limit = limit
        self._slots: dict[tuple[str, int, bool], asyncio.Semaphore] = {}

    async def request(
        self,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        body: bytes | None,
        connect_timeout: float,
        *,
        whole: bool = True,
        read_timeout: float | None = None,
    ) -> LaneAnswer:
        """Send one call and read its answer's head, and its body `whole` or as it arrives
        (`read_timeout` a read); aiohttp's errors when it fails."""
        origin = (url.raw_host or "", url.port or 0, url.scheme == "https")
        message = _request_bytes(method, url, headers, body)
        slot = self._slot(origin)
        if slot is not None:
            await slot.acquire()
        try:
            connection = self._idle_connection(origin) or await self._connect(
                origin, connect_timeout
            )
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        done = functools.partial(self._done, origin, connection, slot)
        try:
            assert connection.transport is not None
            connection.transport.write(message)
            status, reason, answer_headers, keep_alive = await _answer_head(connection)
            framing = _framing(method, status, answer_headers)
            if framing is not None and not whole:
                streamed = StreamedBody(connection, *framing, read_timeout, done, keep_alive)
                return LaneAnswer(status, reason, answer_headers, b"", streamed)
            answer = await _whole_body(connection, framing, answer_headers)
        except BaseException:
            done(False)  # its state is unknown: it never carries another call
            raise
        done(keep_alive and answer.keep_alive)
        return LaneAnswer(status, reason, answer_headers, answer.body)

    def _slot(self, origin: tuple[str, int, bool]) -> asyncio.Semaphore | None:
        if self._limit is None:
            return None
        slot = self._slots.get(origin)
        if slot is None:
            slot = self._slots[origin] = asyncio.Semaphore(self._limit)
        return slot

    def _done(
        self,
        origin: tuple[str, int, bool],
        connection: _Connection,
        slot: asyncio.Semaphore | None,
        reusable: bool,
    ) -> None:
        """The call is over: its connection kept for the next (if `reusable`) or closed."""
        connection.read_timeout = None
        if reusable and not connection.broken:
            # A body's last bytes may have paused reading; idle, it must see the upstream's
            # close (a keep-alive timeout), or the next call goes into a closed connection.
            connection.resume_reading()
            self._park(origin, connection)
        else:
            connection.close()
        if slot is not None:
            slot.release()

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
                # Every address the name has, tried as aiohttp's client tries them: the next
                # one 0.25 s after the last began (happy eyeballs, RFC 8305), so an address
                # that drops the connection (an IPv6 route that goes nowhere, a stale record)
                # costs 0.25 s, not the whole connect_timeout.
                sock = await aiohappyeyeballs.start_connection(
                    await self._resolve(host, port), happy_eyeballs_delay=_NEXT_ADDRESS_AFTER
                )
                try:
                    _, connection = await loop.create_connection(
                        _Connection,
                        sock=sock,
                        ssl=self._ssl if tls else None,
                        server_hostname=host if tls else None,
                    )
                except BaseException:
                    sock.close()
                    raise
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
        """Close every idle connection (those in use close as their calls end)."""
        for idle in self._idle.values():
            while idle:
                idle.pop().close()


async def _addresses(host: str, port: int) -> Sequence[AddrInfo]:
    """The addresses `host` has, looked up as aiohttp's client looks them up."""
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        # A name: only the address families this host has (AI_ADDRCONFIG, as aiohttp's
        # resolver asks), so an IPv4-only host does not wait for AAAA records too.
        flags = socket.AI_ADDRCONFIG
    else:
        flags = socket.AI_NUMERICHOST  # a literal: nothing to look up
    loop = asyncio.get_running_loop()
    return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags)


def _request_bytes(method: str, url: URL, headers: CIMultiDict[str], body: bytes | None) -> bytes:
    """The request's head and body, as one buffer for one write."""
    target = url.raw_path_qs
    host = url.host_subcomponent or ""  # an IPv6 address in its brackets
    default_port = 443 if url.scheme == "https" else 80
    authority = host if url.port in (None, default_port) else f"{host}:{url.port}"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {authority}"]
    for name, value in headers.items():
        if name.lower() in _FRAMED_HERE:
            continue  # the upstream's own name, and the body's length, are written here
        lines.append(f"{name}: {value}")
    if _BREAKS_FRAMING.search("".join(lines[2:])):  # one scan of every header's name and value
        raise ValueError("a header would break the request's framing")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method not in _BODYLESS_METHODS:
        lines.append("Content-Length: 0")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    return head + body if body else head


async def _answer_head(connection: _Connection) -> tuple[int, str, CIMultiDict[str], bool]:
    """The answer's status, reason and headers (past 1xx interim ones), and whether the
    connection may carry another call."""
    while True:
        try:
            status, reason, headers, keep_alive = _parse_head(await connection.head())
        except aiohttp.ServerDisconnectedError as exc:
            raise ConnectionLost("the upstream connection broke before an answer") from exc
        if status >= 200:
            _check_length(headers)
            return status, reason, headers, keep_alive


def _framing(
    method: str, status: int, headers: CIMultiDict[str]
) -> tuple[Framing, int | None] | None:
    """How an answer's body is framed (and its length, when stated), or None when it has
    none (HEAD, 204 and 304). Its length headers were checked (_check_length)."""
    if method == "HEAD" or status in (204, 304):
        return None
    if (coding := _transfer_coding(headers)) is not None:
        return coding, None
    length = headers.get("Content-Length")
    if length is None:
        return "close", None
    return "length", _length(length)


def _transfer_coding(headers: CIMultiDict[str]) -> Literal["chunked", "close"] | None:
    """How a body sent with Transfer-Encoding ends (None: it has none): in chunks when
    chunked is the last of its codings, all its headers read in order, else at the close
    (RFC 9112 section 6.3)."""
    codings = [
        coding.strip().lower()
        for value in headers.getall("Transfer-Encoding", [])
        for coding in value.split(",")
        if coding.strip()
    ]
    if not codings:
        return None
    return "chunked" if codings[-1] == "chunked" else "close"


class _Whole:
    """A body read whole, and whether the connection may carry another call after it."""

    __slots__ = ("body", "keep_alive")

    def __init__(self, body: bytes, keep_alive: bool = True) -> None:
        self.body = body
        self.keep_alive = keep_alive


async def _whole_body(
    connection: _Connection, framing: tuple[Framing, int | None] | None, headers: CIMultiDict[str]
) -> _Whole:
    """The whole body of an answer framed so (none without a framing), up to MAX_ANSWER_BYTES."""
    if framing is None:
        return _Whole(b"")
    kind, length = framing
    if kind == "chunked":
        body = await _chunked(connection)
        headers.popall("Transfer-Encoding", None)  # the relay sends it with a length now
        return _Whole(body)
    if kind == "length" and length is not None:
        if length > MAX_ANSWER_BYTES:
            raise _too_large()
        return _Whole(await connection.take(length))
    return _Whole(await connection.rest(), keep_alive=False)


async def _chunked(connection: _Connection) -> bytes:
    """A chunked body, joined."""
    parts: list[bytes] = []
    total = 0
    while size := await _chunk_size(connection):
        total += size
        if total > MAX_ANSWER_BYTES:
            raise _too_large()
        parts.append(await connection.take(size))
        await _chunk_end(connection)
    return b"".join(parts)


async def _chunk_size(connection: _Connection) -> int:
    """The next chunk's size; at the last (0), its trailers are read past (not relayed)."""
    size_line = (await connection.line(1024)).split(b";", 1)[0].strip()
    if not _HEX.fullmatch(size_line):  # int() would also take "+1f", "0x1f" and "1_f"
        raise aiohttp.ClientPayloadError("a chunk's size could not be read")
    size = int(size_line, 16)
    if size == 0:
        trailers = 0  # bounded as a head is: an endless run of trailers is no answer
        while line := await connection.line(_MAX_HEAD_BYTES):
            trailers += len(line) + 2
            if trailers > _MAX_HEAD_BYTES:
                raise aiohttp.ClientPayloadError("the answer's trailers ran past 64 KiB")
    return size


async def _chunk_end(connection: _Connection) -> None:
    if await connection.take(2) != b"\r\n":
        raise aiohttp.ClientPayloadError("a chunk did not end where it said")


class StreamedBody:
    """An answer's body as it arrives, read in pieces by the relay (aiohttp's
    StreamReader's read, iter_chunked, at_eof). Its connection is handed back once the
    body has been read to its end, and closed if it is abandoned before."""

    def __init__(
        self,
        connection: _Connection,
        framing: Framing,
        length: int | None,
        read_timeout: float | None,
        done: Callable[[bool], None],
        keep_alive: bool,
    ) -> None:
        self.length = length
        self._connection = connection
        self._framing = framing
        self._left = length or 0  # of the body (length) or of the current chunk (chunked)
        connection.read_timeout = read_timeout  # each wait for more of it (it is this call's)
        self._done: Callable[[bool], None] | None = done
        self._keep_alive = keep_alive and framing != "close"
        self._eof = False
        if framing == "length" and not length:
            self._eof = True  # Content-Length: 0, nothing to read
            self._finish(self._keep_alive)

    def at_eof(self) -> bool:
        """Whether the body has been read to its end."""
        return self._eof

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all the rest when n < 0); b"" at the end."""
        if n < 0:
            parts = []
            while part := await self.read(_PIECE):
                parts.append(part)
            return b"".join(parts)
        if self._eof:
            return b""
        try:
            return await self._piece(n)
        except BaseException:
            self.abandon()
            raise

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        """The body in pieces of at most `n` bytes."""
        while chunk := await self.read(n):
            yield chunk

    def abandon(self) -> None:
        """Stop here: the connection is closed unless the body was read to its end."""
        self._eof = True
        self._finish(False)

    async def _piece(self, n: int) -> bytes:
        connection = self._connection
        if self._framing == "close":
            chunk = await connection.piece_until_close(n)
            if not chunk:
                self._eof = True
                self._finish(False)
            return chunk
        if self._framing == "chunked" and self._left == 0:
            self._left = await _chunk_size(connection)
            if self._left == 0:
                self._eof = True
                self._finish(self._keep_alive)
                return b""
        chunk = await connection.piece(min(n, self._left))
        self._left -= len(chunk)
        if self._left == 0:
            if self._framing == "chunked":
                await _chunk_end(connection)
            else:
                self._eof = True
                self._finish(self._keep_alive)
        return chunk

    def _finish(self, reusable: bool) -> None:
        if self._done is not None:
            done, self._done = self._done, None
            done(reusable)


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _parse_head(head: bytes) -> tuple[int, str, CIMultiDict[str], bool]:
    if _BREAKS_LINE.search(head):
        # Kept, they would reach the client's head (aiohttp's server refuses to write them).
        raise _not_http()
    lines = head.split(b"\r\n")
    # As llhttp reads it: HTTP/1.0 or 1.1, three digits from 100 (99 is no interim answer).
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise _not_http()
    version, status, reason = status_line.groups(b"")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):  # relayed: the client's parser checks too
            raise _not_http()
        headers.add(name.decode("ascii"), value.strip().decode("utf-8", "surrogateescape"))
    connection = headers.get("Connection", "").lower()
    # HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told not to.
    keep_alive = "keep-alive" in connection if version == b"0" else "close" not in connection
    return int(status), reason.decode("latin-1"), headers, keep_alive


def _check_length(headers: CIMultiDict[str]) -> None:
    """Refuse an answer whose length is stated twice, or both as a length and as chunks, or
    unreadably, whatever its method and status (llhttp refuses these): its headers are
    relayed, and the client would frame the body otherwise than the lane did."""
    lengths = headers.getall("Content-Length", [])
    if len(lengths) > 1 or (lengths and "Transfer-Encoding" in headers):
        raise _not_http()
    if lengths:
        _length(lengths[0])


def _length(value: str) -> int:
    # isdigit alone takes '³'; int() refuses over 4300 digits (a ValueError, not ours).
    if not (value.isascii() and value.isdigit()) or len(value.lstrip("0")) > _LENGTH_DIGITS:
        raise _not_http()  # as aiohttp's parser words an unreadable Content-Length
    size = int(value)
    if size > _MAX_LENGTH:
        raise _not_http()  # llhttp's "Content-Length overflow": no client could frame it
    return size


def _not_http() -> aiohttp.ClientResponseError:
    info = aiohttp.RequestInfo(URL(), "", CIMultiDictProxy(CIMultiDict()), URL())
    return aiohttp.ClientResponseError(info, ())


def _too_large() -> aiohttp.ClientPayloadError:
    return aiohttp.ClientPayloadError(f"an order's answer over {MAX_ANSWER_BYTES} bytes")
