"""One relayed WebSocket session: frames both ways, a bounded queue for a slow client,
and a close that tells each side what happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

import aiohttp
from aiohttp import WSMsgType, web

# How much of Kalshi's stream may wait for a slow client before the proxy cuts it off (1008).
# Module constants until the config grows a websocket section.
QUEUE_MAX_FRAMES: Final = 10_000
QUEUE_MAX_BYTES: Final = 16 * 1024 * 1024
# Seconds to wait for a peer's close reply, or for a slow client to take its last frames.
CLOSE_TIMEOUT: Final = 5.0

# Codes an endpoint may put in a close frame (RFC 6455 7.4); 1005, 1006 and 1015 never travel.
_SENDABLE_CODES: Final = frozenset(range(1000, 1015)) - {1004, 1005, 1006}
_UPSTREAM_LOST: Final = "upstream connection lost"

ClosedBy = Literal["client", "upstream", "proxy"]


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """How many frames and bytes from Kalshi may wait for one slow client."""

    frames: int = QUEUE_MAX_FRAMES
    bytes: int = QUEUE_MAX_BYTES


@dataclass(frozen=True, slots=True)
class Ending:
    """Why a session ends and what each side is (or was) told."""

    closed_by: ClosedBy
    client_code: int
    upstream_code: int
    reason: str


@dataclass(slots=True)
class SessionStats:
    """Counters for the ws_close event: never frame contents."""

    frames_in: int = 0  # client -> Kalshi
    bytes_in: int = 0
    frames_out: int = 0  # Kalshi -> client
    bytes_out: int = 0
    queue_peak_frames: int = 0
    queue_peak_bytes: int = 0


@dataclass(frozen=True, slots=True)
class _Frame:
    data: str | bytes
    size: int


def _utf8_len(text: str) -> int:
    # Kalshi's JSON is ASCII; only other text pays for an encode just to be counted.
    return len(text) if text.isascii() else len(text.encode())


def _sendable(code: int | None) -> bool:
    return code is not None and (code in _SENDABLE_CODES or 3000 <= code <= 4999)


def _received_code(code: int) -> int:
    # aiohttp reports a close frame without a code as 0; RFC 6455 calls that 1005.
    return code or 1005


def _passed_on(code: int, fallback: int) -> int:
    """The code to send the other side when one side closed with `code`."""
    if _sendable(code):
        return code
    return 1000 if code == 1005 else fallback  # no code at all is a normal close


def _reason_bytes(reason: str) -> bytes:
    # A close frame's reason must fit in 123 bytes.
    return reason.encode()[:123]


class Session:
    """One client WebSocket and its upstream twin, relayed until either side ends it."""

    def __init__(
        self,
        request: web.Request,
        client: web.WebSocketResponse,
        upstream: aiohttp.ClientWebSocketResponse,
        limits: QueueLimits,
        on_closed: Callable[[Session], None],
    ) -> None:
        self._request = request
        self._client = client
        self._upstream = upstream
        self._limits = limits
        self._on_closed = on_closed
        self.started = time.perf_counter()
        self.stats = SessionStats()
        self.ending: Ending | None = None
        self._queue: asyncio.Queue[_Frame | Ending] = asyncio.Queue()
        self._queued_bytes = 0
        self._ended = asyncio.Event()
        self.closed = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None

    def end(self, ending: Ending) -> None:
        """Record why the session ends; the first reason wins."""
        if self.ending is None:
            self.ending = ending
            self._ended.set()

    async def run(self) -> None:
        """Relay until one side ends the session, then close both sides."""
        pumps = [
            asyncio.create_task(self._guard(self._from_client())),
            asyncio.create_task(self._guard(self._from_upstream())),
            asyncio.create_task(self._guard(self._to_client())),
        ]
        try:
            await self._ended.wait()
        finally:
            # Closing runs in its own task: it must finish even when the handler is cancelled
            # (aiohttp may cancel it once the client's connection is gone).
            self._closing = asyncio.create_task(self._close(pumps))
            await asyncio.shield(self._closing)

    async def _close(self, pumps: list[asyncio.Task[None]]) -> None:
        try:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self.end(Ending("proxy", 1011, 1001, "relay cancelled"))
            assert self.ending is not None
            await asyncio.gather(self._close_client(self.ending), self._close_upstream(self.ending))
        finally:
            self.closed.set()
            self._on_closed(self)

    async def _guard(self, pump: Awaitable[None]) -> None:
        try:
            await pump
        except ConnectionError:
            # A write to a side that has just gone; that side's reader reports how it went.
            # Should it not, the session still ends rather than hang.
            await asyncio.sleep(CLOSE_TIMEOUT)
            self.end(Ending("proxy", 1011, 1011, "connection reset"))
        except Exception as exc:
            self.end(Ending("proxy", 1011, 1011, f"relay error: {type(exc).__name__}"))

    async def _from_client(self) -> None:
        while True:
            msg = await self._client.receive()
            if msg.type is WSMsgType.TEXT:
                self.stats.frames_in += 1
                self.stats.bytes_in += _utf8_len(msg.data)
                await self._upstream.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                self.stats.frames_in += 1
                self.stats.bytes_in += len(msg.data)
                await self._upstream.send_bytes(msg.data)
            elif msg.type is WSMsgType.CLOSE:
                code = _received_code(int(msg.data))
                self.end(Ending("client", code, _passed_on(code, 1001), msg.extra or ""))
                return
            else:  # CLOSING (the proxy is closing), CLOSED or ERROR: gone without a close frame
                code = self._client.close_code or 1006
                self.end(Ending("client", code, 1001, "client went away"))
                return

    async def _from_upstream(self) -> None:
        while True:
            msg = await self._upstream.receive()
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                if not self._enqueue(msg.data):
                    return
            elif msg.type is WSMsgType.CLOSE:
                code = _received_code(int(msg.data))
                ending = Ending("upstream", _passed_on(code, 1011), code, msg.extra or "")
                await self._upstream_ended(ending)
                return
            else:  # CLOSED or ERROR: the connection dropped without a close frame
                code = self._upstream.close_code or 1006
                await self._upstream_ended(Ending("upstream", 1011, code, _UPSTREAM_LOST))
                return

    def _enqueue(self, data: str | bytes) -> bool:
        size = _utf8_len(data) if isinstance(data, str) else len(data)
        frames, queued = self._queue.qsize() + 1, self._queued_bytes + size
        if frames > self._limits.frames or queued > self._limits.bytes:
            limits = f"{self._limits.frames} frames, {self._limits.bytes} bytes"
            reason = f"client too slow: queue for it is full ({limits})"
            self.end(Ending("proxy", 1008, 1001, reason))
            return False
        self._queue.put_nowait(_Frame(data, size))
        self._queued_bytes = queued
        self.stats.queue_peak_frames = max(self.stats.queue_peak_frames, frames)
        self.stats.queue_peak_bytes = max(self.stats.queue_peak_bytes, queued)
        return True

    async def _upstream_ended(self, ending: Ending) -> None:
        # Frames already queued reach the client before its close frame, unless the client
        # is too slow to take them in time.
        self._queue.put_nowait(ending)
        await asyncio.sleep(CLOSE_TIMEOUT)
        self.end(ending)

    async def _to_client(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, Ending):
                self.end(item)
                return
            self._queued_bytes -= item.size
            if isinstance(item.data, str):
                await self._client.send_str(item.data)
            else:
                await self._client.send_bytes(item.data)
            self.stats.frames_out += 1
            self.stats.bytes_out += item.size

    async def _close_client(self, ending: Ending) -> None:
        if self._client.closed:
            return
        transport = self._request.transport
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._client.close(
                    code=ending.client_code, message=_reason_bytes(ending.reason)
                )
        except TimeoutError:
            # A client that reads nothing never takes the close frame either: drop it, so its
            # unsent frames do not stay buffered.
            if transport is not None:
                _drop_if_stuck(transport)
        except asyncio.CancelledError:
            if not _drain_was_cancelled():
                raise
            # The close frame is written and aiohttp is closing the connection, which flushes
            # in the background; a client that never reads is dropped after the usual wait.
            if transport is not None:
                asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, _drop_if_stuck, transport)

    async def _close_upstream(self, ending: Ending) -> None:
        if self._upstream.closed:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._upstream.close(
                    code=ending.upstream_code, message=_reason_bytes(ending.reason)
                )
        except TimeoutError:
            pass  # aiohttp has dropped the connection already
        except asyncio.CancelledError:
            if not _drain_was_cancelled():
                raise
            # aiohttp has dropped the connection after writing the close frame.


def _drop_if_stuck(transport: asyncio.Transport) -> None:
    # Data still unsent means the client stopped reading. A transport that has flushed has
    # closed itself, and aborting it then would fail.
    if transport.get_write_buffer_size():
        transport.abort()


def _drain_was_cancelled() -> bool:
    """Whether a CancelledError came from a stopped pump's drain, not from this task's cancel.

    aiohttp's writers on one connection share a single drain future; cancelling a pump that
    waits on it cancels the future, and the next writer (the close) sees CancelledError.
    """
    task = asyncio.current_task()
    return task is not None and not task.cancelling()
