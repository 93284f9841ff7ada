"""The aiohttp application: routes, the per-call log event, and the shared client session."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from signing_proxy.config import Config
from signing_proxy.config.journal import resolve as resolve_journal
from signing_proxy.errors import ConfigError, proxy_error
from signing_proxy.gateway.admin import AdminApi
from signing_proxy.gateway.gate import Gate
from signing_proxy.gateway.halt import Caller
from signing_proxy.gateway.journal import Journal
from signing_proxy.kalshi.signer import Signer
from signing_proxy.ops.health import UpstreamMonitor
from signing_proxy.ops.logging import drop_none, get_logger
from signing_proxy.ops.metrics import Metrics
from signing_proxy.proxy.bodies import BodyBudget
from signing_proxy.proxy.calls import CALL_RECORD, CallFailed, CallRecord, count_own_answer
from signing_proxy.proxy.compat import V1Sides
from signing_proxy.proxy.forward import Forwarder
from signing_proxy.proxy.guard import add_cors_headers, make_guard
from signing_proxy.proxy.limits_source import learn_limits
from signing_proxy.proxy.live import Live
from signing_proxy.proxy.paths import NOT_PROXIED, ROUTE, RouteKind
from signing_proxy.proxy.signing_engine import SigningEngine
from signing_proxy.proxy.upstream import UpstreamSessions
from signing_proxy.ws.relay import WS_RELAY, WebSocketRelay
from signing_proxy.ws.shared import SharedFeed


@dataclass(slots=True)
class Lifecycle:
    """Process state that probes report: set to draining when shutdown begins."""

    draining: bool = False
    # Set when the drain's time is up and calls still in flight are being cut.
    cutting: bool = False

    def start_draining(self) -> None:
        """Report not ready from now on: the proxy is shutting down."""
        self.draining = True

    def start_cutting(self) -> None:
        """Calls cancelled from now on were cut by the shutdown, not left by their client."""
        self.cutting = True


CONFIG = web.AppKey("config", Config)
LIVE = web.AppKey("live", Live)
FORWARDER = web.AppKey("forwarder", Forwarder)
MONITOR = web.AppKey("monitor", UpstreamMonitor)
METRICS = web.AppKey("metrics", Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
SESSIONS = web.AppKey("sessions", UpstreamSessions)
GATE = web.AppKey("gate", Gate)
# How often the dead-man's switches are looked at: a switch fires within this of its time.
_HEARTBEAT_TICK = 0.25
# Seconds between journal checkpoints (the WAL grows by a few hundred bytes per order).
_CHECKPOINT_EVERY = 5.0

# A client's X-Request-ID is kept only when it is short and plain, so it is safe to log.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

# Bounded request line and headers: aiohttp answers 400 past these, before any handler runs.
# keepalive_timeout (set from access.client_timeout) also closes a connection that has not
# sent a complete request head in time, so a slow client cannot hold the proxy.
# auto_decompress off: a gzip body is forwarded as the client sent it, with its own
# Content-Encoding and Content-Length, not inflated by aiohttp on the way in.
HANDLER_ARGS = {
    "max_line_size": 8190,
    "max_field_size": 8190,
    "max_headers": 100,
    "auto_decompress": False,
}
_PROBE_METHODS = ("GET", "HEAD")

# nginx's status for "the client closed the connection before the answer was complete".
CLIENT_CLOSED_REQUEST = 499

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(config: Config, signer: Signer, *, background_probe: bool = True) -> web.Application:
    """Build the proxy application for `config`, signing with `signer`.

    `background_probe` probes the upstream at start and every upstream.probe_interval
    seconds (clock offset, key acceptance); tests that count upstream calls turn it off.
    """
    handler_args = {**HANDLER_ARGS, "keepalive_timeout": config.access.client_timeout}
    live = Live.build(config, signer)
    gate = Gate(open_journal(config))
    gate.configure(config.access.tokens)
    app = web.Application(
        middlewares=[_call_middleware, make_guard(live, gate)], handler_args=handler_args
    )
    sessions = UpstreamSessions()
    monitor = UpstreamMonitor(live, sessions)
    signing = config.signing
    engine = SigningEngine(
        lambda: live.current.signer,
        routes=signing.presign_routes,
        max_age=signing.presign_max_age,
        depth=signing.presign_depth,
        threads=signing.threads,
        max_learned=signing.learn_hot_routes,
    )
    metrics = Metrics(live, engine, gate.stats)
    bodies = BodyBudget(config.limits.body_memory_bytes)
    forwarder = Forwarder(live, monitor, metrics, engine, bodies, sessions, V1Sides(), gate)
    admin = AdminApi(gate, lambda: live.current.config, functools.partial(_proxy_caller, forwarder))
    app[SESSIONS] = sessions
    app[METRICS] = metrics
    app[CONFIG] = config
    app[LIVE] = live
    app[MONITOR] = monitor
    app[FORWARDER] = forwarder
    app[GATE] = gate
    app[LIFECYCLE] = Lifecycle()
    app.on_response_prepare.append(_add_request_id)
    app.on_response_prepare.append(add_cors_headers)
    app.cleanup_ctx.append(_client_session)
    app.cleanup_ctx.append(_limits_from_kalshi)
    app.cleanup_ctx.append(_gateway)
    if background_probe and config.upstream.probe_interval > 0:
        app.cleanup_ctx.append(_probe_loop)
    shared = SharedFeed(config.websocket) if config.websocket.mode == "shared" else None
    relay = WebSocketRelay(
        live, metrics, sessions, max_sessions=config.limits.websocket_sessions, shared=shared
    )
    app[WS_RELAY] = relay
    app.on_shutdown.append(relay.on_shutdown)
    # One route: the guard has already decided what the request is for (paths.route_target),
    # and the dispatcher serves exactly that; aiohttp's router never decides on its own.
    app.router.add_route(
        "*",
        "/{tail:.*}",
        _dispatcher(forwarder.handle, relay.handle, admin.handle),
        expect_handler=_no_expect,
    )
    return app


async def _limits_from_kalshi(app: web.Application) -> AsyncIterator[None]:
    """Read Kalshi's rate limits in the background once the upstream session is open."""
    task = asyncio.create_task(learn_limits(app[FORWARDER], app[LIVE]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def open_journal(config: Config) -> Journal | None:
    """The order journal the configuration names (None when off); ConfigError if unusable."""
    path = resolve_journal(config.journal.path, config.environment)
    if path is None:
        return None
    try:
        return Journal(path)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"journal.path: cannot open {path}: {exc}; set journal.path (or "
            "SIGNING_PROXY_JOURNAL) to a writable file, or to null to run without a journal"
        ) from None


async def _gateway(app: web.Application) -> AsyncIterator[None]:
    """Watch the dead-man's switches for the app's whole life; close the journal at the end."""
    gate = app[GATE]
    tasks = [asyncio.create_task(_watch_heartbeats(gate, app[FORWARDER], app[LIVE]))]
    if gate.journal is not None:
        tasks.append(asyncio.create_task(_checkpoints(gate.journal)))
    yield
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if gate.journal is not None:
        gate.journal.close()


async def _checkpoints(journal: Journal) -> None:
    """Fold the journal's WAL into its file now and then, in a thread: never in an order."""
    while True:
        await asyncio.sleep(_CHECKPOINT_EVERY)
        try:
            await asyncio.to_thread(journal.checkpoint)
        except sqlite3.Error as exc:
            get_logger().warning("journal_checkpoint_failed", error=str(exc))


async def _watch_heartbeats(gate: Gate, forwarder: Forwarder, live: Live) -> None:
    """Fire each dead-man's switch whose client has been silent too long."""
    firing: set[asyncio.Task[None]] = set()
    while True:
        await asyncio.sleep(_HEARTBEAT_TICK)
        for client in gate.heartbeats.due():
            task = asyncio.create_task(_fire(gate, forwarder, live, client))
            firing.add(task)
            task.add_done_callback(firing.discard)


async def _fire(gate: Gate, forwarder: Forwarder, live: Live, client: str) -> None:
    tokens = {t.name: t for t in live.current.config.access.tokens}
    log = get_logger()
    log.warning("deadman_fired", client=client, heartbeat=gate.heartbeats.interval(client))
    report = await gate.fire(client, _proxy_caller(forwarder, "proxy:dead-man"), tokens.get(client))
    log.warning("deadman_cancelled", client=client, **report.as_json())


def _proxy_caller(forwarder: Forwarder, label: str) -> Caller:
    """A caller that makes signed calls as the proxy itself (cancels of a halt)."""

    async def call(method: str, raw_path: str, body: bytes | None) -> tuple[int, bytes]:
        record = CallRecord(request_id=os.urandom(16).hex(), client=label)
        try:
            answer = await forwarder.call(forwarder.live.current, record, method, raw_path, body)
        except CallFailed as failed:
            raise ConnectionError(failed.response.status) from None
        return answer.status, answer.body

    return call


def _dispatcher(rest: Handler, websocket: Handler, admin: Handler) -> Handler:
    """The handler for every request: serves the route the guard checked."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        route = request[ROUTE]
        if route.kind is RouteKind.REST:
            return await rest(request)
        if route.kind is RouteKind.WEBSOCKET:
            if request.method != "GET":
                return _method_not_allowed(request.method, ("GET",))
            return await websocket(request)
        if route.kind is RouteKind.ADMIN:
            return await admin(request)
        if route.kind is RouteKind.PUBLIC:
            if request.method not in _PROBE_METHODS:
                return _method_not_allowed(request.method, _PROBE_METHODS)
            return await _PROBES[route.path](request)
        return proxy_error(NOT_PROXIED.status, NOT_PROXIED.code, NOT_PROXIED.message)

    return dispatch


async def _no_expect(request: web.Request) -> None:
    """aiohttp answers Expect before any middleware runs; the forwarder does it after the guard.

    aiohttp's own handler sends 100 Continue to requests the guard then refuses, and echoes
    an unknown Expect value into a text/plain 417.
    """


def _method_not_allowed(method: str, allowed: tuple[str, ...]) -> web.Response:
    return proxy_error(
        405,
        "proxy_method_not_allowed",
        f"method {method[:16]!r} is not allowed here",
        headers={"Allow": ", ".join(allowed)},
    )


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    """The upstream pools and the signing engine, for the app's whole life."""
    sessions = app[SESSIONS]
    sessions.open(app[CONFIG].limits.websocket_sessions, app[LIVE].current.client_timeout)
    engine = app[FORWARDER].engine
    engine.start()
    yield
    await engine.close()
    await app[MONITOR].close()
    await sessions.close()
    app[FORWARDER].lane.close()
    app[FORWARDER].reads.close()


async def _probe_loop(app: web.Application) -> AsyncIterator[None]:
    """Probe the upstream in the background for the app's whole life."""
    interval = app[CONFIG].upstream.probe_interval
    task = asyncio.create_task(app[MONITOR].run(interval))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    """Readiness: not draining, the upstream accepts the key and answered recently; else 503."""
    if request.app[LIFECYCLE].draining:
        return web.json_response({"status": "draining", "reason": "shutting down"}, status=503)
    result = await request.app[MONITOR].readiness()
    status = "ready" if result.ok else "not_ready"
    return web.json_response(
        {"status": status, "reason": result.reason}, status=200 if result.ok else 503
    )


def _request_id(request: web.Request) -> str:
    supplied = request.headers.get("X-Request-ID")
    if supplied and _SAFE_REQUEST_ID.fullmatch(supplied):
        return supplied
    # Unique, not secret: no system call on the order path (os.urandom is one).
    return f"{random.getrandbits(128):032x}"


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    record = request.get(CALL_RECORD)
    if record is not None:
        response.headers["X-Request-ID"] = record.request_id


async def _metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this app's registry."""
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# The public routes of paths.PUBLIC_PATHS, by path.
_PROBES: dict[str, Handler] = {"/healthz": _healthz, "/readyz": _readyz, "/metrics": _metrics}


@web.middleware
async def _call_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's own errors into the proxy's shape and log one event per call."""
    record = CallRecord(request_id=_request_id(request))
    request[CALL_RECORD] = record
    metrics = request.app[METRICS]
    metrics.calls_in_flight += 1
    status = 500
    try:
        response = await handler(request)
        status = response.status
        count_own_answer(record, request.method, response)
        return response
    except web.HTTPException as exc:
        status = exc.status
        code = "proxy_not_found" if exc.status == 404 else "proxy_http_error"
        response = proxy_error(exc.status, code, exc.reason, headers=_allow_header(exc))
        count_own_answer(record, request.method, response)
        return response
    except asyncio.CancelledError:
        if request.app[LIFECYCLE].cutting:
            # The drain's time ran out: the proxy cut this call, the client did not leave.
            status = 503
            record.error = "proxy_cut_by_shutdown"
        else:
            # aiohttp cancels the handler when the client goes away; logged as nginx does.
            status = CLIENT_CLOSED_REQUEST
            record.error = record.error or "client_disconnected"
        raise
    finally:
        metrics.calls_in_flight -= 1
        # The event and the metrics are made once the answer is on its way (aiohttp writes
        # it when this returns): about 0.1 ms of rendering is not the caller's latency.
        seconds = time.perf_counter() - record.started
        asyncio.get_running_loop().call_soon(_log_call, request, record, status, seconds)


def _allow_header(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None


# Logged instead of a target that is not a path: http://user:password@host/... would put
# its credentials in the log.
_NOT_A_PATH = "(not a path)"


def _log_call(request: web.Request, record: CallRecord, status: int, seconds: float) -> None:
    path, _, query = request.raw_path.partition("?")
    if not path.startswith("/"):
        path = _NOT_A_PATH
    request.app[METRICS].observe_call(
        request.method,
        path,
        status,
        seconds,
        record.upstream_ms / 1000 if record.upstream_ms is not None else None,
        record.retries,
    )
    fields = drop_none(
        {
            "request_id": record.request_id,
            "client": record.client or request.remote,
            "peer": request.remote if record.client else None,
            "method": request.method,
            "path": path,
            "query": bool(query),
            "status": status,
            "bytes_in": record.bytes_in,
            "bytes_out": record.bytes_out,
            "total_ms": round(seconds * 1000, 3),
            "upstream_ms": record.upstream_ms,
            "retries": record.retries or None,
            "rate_wait_ms": record.rate_wait_ms,
            "error": record.error,
        }
    )
    log = get_logger()
    if status >= 500 or (record.error and status != CLIENT_CLOSED_REQUEST):
        log.warning("request", **fields)
    else:
        log.info("request", **fields)
