"""The forwarding handler: namespace check, header filtering, signing, streaming both ways."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from . import __version__
from .config import Config
from .errors import proxy_error
from .headers import downstream_response_headers, upstream_request_headers
from .live import Live
from .paths import RestTarget, check_rest_target
from .signer import Signer

USER_AGENT = f"signing-proxy/{__version__}"
# Kalshi's API uses these; anything else (TRACE, CONNECT, made-up tokens) is never signed.
FORWARDED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CHUNK = 64 * 1024


@dataclass(slots=True)
class CallRecord:
    """What the per-call log event reports; filled in as the call progresses."""

    request_id: str
    client: str | None = None
    started: float = field(default_factory=time.perf_counter)
    bytes_in: int = 0
    bytes_out: int = 0
    upstream_ms: float | None = None
    upstream_status: int | None = None
    error: str | None = None


CALL_RECORD = web.RequestKey("call_record", CallRecord)


class BodyTooLarge(Exception):
    """The client's body exceeds access.max_body_bytes."""


class Forwarder:
    """Signs each request under /trade-api/v2/ and streams it to the upstream and back."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.session: aiohttp.ClientSession | None = None

    @property
    def signer(self) -> Signer:
        """The signer of the current generation (it changes on key reload)."""
        return self.live.current.signer

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward one request, or refuse it in the proxy's JSON error shape."""
        target = check_rest_target(request.raw_path)
        if not isinstance(target, RestTarget):
            return proxy_error(target.status, target.code, target.message)
        if request.method not in FORWARDED_METHODS:
            return proxy_error(
                405,
                "proxy_method_not_allowed",
                f"method {request.method[:16]!r} is not forwarded",
                headers={"Allow": ", ".join(sorted(FORWARDED_METHODS))},
            )
        # One snapshot for the whole call, so a reload midway cannot mix generations.
        snapshot = self.live.current
        config = snapshot.config
        record = request[CALL_RECORD]
        try:
            async with asyncio.timeout(config.access.client_timeout):
                body = await _request_body(request, record, config.access.max_body_bytes)
        except BodyTooLarge:
            return proxy_error(
                413,
                "proxy_body_too_large",
                "request body exceeds access.max_body_bytes "
                f"({config.access.max_body_bytes} bytes)",
            )
        except TimeoutError:
            return proxy_error(408, "proxy_client_timeout", "the request body arrived too slowly")
        headers = upstream_request_headers(request.headers)
        if "User-Agent" not in headers:
            headers["User-Agent"] = USER_AGENT
        headers.update(snapshot.signer.headers(request.method, target.path))
        # encoded=True: the raw path and query go upstream exactly as received (no requoting).
        url = URL(config.upstream.rest_url + request.raw_path, encoded=True)
        return await self._exchange(request, record, config, url, headers, body)

    async def _exchange(
        self,
        request: web.Request,
        record: CallRecord,
        config: Config,
        url: URL,
        headers: CIMultiDict[str],
        body: aiohttp.StreamReader | bytes | None,
    ) -> web.StreamResponse:
        assert self.session is not None, "client session is created in the app's cleanup_ctx"
        origin = config.upstream.rest_url
        timeout = config.upstream.timeout
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                upstream = await self.session.request(
                    request.method, url, headers=headers, data=body, allow_redirects=False
                )
        except aiohttp.ConnectionTimeoutError:
            return _fail(record, origin, 504, "proxy_upstream_connect_timeout", "connect timed out")
        except TimeoutError:
            return _fail(
                record,
                origin,
                504,
                "proxy_upstream_timeout",
                f"the upstream did not answer within {timeout:g} s",
            )
        except aiohttp.ClientConnectorError:
            return _fail(record, origin, 502, "proxy_upstream_unreachable", "cannot connect")
        except aiohttp.ClientError as exc:
            return _fail(record, origin, 502, "proxy_upstream_error", _describe(exc))
        try:
            record.upstream_status = upstream.status
            return await self._relay(request, record, upstream, started)
        finally:
            upstream.release()

    async def _relay(
        self,
        request: web.Request,
        record: CallRecord,
        upstream: aiohttp.ClientResponse,
        started: float,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=downstream_response_headers(upstream.headers),
        )
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                record.bytes_out += len(chunk)
                await response.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The status line is gone already; cut the connection so the client sees a
            # truncated body instead of a short one that looks complete.
            record.error = f"proxy_upstream_body_error: {_describe(exc)}"
            record.upstream_ms = _ms_since(started)
            _abort(request)
            return response
        except ConnectionError:
            record.error = "client_disconnected"
            _abort(request)
            return response
        record.upstream_ms = _ms_since(started)
        await response.write_eof()
        return response


async def _request_body(
    request: web.Request, record: CallRecord, max_body: int
) -> aiohttp.StreamReader | bytes | None:
    if not request.body_exists:
        return None
    length = request.content_length
    if length is not None:
        if max_body and length > max_body:
            raise BodyTooLarge
        # A declared length within the limit streams straight through.
        record.bytes_in = length
        return request.content
    if not max_body:
        return request.content
    # Chunked: buffer up to the limit so an oversized body never reaches Kalshi at all.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > max_body:
            raise BodyTooLarge
        chunks.append(chunk)
    record.bytes_in = size
    return b"".join(chunks)


def _fail(record: CallRecord, origin: str, status: int, code: str, message: str) -> web.Response:
    record.error = code
    return proxy_error(status, code, f"{message} ({origin})")


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _describe(exc: BaseException) -> str:
    # Exception text from aiohttp names hosts and reasons, never headers or bodies.
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
