"""The forwarding handler: namespace check, header filtering, signing, streaming both ways."""

from __future__ import annotations

import asyncio
import functools
import random
import time

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from signing_proxy import __version__
from signing_proxy.config import AccessConfig
from signing_proxy.errors import proxy_error
from signing_proxy.gateway.gate import Gate
from signing_proxy.kalshi.costs import batch_items
from signing_proxy.kalshi.orders import V1Write
from signing_proxy.kalshi.protocol import HEADER_TIMESTAMP
from signing_proxy.ops.health import UpstreamMonitor
from signing_proxy.ops.metrics import Metrics
from signing_proxy.proxy import compat, entry
from signing_proxy.proxy.access import SAFE_METHODS, policy_forms
from signing_proxy.proxy.bodies import BodyBudget, BodyBudgetSpent, BodyTooLarge, request_body
from signing_proxy.proxy.calls import CALL_RECORD, Answer, CallFailed, CallRecord
from signing_proxy.proxy.headers import downstream_response_headers, upstream_request_headers
from signing_proxy.proxy.lane import Lane, LaneAnswer
from signing_proxy.proxy.live import Live, Snapshot
from signing_proxy.proxy.paths import ROUTE, Route, remembered
from signing_proxy.proxy.signing_engine import SigningEngine
from signing_proxy.proxy.upstream import (
    REST_POOL,
    UpstreamFailure,
    UpstreamSessions,
    classify,
    describe,
)

USER_AGENT = f"signing-proxy/{__version__}"
# An upstream answer: the lane's (whole, or streaming), or aiohttp's for a body that streamed in.
Upstream = aiohttp.ClientResponse | LaneAnswer
# Kalshi's API uses these; anything else (TRACE, CONNECT, made-up tokens) is never signed.
FORWARDED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Only requests that cannot change anything are retried: a duplicate order is worse
# than an error.
RETRYABLE_METHODS = frozenset({"GET", "HEAD"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
_CHUNK = 64 * 1024
# Answers up to this size with a known length (nearly every Kalshi JSON answer) are sent
# in one write with their headers; larger or unsized ones stream.
_SMALL_BODY = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
# Kalshi's 401 bodies are tiny; this much is read for the diagnosis, then relayed.
_DIAGNOSIS_BYTES = 4096


class Forwarder:
    """Signs each request under /trade-api/v2/ and streams it to the upstream and back."""

    def __init__(
        self,
        live: Live,
        monitor: UpstreamMonitor,
        metrics: Metrics,
        engine: SigningEngine,
        bodies: BodyBudget,
        sessions: UpstreamSessions,
        v1_sides: compat.V1Sides,
        gate: Gate,
    ) -> None:
        self.bodies = bodies
        self.v1_sides = v1_sides
        self.gate = gate
        self._sessions = sessions
        self.live = live
        self.monitor = monitor
        self.metrics = metrics
        self.engine = engine
        # Calls go upstream on connections of their own, no client library in between (only
        # a body that streams in takes aiohttp's client); order calls on a lane of their own,
        # never queued behind other calls.
        self.lane = Lane()
        self.reads = Lane(limit=REST_POOL)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward one request, or refuse it in the proxy's JSON error shape."""
        target = request[ROUTE]  # the guard routed and checked it
        method = request.method
        if method not in FORWARDED_METHODS:
            return proxy_error(
                405,
                "proxy_method_not_allowed",
                f"method {method[:16]!r} is not forwarded",
                headers={"Allow": ", ".join(sorted(FORWARDED_METHODS))},
            )
        self.engine.in_flight += 1
        hold = [0]  # body bytes this call holds of the shared budget
        try:
            return await self._forward(request, target, hold)
        finally:
            self.engine.in_flight -= 1
            self.engine.call_ended()  # the refill waits until the answer is written
            self.bodies.give_back(hold)

    async def _forward(
        self, request: web.Request, target: Route, hold: list[int]
    ) -> web.StreamResponse:
        method = request.method
        # One snapshot for the whole call, so a reload midway cannot mix generations.
        snapshot = self.live.current
        record = request[CALL_RECORD]
        write = entry.v1_write(method, target.path)
        if write is not None:
            refused = entry.v1_refusal(request, snapshot, write, target.path)
            if refused is not None:
                record.error = refused[0]
                return refused[1]
        body = await self._read_body(request, record, snapshot.config.access, hold)
        if isinstance(body, web.Response):
            return body
        pinned = entry.pinned(snapshot, record, method, request.raw_path, body)
        if isinstance(pinned, web.Response):
            return pinned
        raw_target, body = pinned
        order = entry.order_call(method, target.path, write)
        ticket = None
        if order is not None:
            admitted = entry.admit(self.gate, snapshot, request, order, write, body)
            if isinstance(admitted, web.Response):
                return admitted
            ticket = admitted
        elif method not in SAFE_METHODS and entry.wants_dry_run(request):
            # A preview of a write that is no order call: nothing to judge, nothing sent.
            return entry.dry_run(record, snapshot.config.risk, None, None)
        limited = await _charge(snapshot, record, (method, target.path), write, body)
        if limited is not None:
            if ticket is not None:
                self.gate.abandon(entry.call_info(request, record), ticket, "proxy_rate_limited")
            return limited
        send = functools.partial(self._send_on, request, record, snapshot, raw_target, body, write)
        if ticket is None:
            return await send()
        record.on_lane = True
        record.read_whole = self.gate.journal is not None
        info = entry.call_info(request, record)
        return await entry.journaled(self.gate, ticket, info, record, send)

    async def _send_on(
        self,
        request: web.Request,
        record: CallRecord,
        snapshot: Snapshot,
        raw_target: str,
        body: aiohttp.StreamReader | bytes | None,
        write: V1Write | None,
    ) -> web.StreamResponse:
        """Send the checked call upstream (a V1 write as its V2 translation) and relay back."""
        if write is not None:
            query = raw_target.partition("?")[2]
            translation = compat.Translation(self, self.v1_sides, snapshot, record, write, query)
            return await translation.run(await compat.read_whole(body))
        headers = upstream_request_headers(request.headers)
        if record.read_whole:
            # Uncompressed, so the journal can read the order ids (these answers are small).
            headers.popall("Accept-Encoding", None)
        if isinstance(body, bytes):
            # Held in memory (and perhaps rewritten, by pinning): aiohttp states its length.
            headers.popall("Content-Length", None)
        if "User-Agent" not in headers:
            headers["User-Agent"] = USER_AGENT
        url = upstream_url(snapshot.config.upstream.rest_url, raw_target)
        path = raw_target.partition("?")[0]
        return await self._exchange(
            request, record, snapshot, url, path, headers, body, record.on_lane
        )

    async def call(
        self, snapshot: Snapshot, record: CallRecord, method: str, raw_path: str, body: bytes | None
    ) -> Answer:
        """One signed call made by the proxy itself, sent once and read whole."""
        # Sent once, whatever the method: a translated write must never be sent twice.
        headers: CIMultiDict[str] = CIMultiDict({"User-Agent": USER_AGENT})
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = URL(snapshot.config.upstream.rest_url + raw_path, encoded=True)
        path = raw_path.partition("?")[0]
        upstream_config = snapshot.config.upstream
        deadline = asyncio.get_running_loop().time() + upstream_config.deadline
        started = time.perf_counter()
        try:
            upstream, _ = await self._send(snapshot, method, url, path, headers, body, deadline)
            try:
                answer = Answer(
                    upstream.status, CIMultiDict(upstream.headers), await upstream.read()
                )
            finally:
                upstream.release()
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = classify(exc, upstream_config.timeout)
            raise CallFailed(_failed(record, failure, started, upstream_config.rest_url)) from None
        finally:
            self.engine.call_ended()
        self.monitor.saw_answer()
        record.upstream_ms = _ms_since(started)
        return answer

    async def _read_body(
        self,
        request: web.Request,
        record: CallRecord,
        access: AccessConfig,
        hold: list[int],
    ) -> aiohttp.StreamReader | bytes | web.Response | None:
        """The request body, or the proxy's answer when it cannot be taken."""
        max_body = access.max_body_bytes
        if (
            request.headers.get("Expect", "").lower() == "100-continue"
            and request.version >= (1, 1)
            and request.body_exists
        ):
            # The guard has passed this request: the client may send its body now.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        reading = request_body(request, record, max_body, self.bodies, hold)
        try:
            if request.content.is_eof():
                return await reading  # all here already (nearly every order): no timer needed
            async with asyncio.timeout(access.client_timeout):
                return await reading
        except BodyTooLarge:
            message = f"request body exceeds access.max_body_bytes ({max_body} bytes)"
            return proxy_error(413, "proxy_body_too_large", message)
        except BodyBudgetSpent:
            record.error = "proxy_busy"
            message = "too many request bodies are arriving at once (limits.body_memory_bytes)"
            return proxy_error(503, "proxy_busy", message, headers={"Retry-After": "1"})
        except TimeoutError:
            record.error = "proxy_client_timeout"
            return proxy_error(408, "proxy_client_timeout", "the request body arrived too slowly")
        except asyncio.IncompleteReadError:
            record.error = "client_disconnected"
            return proxy_error(400, "proxy_incomplete_body", "the request body ended early")

    async def _exchange(
        self,
        request: web.Request,
        record: CallRecord,
        snapshot: Snapshot,
        url: URL,
        path: str,
        headers: CIMultiDict[str],
        body: aiohttp.StreamReader | bytes | None,
        order: bool = False,
    ) -> web.StreamResponse:
        upstream_config = snapshot.config.upstream
        method = request.method
        deadline = asyncio.get_running_loop().time() + upstream_config.deadline
        # A streamed body can be sent once only; bodies in memory can be sent again.
        retryable = method in RETRYABLE_METHODS and not isinstance(body, aiohttp.StreamReader)
        attempts = 1 + (upstream_config.retries if retryable else 0)
        started = time.perf_counter()
        for attempt in range(attempts):
            last = attempt + 1 == attempts
            try:
                upstream, sent = await self._send(
                    snapshot, method, url, path, headers, body, deadline, order
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = classify(exc, upstream_config.timeout)
                if failure.retryable and not last and await _backoff(attempt, deadline):
                    record.retries += 1
                    continue
                return _failed(record, failure, started, upstream_config.rest_url)
            self.monitor.saw_answer()
            if retryable and upstream.status in RETRYABLE_STATUSES and not last:
                try:
                    again = await _backoff(attempt, deadline)
                except BaseException:
                    upstream.release()  # cut while waiting: its connection is let go
                    raise
                if again:
                    upstream.release()
                    record.retries += 1
                    continue
            try:
                prefix = b""
                if upstream.status == 401:
                    self.metrics.upstream_401.inc()
                    self.monitor.key_refused()
                    signed = f"{headers[HEADER_TIMESTAMP]}{method}{path}"
                    prefix = await self._diagnose(upstream, signed, sent)
                return await self._relay(request, record, snapshot, upstream, started, prefix)
            finally:
                upstream.release()
        raise AssertionError("unreachable: the last attempt always returns")

    async def _send(
        self,
        snapshot: Snapshot,
        method: str,
        url: URL,
        path: str,
        headers: CIMultiDict[str],
        body: aiohttp.StreamReader | bytes | None,
        deadline: float,
        order: bool = False,
    ) -> tuple[Upstream, float]:
        """One attempt, signed afresh (the timestamp must be current); the answer and when
        sent. An `order` call's answer is read whole within the timeout."""
        signed = self.engine.take_presigned(method, path)
        if signed is None:
            signing_started = time.perf_counter()
            signed = await self.engine.headers(method, path)
            self.metrics.signing.observe(time.perf_counter() - signing_started)
        headers.update(signed)
        remaining = deadline - asyncio.get_running_loop().time()
        timeout = min(snapshot.config.upstream.timeout, remaining)
        sent = time.time()
        async with asyncio.timeout(timeout):
            if not isinstance(body, aiohttp.StreamReader):
                lane = self.lane if order else self.reads
                upstream_config = snapshot.config.upstream
                answer = await lane.request(
                    method,
                    url,
                    headers,
                    body,
                    upstream_config.connect_timeout,
                    whole=order,
                    read_timeout=upstream_config.timeout,
                )
                return answer, sent
            upstream = await self._sessions.rest.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=snapshot.client_timeout,
            )
        return upstream, sent

    async def _diagnose(self, upstream: Upstream, signed: str, sent: float) -> bytes:
        """Read the head of Kalshi's small 401 body for the diagnosis; the caller relays it."""
        try:
            head = await upstream.content.read(_DIAGNOSIS_BYTES)
        except (aiohttp.ClientError, TimeoutError):
            head = b""
        self.monitor.diagnose_401(head, signed, upstream.headers.get("Date"), sent, time.time())
        return head

    async def _relay(
        self,
        request: web.Request,
        record: CallRecord,
        snapshot: Snapshot,
        upstream: Upstream,
        started: float,
        prefix: bytes = b"",
    ) -> web.StreamResponse:
        headers = downstream_response_headers(upstream.headers)
        if upstream.status == 429 and "Retry-After" not in headers:
            # Kalshi sends no Retry-After; give clients a number to back off by.
            path = request.raw_path.partition("?")[0]
            headers["Retry-After"] = str(_retry_after(snapshot, request.method, path))
        length = upstream.content_length
        readable = request.method != "HEAD" and upstream.status not in _NO_BODY_STATUSES
        small = length is not None and length <= _SMALL_BODY
        # The order lane's answers are in memory already: sent in one write whatever their size.
        if not prefix and readable and (small or _whole(upstream)):
            answer = await _relay_small(request, record, upstream, headers, started)
            assert not isinstance(answer, bytes)  # no bound: always the answer
            return answer
        if not prefix and readable and length is None and record.read_whole:
            # An order's answer sent chunked: held (up to a bound) so the journal gets its
            # order ids; past the bound it streams on from what was read.
            held = await _relay_small(request, record, upstream, headers, started, _SMALL_BODY)
            if not isinstance(held, bytes):
                return held
            prefix = held
        return await _stream(request, record, upstream, headers, started, prefix)


async def _stream(
    request: web.Request,
    record: CallRecord,
    upstream: Upstream,
    headers: CIMultiDict[str],
    started: float,
    prefix: bytes,
) -> web.StreamResponse:
    """Relay a large or unsized answer as it comes (`prefix`: what was read of it already)."""
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    chunks = upstream.content.iter_chunked(_CHUNK).__aiter__()
    try:
        await response.prepare(request)
        if prefix:
            record.bytes_out += len(prefix)
            await response.write(prefix)
        while True:
            # Reading from the upstream and writing to the client fail differently:
            # the first is the upstream's fault, the second means the client left.
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except (aiohttp.ClientError, TimeoutError) as exc:
                # The status line is gone already; cut the connection so the client sees
                # a truncated body instead of a short one that looks complete.
                record.error = f"proxy_upstream_body_error: {describe(exc)}"
                record.upstream_ms = _ms_since(started)
                _abort(request)
                return response
            record.bytes_out += len(chunk)
            await response.write(chunk)
        record.upstream_ms = _ms_since(started)
        await response.write_eof()
    except ConnectionError:
        # aiohttp's ClientConnectionResetError is a ConnectionError too: the client left.
        record.error = "client_disconnected"
        record.upstream_ms = _ms_since(started)
        _abort(request)
    return response


async def _relay_small(
    request: web.Request,
    record: CallRecord,
    upstream: Upstream,
    headers: CIMultiDict[str],
    started: float,
    bound: int | None = None,
) -> web.StreamResponse | bytes:
    """Read a small answer whole and send it with its headers in one write; with a `bound`
    (its size unknown), what was read when it turned out larger, for streaming on."""
    try:
        if bound is None:
            body = await upstream.read()
        else:
            body = await upstream.content.read(bound + 1)
            while len(body) <= bound and not upstream.content.at_eof():
                body += await upstream.content.read(bound + 1 - len(body))
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Nothing has reached the client yet, so it can still get a clear error.
        record.error = "proxy_upstream_body_error"
        record.upstream_ms = _ms_since(started)
        return proxy_error(502, "proxy_upstream_body_error", describe(exc))
    if bound is not None and len(body) > bound:
        return body  # larger than the bound: the caller streams it on
    record.upstream_ms = _ms_since(started)
    record.bytes_out = len(body)
    response = web.Response(status=upstream.status, reason=upstream.reason, headers=headers)
    # Set after construction so aiohttp adds no Content-Type of its own.
    response.body = body
    return response


def _failed(
    record: CallRecord, failure: UpstreamFailure, started: float, origin: str
) -> web.Response:
    """The client's answer when the upstream call failed; the log event gets the reason too."""
    record.upstream_ms = _ms_since(started)
    record.error = f"{failure.code}: {failure.message}"
    return proxy_error(failure.status, failure.code, f"{failure.message} ({origin})")


async def _backoff(attempt: int, deadline: float) -> bool:
    """Sleep with full jitter before the next attempt; False when the deadline forbids it."""
    delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # noqa: S311 - jitter
    loop = asyncio.get_running_loop()
    if loop.time() + delay >= deadline:
        return False
    await asyncio.sleep(delay)
    return True


async def _charge(
    snapshot: Snapshot,
    record: CallRecord,
    call: tuple[str, str],
    write: V1Write | None,
    body: aiohttp.StreamReader | bytes | None,
) -> web.Response | None:
    """Take the call's tokens from the local rate limit, or the 429 when it cannot have them."""
    if snapshot.limiter is None:
        return None
    # A translated write costs what its V2 route costs.
    charged = call if write is None else (write.v2_method, write.v2_path)
    # A batch is billed per order in it, as Kalshi bills it.
    held = body if isinstance(body, bytes) else None
    items = max(batch_items(charged[0], form, held) for form in policy_forms(charged[1]))
    decision = await snapshot.limiter.acquire(*charged, items)
    if decision.waited:
        record.rate_wait_ms = round(decision.waited * 1000, 3)
    if decision.allowed:
        return None
    record.error = "proxy_rate_limited"
    return proxy_error(
        429,
        "proxy_rate_limited",
        f"over the {decision.bucket} budget of rate_limit (cost {decision.cost}); "
        f"retry in {decision.retry_after} s",
        headers={"Retry-After": str(decision.retry_after)},
    )


def _retry_after(snapshot: Snapshot, method: str, path: str) -> int:
    """Whole seconds until the local bucket could afford this call again (at least 1)."""
    limiter = snapshot.limiter
    if limiter is None:
        return 1
    bucket, cost = limiter.cost_of(method, path)
    rate = limiter.rate(bucket)
    missing = max(0.0, cost - limiter.levels()[bucket])
    return max(1, int(-(-missing // rate)))


@remembered
def upstream_url(origin: str, raw_target: str) -> URL:
    """Where `raw_target` goes upstream: exactly as received (encoded=True: no requoting)."""
    return URL(origin + raw_target, encoded=True)


def _whole(upstream: Upstream) -> bool:
    """Whether the answer is in memory already (the lane read it whole): one write."""
    return isinstance(upstream, LaneAnswer) and upstream.whole


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
