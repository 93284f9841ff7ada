"""Errors the proxy itself produces, in Kalshi's nested shape with a proxy_ code."""

from __future__ import annotations

import json

from aiohttp import web

SERVICE = "signing-proxy"


def error_body(code: str, message: str) -> bytes:
    """The JSON body of a proxy error: {"error": {"code", "message", "service"}}."""
    payload = {"error": {"code": code, "message": message, "service": SERVICE}}
    return json.dumps(payload, separators=(",", ":")).encode()


def proxy_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON error response; `code` starts with proxy_ so clients can tell it from Kalshi's."""
    response = web.Response(
        status=status, body=error_body(code, message), content_type="application/json"
    )
    if headers:
        response.headers.update(headers)
    return response
