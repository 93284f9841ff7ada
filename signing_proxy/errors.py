"""Errors: ConfigError for configuration mistakes, and the proxy's JSON error body."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

SERVICE = "signing-proxy"


class ConfigError(Exception):
    """A configuration mistake; the message is one line that names the setting and the problem."""


def did_you_mean(word: str, choices: Mapping[str, Any]) -> str:
    """' (did you mean ...?)' for the closest of `choices` to a misspelt `word`, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
