"""Where the proxy listens and where it forwards: hosts, ports, URLs, origins."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

from signing_proxy.config.values import integer, optional_text, string_list, visible_ascii
from signing_proxy.errors import ConfigError

# Kalshi's recommended hosts (API_FACTS.md); the WebSocket host differs from the REST host.
DEFAULT_REST_URLS: dict[str, str] = {
    "demo": "https://external-api.demo.kalshi.co",
    "production": "https://external-api.kalshi.com",
}
DEFAULT_WS_URLS: dict[str, str] = {
    "demo": "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
    "production": "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
}
# Perpetuals ("margin"): their WebSocket has its own host and path (API_FACTS.md).
DEFAULT_MARGIN_WS_URLS: dict[str, str] = {
    "demo": "wss://external-api-margin-ws.demo.kalshi.co/trade-api/ws/v2/margin",
    "production": "wss://external-api-margin-ws.kalshi.com/trade-api/ws/v2/margin",
}
REST_PREFIX = "/trade-api/v2"
WS_PATH = "/trade-api/ws/v2"
MARGIN_WS_PATH = "/trade-api/ws/v2/margin"


def rest_url(value: Any, name: str, env: Mapping[str, str]) -> str:
    """Kalshi's REST origin; empty means the environment's own (resolved by the loader)."""
    if value is None or value == "":
        return ""
    parts = urlsplit(_url(value, name, ("http", "https")))
    # Users paste Kalshi's documented base (".../trade-api/v2"); only the origin is kept
    # because the client's own path, /trade-api/v2/..., is forwarded byte for byte.
    if parts.path.rstrip("/") not in ("", REST_PREFIX):
        raise ConfigError(
            f"{name}: must be an origin such as https://host[:port] "
            f"(optionally ending in {REST_PREFIX}); got a path {parts.path!r}"
        )
    return f"{parts.scheme}://{parts.netloc}"


def ws_url(value: Any, name: str, env: Mapping[str, str]) -> str:
    """Kalshi's WebSocket URL; empty means derived from rest_url or the environment's."""
    if value is None or value == "":
        return ""
    url = _url(value, name, ("ws", "wss"))
    parts = urlsplit(url)
    if parts.path.rstrip("/") in ("", WS_PATH):
        return f"{parts.scheme}://{parts.netloc}{WS_PATH}"
    raise ConfigError(f"{name}: must be ws[s]://host[:port]{WS_PATH}; got {url!r}")


def margin_ws_url(value: Any, name: str, env: Mapping[str, str]) -> str:
    """Kalshi's margin WebSocket URL; empty means derived like ws_url."""
    if value is None or value == "":
        return ""
    url = _url(value, name, ("ws", "wss"))
    parts = urlsplit(url)
    if parts.path.rstrip("/") in ("", MARGIN_WS_PATH):
        return f"{parts.scheme}://{parts.netloc}{MARGIN_WS_PATH}"
    raise ConfigError(f"{name}: must be ws[s]://host[:port]{MARGIN_WS_PATH}; got {url!r}")


def resolve_urls(rest: str, ws: str, margin: str, environment: str) -> tuple[str, str, str]:
    """The REST, WebSocket and margin WebSocket URLs, given what was set (empty: not set)."""
    # Only rest_url set (a local upstream, say): the WebSockets live on the same host.
    scheme = "wss" if rest.startswith("https:") else "ws"
    same_host = f"{scheme}://{rest.split('://', 1)[1]}" if rest else ""
    if not ws:
        ws = f"{same_host}{WS_PATH}" if rest else DEFAULT_WS_URLS[environment]
    if not margin:
        margin = f"{same_host}{MARGIN_WS_PATH}" if rest else DEFAULT_MARGIN_WS_URLS[environment]
    return rest or DEFAULT_REST_URLS[environment], ws, margin


def _url(value: Any, name: str, schemes: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name}: must be a URL string; got {type(value).__name__}")
    parts = urlsplit(value.strip())
    if parts.scheme not in schemes or not parts.hostname:
        allowed = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"{name}: must be an absolute {allowed} URL; got {_shown(parts)!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{name}: must not carry a query, fragment or credentials")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError(f"{name}: has an invalid port; got {_shown(parts)!r}") from None
    return value.strip()


def _shown(parts: SplitResult) -> str:
    """A URL as an error message may show it: no credentials, query or fragment."""
    if "@" in parts.netloc + parts.path:
        return "(a URL with credentials, not shown)"
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path


def listen_host(value: Any, name: str, env: Mapping[str, str]) -> str:
    """An IP address or host name to bind; brackets around an IPv6 address are dropped."""
    text = optional_text(value, name, env)
    if not text:
        raise ConfigError(f"{name}: must not be empty")
    if not visible_ascii(text):
        raise ConfigError(
            f"{name}: must be an IP address or a host name (printable ASCII, no spaces); "
            f"got {text!r}"
        )
    return text.strip("[]")


port = integer(0, 65535)


def key_file(value: Any, name: str, env: Mapping[str, str]) -> str | None:
    """A file path; no shell expands ~ in a YAML value or an env file, so it is done here."""
    path = optional_text(value, name, env)
    return os.path.expanduser(path) if path else None


def allowed_hosts(value: Any, name: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """Host header names to serve: names only, compared without the port."""
    hosts = []
    for index, host in enumerate(string_list(value, name)):
        if any(c in host for c in "/:@ ") or host == "*":
            raise ConfigError(
                f"{name}[{index}]: must be a host name such as 'signing-proxy' "
                f"(no scheme, port or wildcard); got {host!r}"
            )
        hosts.append(host.lower().rstrip("."))
    return tuple(hosts)


def allowed_origins(value: Any, name: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """Browser origins (scheme://host[:port]) allowed to call."""
    origins = []
    for index, origin in enumerate(string_list(value, name)):
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username
        ):
            raise ConfigError(
                f"{name}[{index}]: must be an origin such as "
                f"'http://localhost:3000' (scheme, host and port only); got {origin!r}"
            )
        # Browsers send the origin lower-case and without a trailing slash.
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def is_loopback_host(host: str) -> bool:
    """Whether binding to `host` keeps the port reachable from this machine only."""
    if host.lower() == "localhost":  # host names are case-insensitive
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
