"""Client connections, bounded before any handler runs: how many, how large a request head.

aiohttp bounds each header line and the number of headers, which still lets one unfinished
head grow to about a megabyte; and it answers malformed requests with a text page and an
error log that quotes the raw bytes (a body, a query, a near-miss token). These subclasses
bound the whole head, cap connections, and answer parse errors in the proxy's JSON shape
while logging only the kind of error.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from signing_proxy.config import LimitsConfig
from signing_proxy.errors import error_body, proxy_error
from signing_proxy.ops.logging import get_logger


def _raw_error(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 error answer, for moments when no request object exists yet."""
    body = error_body(code, message)
    reason = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class BoundedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, with the connection cap and the head bound."""

    __slots__ = ("_body", "_head_bytes", "_head_refused", "_head_tail", "_limits", "_refused")

    def __init__(self, manager: web.Server, *, limits: LimitsConfig, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._head_bytes = 0
        # The last bytes of the head so far, to find its end across two reads.
        self._head_tail = b""
        self._head_refused = False
        self._body: Any = None  # the payload of the latest request, while it still arrives
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Serve the connection, or refuse it with 503 when limits.max_connections are open."""
        manager = self._manager
        if manager is not None and len(manager.connections) >= self._limits.max_connections:
            self._refused = True
            get_logger().warning("connection_refused", reason="limits.max_connections reached")
            # uvloop's transports are not asyncio.Transport subclasses; they write all the same.
            cast(asyncio.Transport, transport).write(
                _raw_error(503, "proxy_too_many_connections", "too many connections to the proxy")
            )
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the connection (a refused one was never registered)."""
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Count the bytes of an unfinished request head; past the bound, answer 431."""
        if self._refused or self._head_refused:
            return
        body = self._body
        # Between requests (no body still arriving), and not a WebSocket: a head arrives.
        if (body is None or body.is_eof()) and self._payload_parser is None and not self._upgraded:
            self._count_head(data)
            if self._head_refused:
                return
        count = self._request_count
        super().data_received(data)
        if self._request_count != count and self._messages:
            self._next_head(data)

    def _count_head(self, data: bytes) -> None:
        """Add the bytes of `data` that belong to the head (not a body after it)."""
        tail = self._head_tail
        joined = (tail + data[:3]).find(b"\r\n\r\n") if tail else -1
        if joined >= 0:  # the blank line that ends the head began in the last read
            head, complete = joined + 4 - len(tail), True
        else:
            found = data.find(b"\r\n\r\n")
            head, complete = (found + 4, True) if found >= 0 else (len(data), False)
        self._head_bytes += head
        if self._head_bytes > self._limits.max_header_bytes:
            self._refuse_head()
        self._head_tail = b"" if complete else (tail + data)[-3:]

    def _next_head(self, data: bytes) -> None:
        """After a head: its body comes next, or, with none, the next (pipelined) head."""
        self._body = self._messages[-1][1]
        self._head_bytes, self._head_tail = 0, b""
        if self._body is EMPTY_PAYLOAD and not self._upgraded:
            # The rest of this read after the last blank line starts the next head. (After a
            # body that ends in this read, the rest goes uncounted: one read at most.)
            self._head_bytes = len(data) - (data.rfind(b"\r\n\r\n") + 4)
            if self._head_bytes > self._limits.max_header_bytes:
                self._refuse_head()

    def _refuse_head(self) -> None:
        self._head_refused = True
        limit = self._limits.max_header_bytes
        get_logger().warning(
            "request_head_too_large", peer=_peer(self.transport), limit_bytes=limit
        )
        if self.transport is not None:
            # An answer now would overtake those of earlier pipelined requests still being
            # served; then the connection just closes.
            if not (self._messages or self._request_in_progress):
                message = f"the request head exceeds limits.max_header_bytes ({limit} bytes)"
                self.transport.write(_raw_error(431, "proxy_header_too_large", message))
            # aiohttp's own connection_lost follows, and ends the connection's task cleanly.
            self.transport.close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The proxy's JSON error for a request aiohttp could not parse or serve.

        Never the exception's text: aiohttp's parser errors quote the raw request bytes.
        """
        kind = type(exc).__name__ if exc is not None else None
        get_logger().warning("bad_request", status=status, peer=request.remote, kind=kind)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer has started; the connection is closed instead")
        if status >= 500:
            response = proxy_error(status, "proxy_internal_error", "the proxy failed")
        else:
            reason = f" ({kind})" if kind else ""
            text = f"the request is not valid HTTP/1.1{reason}"
            response = proxy_error(status, "proxy_bad_request", text)
        response.force_close()
        return response


def _peer(transport: asyncio.BaseTransport | None) -> str | None:
    if transport is None:
        return None
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class BoundedServer(web.Server):
    """aiohttp's Server, making BoundedRequestHandlers."""

    def __init__(self, made: web.Server, limits: LimitsConfig) -> None:
        super().__init__(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )
        self._limits = limits

    def __call__(self) -> BoundedRequestHandler:
        """A protocol for one new connection."""
        return BoundedRequestHandler(self, loop=self._loop, limits=self._limits, **self._kwargs)


class BoundedAppRunner(web.AppRunner):
    """An AppRunner whose server bounds connections and request heads."""

    def __init__(self, app: web.Application, limits: LimitsConfig, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        return BoundedServer(await super()._make_server(), self._limits)
