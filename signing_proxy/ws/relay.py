"""The WebSocket relay: a freshly signed upstream handshake, then frames both ways, bounded."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from signing_proxy.config import WS_PATH
from signing_proxy.errors import proxy_error
from signing_proxy.ops.logging import get_logger
from signing_proxy.ops.metrics import Metrics
from signing_proxy.proxy.forward import CALL_RECORD, USER_AGENT
from signing_proxy.proxy.headers import downstream_response_headers
from signing_proxy.proxy.live import Live, Snapshot
from signing_proxy.proxy.upstream import UpstreamSessions, classify

# How much of Kalshi's stream may wait for a slow client before the proxy cuts it off (1008).
# Module constants until the config grows a websocket section.
QUEUE_MAX_FRAMES: Final = 10_000
QUEUE_MAX_BYTES: Final = 16 * 1024 * 1024
# aiohttp's own default, stated so both directions use the same limit.
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
# Kalshi pings every 10 s, and any frame resets aiohttp's heartbeat timer, so the proxy's own
# ping goes upstream only when the link has gone quiet (a laptop that slept, a dead NAT entry).
UPSTREAM_HEARTBEAT: Final = 30.0
# Clients idle as long as they like; a ping after 30 s of silence finds the dead ones.
CLIENT_HEARTBEAT: Final = 30.0
# Seconds to wait for a peer's close reply, or for a slow client to take its last frames.
CLOSE_TIMEOUT: Final = 5.0
# A refused handshake's body is an error message; anything longer is cut here.
_MAX_REFUSAL_BODY: Final = 64 * 1024

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
class _Ending:
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


class _Session:
    """One client WebSocket and its upstream twin, relayed until either side ends it."""

    def __init__(
        self,
        request: web.Request,
        client: web.WebSocketResponse,
        upstream: aiohttp.ClientWebSocketResponse,
        limits: QueueLimits,
        on_closed: Callable[[_Session], None],
    ) -> None:
        self._request = request
        self._client = client
        self._upstream = upstream
        self._limits = limits
        self._on_closed = on_closed
        self.started = time.perf_counter()
        self.stats = SessionStats()
        self.ending: _Ending | None = None
        self._queue: asyncio.Queue[_Frame | _Ending] = asyncio.Queue()
        self._queued_bytes = 0
        self._ended = asyncio.Event()
        self.closed = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None

    def end(self, ending: _Ending) -> None:
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
            self.end(_Ending("proxy", 1011, 1001, "relay cancelled"))
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
            self.end(_Ending("proxy", 1011, 1011, "connection reset"))
        except Exception as exc:
            self.end(_Ending("proxy", 1011, 1011, f"relay error: {type(exc).__name__}"))

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
                self.end(_Ending("client", code, _passed_on(code, 1001), msg.extra or ""))
                return
            else:  # CLOSING (the proxy is closing), CLOSED or ERROR: gone without a close frame
                code = self._client.close_code or 1006
                self.end(_Ending("client", code, 1001, "client went away"))
                return

    async def _from_upstream(self) -> None:
        while True:
            msg = await self._upstream.receive()
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                if not self._enqueue(msg.data):
                    return
            elif msg.type is WSMsgType.CLOSE:
                code = _received_code(int(msg.data))
                ending = _Ending("upstream", _passed_on(code, 1011), code, msg.extra or "")
                await self._upstream_ended(ending)
                return
            else:  # CLOSED or ERROR: the connection dropped without a close frame
                code = self._upstream.close_code or 1006
                await self._upstream_ended(_Ending("upstream", 1011, code, _UPSTREAM_LOST))
                return

    def _enqueue(self, data: str | bytes) -> bool:
        size = _utf8_len(data) if isinstance(data, str) else len(data)
        frames, queued = self._queue.qsize() + 1, self._queued_bytes + size
        if frames > self._limits.frames or queued > self._limits.bytes:
            limits = f"{self._limits.frames} frames, {self._limits.bytes} bytes"
            reason = f"client too slow: queue for it is full ({limits})"
            self.end(_Ending("proxy", 1008, 1001, reason))
            return False
        self._queue.put_nowait(_Frame(data, size))
        self._queued_bytes = queued
        self.stats.queue_peak_frames = max(self.stats.queue_peak_frames, frames)
        self.stats.queue_peak_bytes = max(self.stats.queue_peak_bytes, queued)
        return True

    async def _upstream_ended(self, ending: _Ending) -> None:
        # Frames already queued reach the client before its close frame, unless the client
        # is too slow to take them in time.
        self._queue.put_nowait(ending)
        await asyncio.sleep(CLOSE_TIMEOUT)
        self.end(ending)

    async def _to_client(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Ending):
                self.end(item)
                return
            self._queued_bytes -= item.size
            if isinstance(item.data, str):
                await self._client.send_str(item.data)
            else:
                await self._client.send_bytes(item.data)
            self.stats.frames_out += 1
            self.stats.bytes_out += item.size

    async def _close_client(self, ending: _Ending) -> None:
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

    async def _close_upstream(self, ending: _Ending) -> None:
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


class WebSocketRelay:
    """Relays /trade-api/ws/v2: a signed handshake upstream first, then frames both ways."""

    def __init__(
        self,
        live: Live,
        metrics: Metrics,
        sessions: UpstreamSessions,
        limits: QueueLimits | None = None,
        max_sessions: int = 64,
    ) -> None:
        # A reload swaps the signer and config, so both are read at each handshake.
        self._live = live
        self._metrics = metrics
        self._upstream = sessions
        self.limits = limits or QueueLimits()
        self._max_sessions = max_sessions
        # Handshakes under way count against limits.websocket_sessions too, so a burst of
        # them cannot overshoot it.
        self._opening = 0
        self._sessions: set[_Session] = set()
        # Frames of sessions already closed; open ones are added at scrape time, so the
        # relay pays nothing per frame for metrics.
        self._closed_frames = [0, 0]
        metrics.watch_websockets(self.frame_totals, lambda: len(self._sessions))

    @property
    def open_sessions(self) -> int:
        """How many sessions are relaying now."""
        return len(self._sessions)

    def frame_totals(self) -> tuple[int, int]:
        """Frames relayed so far, (client to upstream, upstream to client)."""
        to_upstream, to_client = self._closed_frames
        for session in self._sessions:
            to_upstream += session.stats.frames_in
            to_client += session.stats.frames_out
        return to_upstream, to_client

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Open the upstream WebSocket, then accept the client and relay until either closes."""
        client = web.WebSocketResponse(
            timeout=CLOSE_TIMEOUT,
            heartbeat=CLIENT_HEARTBEAT,
            # Compressing frames for a client on the same host costs CPU and saves nothing.
            compress=False,
            max_msg_size=MAX_FRAME_BYTES,
        )
        if not client.can_prepare(request).ok:
            return proxy_error(
                426,
                "proxy_websocket_required",
                f"{WS_PATH} accepts WebSocket connections only",
                headers={"Upgrade": "websocket"},
            )
        if len(self._sessions) + self._opening >= self._max_sessions:
            request[CALL_RECORD].error = "proxy_websocket_limit"
            return proxy_error(
                503,
                "proxy_websocket_limit",
                f"limits.websocket_sessions ({self._max_sessions}) are open; try again later",
                headers={"Retry-After": "1"},
            )
        # One generation of settings for the whole handshake, as for REST calls.
        handshake = _Handshake(request, self._live.current)
        self._opening += 1
        try:
            opened = await self._connect(handshake)
            if isinstance(opened, web.StreamResponse):
                return opened
            try:
                await client.prepare(request)
            except BaseException:
                await opened.close(code=1001)
                raise
        finally:
            self._opening -= 1
        await self._relay(handshake, client, opened)
        return client

    async def close_all(self, code: int = 1001, message: bytes = b"proxy shutting down") -> None:
        """Close every session, telling both sides `code`; returns once all are closed."""
        sessions = list(self._sessions)
        reason = message.decode(errors="replace")
        for session in sessions:
            session.end(_Ending("proxy", code, code, reason))
        await asyncio.gather(*(session.closed.wait() for session in sessions))

    async def on_shutdown(self, app: web.Application) -> None:
        """The app's on_shutdown hook: close every session with 1001."""
        await self.close_all()

    def _session(self) -> aiohttp.ClientSession:
        # Its own pool: WebSocket sessions never take the connections REST calls need.
        return self._upstream.websocket

    async def _connect(
        self, handshake: _Handshake
    ) -> aiohttp.ClientWebSocketResponse | web.Response:
        record = handshake.record
        timeout = handshake.upstream.timeout
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                return await self._session().ws_connect(
                    handshake.url,
                    headers=handshake.headers(upgrade=False),
                    heartbeat=UPSTREAM_HEARTBEAT,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                    max_msg_size=MAX_FRAME_BYTES,
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 101:  # the upstream said yes but broke the protocol
                message = "the upstream accepted the WebSocket handshake but broke the protocol"
                return handshake.fail(502, "proxy_upstream_protocol_error", message)
            return await self._refused(handshake, exc.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The codes and reasons of REST calls; never the exception's text, which can quote
            # what the upstream sent.
            failure = classify(exc, timeout)
            return handshake.fail(failure.status, failure.code, failure.message)
        finally:
            record.upstream_ms = round((time.perf_counter() - started) * 1000, 3)

    async def _refused(self, handshake: _Handshake, status: int) -> web.Response:
        """Kalshi's own status and body for a refused handshake."""
        # aiohttp's ws_connect drops the body of a refused handshake (its exception carries
        # the status only), so the handshake is sent once more as a plain request to read it.
        headers = handshake.headers(upgrade=True)
        try:
            async with (
                asyncio.timeout(handshake.upstream.timeout),
                self._session().get(handshake.url, headers=headers, allow_redirects=False) as resp,
            ):
                if resp.status == 101:  # accepted this time: nothing to show but the refusal
                    raise aiohttp.ClientError("handshake accepted on replay")
                body = await resp.content.read(_MAX_REFUSAL_BODY)
                return web.Response(
                    status=resp.status, body=body, headers=_refusal_headers(resp.headers)
                )
        except (aiohttp.ClientError, TimeoutError):
            message = f"the upstream refused the WebSocket handshake with HTTP {status}"
            return handshake.fail(502, "proxy_upstream_refused", message)

    async def _relay(
        self,
        handshake: _Handshake,
        client: web.WebSocketResponse,
        upstream: aiohttp.ClientWebSocketResponse,
    ) -> None:
        request, record = handshake.request, handshake.record
        fields: dict[str, object] = {
            "request_id": record.request_id,
            "client": record.client or request.remote,
            "upstream": handshake.url.host_port_subcomponent,
        }
        get_logger().info("ws_open", **fields)
        self._metrics.ws_sessions_total.inc()

        def closed(session: _Session) -> None:
            self._sessions.discard(session)
            stats = session.stats
            self._closed_frames[0] += stats.frames_in
            self._closed_frames[1] += stats.frames_out
            record.bytes_in, record.bytes_out = stats.bytes_in, stats.bytes_out
            _log_close(fields, session.ending, stats, time.perf_counter() - session.started)

        session = _Session(request, client, upstream, self.limits, closed)
        self._sessions.add(session)
        await session.run()


class _Handshake:
    """One client's upstream handshake: where it goes and how it is signed."""

    def __init__(self, request: web.Request, snapshot: Snapshot) -> None:
        self.request = request
        self.record = request[CALL_RECORD]
        self.upstream = snapshot.config.upstream
        self._signer = snapshot.signer
        # The client's query, if any, goes upstream as sent; the signature never covers it.
        _, _, query = request.raw_path.partition("?")
        suffix = f"?{query}" if query else ""
        self.url = URL(self.upstream.ws_url + suffix, encoded=True)

    def headers(self, *, upgrade: bool) -> dict[str, str]:
        """Freshly signed handshake headers; `upgrade` adds what ws_connect adds itself."""
        # Only what names the client program travels; the rest of the handshake is the proxy's.
        headers = {"User-Agent": self.request.headers.get("User-Agent", USER_AGENT)}
        if upgrade:
            headers.update(
                {
                    "Connection": "Upgrade",
                    "Upgrade": "websocket",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                }
            )
        headers.update(self._signer.headers("GET", WS_PATH))
        return headers

    def fail(self, status: int, code: str, message: str) -> web.Response:
        """A proxy error for this handshake, recorded (code and reason) for the call's log event."""
        self.record.error = f"{code}: {message}"
        return proxy_error(status, code, f"{message} ({self.url.origin()})")


def _refusal_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    headers = downstream_response_headers(upstream)
    # The body may have been cut, and aiohttp sets the length of what is sent.
    headers.popall("Content-Length", None)
    return headers


def _log_close(
    fields: dict[str, object],
    ending: _Ending | None,
    stats: SessionStats,
    seconds: float,
) -> None:
    ending = ending or _Ending("proxy", 1011, 1011, "relay cancelled")
    event = {
        **fields,
        "duration_ms": round(seconds * 1000, 3),
        "frames_in": stats.frames_in,
        "bytes_in": stats.bytes_in,
        "frames_out": stats.frames_out,
        "bytes_out": stats.bytes_out,
        "queue_peak_frames": stats.queue_peak_frames,
        "queue_peak_bytes": stats.queue_peak_bytes,
        "closed_by": ending.closed_by,
        "close_code": ending.client_code,
        "upstream_close_code": ending.upstream_code,
    }
    # Only the proxy's own reasons are logged: a peer's close reason is frame content.
    if ending.closed_by == "proxy":
        event["reason"] = ending.reason
    logger = get_logger()
    if ending.closed_by == "client" or ending.client_code in (1000, 1001):
        logger.info("ws_close", **event)
    else:
        logger.warning("ws_close", **event)


WS_RELAY = web.AppKey("ws_relay", WebSocketRelay)
