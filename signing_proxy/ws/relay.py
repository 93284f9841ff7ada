"""The WebSocket relay: a freshly signed upstream handshake, then frames both ways, bounded."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Awaitable, Callable
from typing import Final

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from signing_proxy.config import MARGIN_WS_PATH
from signing_proxy.errors import proxy_error
from signing_proxy.ops.logging import get_logger
from signing_proxy.ops.metrics import Metrics
from signing_proxy.proxy.access import CLIENT
from signing_proxy.proxy.calls import CALL_RECORD
from signing_proxy.proxy.forward import USER_AGENT
from signing_proxy.proxy.headers import downstream_response_headers
from signing_proxy.proxy.live import Live, Snapshot
from signing_proxy.proxy.paths import ROUTE
from signing_proxy.proxy.upstream import UpstreamSessions, classify
from signing_proxy.ws.session import (
    CLOSE_TIMEOUT,
    Ending,
    QueueLimits,
    Session,
    SessionStats,
)
from signing_proxy.ws.shared import SharedClient, SharedFeed

# aiohttp's own default, stated so both directions use the same limit.
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
# Kalshi pings every 10 s, and any frame resets aiohttp's heartbeat timer, so the proxy's own
# ping goes upstream only when the link has gone quiet (a laptop that slept, a dead NAT entry).
UPSTREAM_HEARTBEAT: Final = 30.0
# Clients idle as long as they like; a ping after 30 s of silence finds the dead ones.
CLIENT_HEARTBEAT: Final = 30.0
# A client that may read this may read the account's WebSocket channels (fill, ...).
_PORTFOLIO_READ: Final = "/trade-api/v2/portfolio/orders"
# A refused handshake's body is an error message; anything longer is cut here.
_MAX_REFUSAL_BODY: Final = 64 * 1024


class WebSocketRelay:
    """Relays /trade-api/ws/v2: a signed handshake upstream first, then frames both ways."""

    def __init__(
        self,
        live: Live,
        metrics: Metrics,
        sessions: UpstreamSessions,
        limits: QueueLimits | None = None,
        max_sessions: int = 64,
        shared: SharedFeed | None = None,
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
        self._sessions: set[Session] = set()
        # websocket.mode: shared: clients join one upstream connection per path.
        self._shared = shared
        self._shared_open = 0
        if shared is not None:
            metrics.watch_shared_feed(shared.stats)
        # Frames of sessions already closed; open ones are added at scrape time, so the
        # relay pays nothing per frame for metrics.
        self._closed_frames = [0, 0]
        metrics.watch_websockets(self.frame_totals, lambda: self.open_sessions)

    @property
    def open_sessions(self) -> int:
        """How many client sessions are open now (relayed or on the shared feed)."""
        return len(self._sessions) + self._shared_open

    def frame_totals(self) -> tuple[int, int]:
        """Frames so far, (from clients, to clients): relayed, or served by the shared feed."""
        to_upstream, to_client = self._closed_frames
        if self._shared is not None:
            from_clients, to_clients = self._shared.frame_totals()
            to_upstream, to_client = to_upstream + from_clients, to_client + to_clients
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
                f"{request[ROUTE].path} accepts WebSocket connections only",
                headers={"Upgrade": "websocket"},
            )
        if self.open_sessions + self._opening >= self._max_sessions:
            request[CALL_RECORD].error = "proxy_websocket_limit"
            return proxy_error(
                503,
                "proxy_websocket_limit",
                f"limits.websocket_sessions ({self._max_sessions}) are open; try again later",
                headers={"Retry-After": "1"},
            )
        # One generation of settings for the whole handshake, as for REST calls.
        handshake = _Handshake(request, self._live.current)
        if self._shared is not None:
            return await self._serve_shared(handshake, client)
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

    async def _serve_shared(
        self, handshake: _Handshake, client: web.WebSocketResponse
    ) -> web.StreamResponse:
        """websocket.mode: shared: this client joins the path's shared upstream connection."""
        assert self._shared is not None
        request, path = handshake.request, handshake.path
        self._opening += 1
        try:
            hub = await self._shared.hub_for(
                path, lambda: self._connect(handshake), self._reconnector(path)
            )
            if isinstance(hub, web.StreamResponse):
                return hub
            await client.prepare(request)
        finally:
            self._opening -= 1
        snapshot = self._live.current
        name = handshake.record.client
        portfolio = snapshot.access.authorize(request[CLIENT], "GET", _PORTFOLIO_READ) is None
        member = SharedClient(
            client,
            request.transport,
            hub,
            private=portfolio,
            pin=snapshot.pins.get(name or ""),
            limit=self._shared.config.client_queue_frames,
        )
        fields = {"request_id": handshake.record.request_id, "client": name or request.remote}
        get_logger().info("ws_open", mode="shared", path=path, **fields)
        self._metrics.ws_sessions_total.inc()
        self._shared_open += 1
        try:
            await self._shared.serve(path, hub, member)
        finally:
            self._shared_open -= 1
            self._closed_frames[0] += member.frames_in
            self._closed_frames[1] += member.frames_out
        code = member.ending[0] if member.ending else 1000
        get_logger().info(
            "ws_close", mode="shared", close_code=code, frames_out=member.frames_out, **fields
        )
        return client

    def _reconnector(self, path: str) -> Callable[[], Awaitable[aiohttp.ClientWebSocketResponse]]:
        """Opens the shared connection again, freshly signed with the current key."""

        async def connect() -> aiohttp.ClientWebSocketResponse:
            snapshot = self._live.current
            upstream = snapshot.config.upstream
            base = upstream.margin_ws_url if path == MARGIN_WS_PATH else upstream.ws_url
            headers = {"User-Agent": USER_AGENT, **snapshot.signer.headers("GET", path)}
            async with asyncio.timeout(upstream.timeout):
                return await self._session().ws_connect(
                    URL(base, encoded=True),
                    headers=headers,
                    heartbeat=UPSTREAM_HEARTBEAT,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                    max_msg_size=MAX_FRAME_BYTES,
                )

        return connect

    async def close_all(self, code: int = 1001, message: bytes = b"proxy shutting down") -> None:
        """Close every session, telling both sides `code`; returns once all are closed."""
        if self._shared is not None:
            await self._shared.close_all()
        sessions = list(self._sessions)
        reason = message.decode(errors="replace")
        for session in sessions:
            session.end(Ending("proxy", code, code, reason))
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

        def closed(session: Session) -> None:
            self._sessions.discard(session)
            stats = session.stats
            self._closed_frames[0] += stats.frames_in
            self._closed_frames[1] += stats.frames_out
            record.bytes_in, record.bytes_out = stats.bytes_in, stats.bytes_out
            _log_close(fields, session.ending, stats, time.perf_counter() - session.started)

        session = Session(request, client, upstream, self.limits, closed)
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
        # The guard routed the path: the Kalshi WebSocket, or the margin one on its own host.
        self.path = request[ROUTE].path
        base = self.upstream.margin_ws_url if self.path == MARGIN_WS_PATH else self.upstream.ws_url
        self.url = URL(base + suffix, encoded=True)

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
        headers.update(self._signer.headers("GET", self.path))
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
    ending: Ending | None,
    stats: SessionStats,
    seconds: float,
) -> None:
    ending = ending or Ending("proxy", 1011, 1011, "relay cancelled")
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
