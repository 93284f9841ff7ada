"""The guard: Host, Origin and CORS, the one routing decision, token and policy, in that order.

Every request passes here before any handler runs; the handler then serves exactly the
route the guard checked (`ROUTE`), so no spelling of a path can reach a route around it.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import MultiMapping

from signing_proxy.errors import proxy_error
from signing_proxy.gateway.gate import Gate
from signing_proxy.proxy.access import CLIENT, Client
from signing_proxy.proxy.calls import CALL_RECORD
from signing_proxy.proxy.entry import LIFTED
from signing_proxy.proxy.live import Live, Snapshot
from signing_proxy.proxy.paths import ROUTE, Refusal, RouteKind, route_target

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Set for requests from an allowed browser origin, so answers carry CORS headers.
CORS_ORIGIN = web.RequestKey("cors_origin", str)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
# Sec-Fetch-Site values a browser sends when no other site's page made the request.
_FIRST_PARTY_FETCH = frozenset({"none", "same-origin"})
# Methods a browser may be allowed to preflight; the proxy never forwards a preflight.
_CORS_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
_CORS_EXPOSED = "X-Request-ID, Retry-After"
_CORS_MAX_AGE = "600"


# Clients send the same Host on every call: the verdict is remembered (bounded, so a
# flood of made-up names only churns it).
@functools.lru_cache(maxsize=256)
def host_allowed(host_header: str | None, allowed_hosts: frozenset[str]) -> bool:
    """Whether the Host header names this proxy: loopback, an IP literal or an allowed name.

    A page that rebinds its own DNS name to 127.0.0.1 still sends that name as Host, so
    serving only known names defeats DNS rebinding. IP literals cannot be rebound.
    """
    if host_header is None:
        return True  # HTTP/1.0 clients send none; a browser always does
    host = _host_name(host_header)
    if host is None:
        return False
    if host in _LOOPBACK_NAMES or host.endswith(".localhost") or host in allowed_hosts:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host_name(header: str) -> str | None:
    """The name in a Host header, lower-case, without port or brackets; None if malformed."""
    header = header.strip().lower()
    if header.startswith("["):
        name, bracket, rest = header[1:].partition("]")
        if not bracket or (rest and not _is_port(rest)):
            return None
        return name
    name, colon, port = header.rpartition(":")
    if not colon:
        name = port
    elif not (port.isascii() and port.isdigit()):
        return None
    return name.rstrip(".") or None


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isascii() and text[1:].isdigit()


def origin_refusal(headers: MultiMapping[str], allowed_origins: tuple[str, ...]) -> str | None:
    """Why a browser request from another site is refused, or None when it may pass."""
    # Every copy of a header counts: a second Origin or Sec-Fetch-Site cannot hide behind
    # a first one that would pass.
    origins = headers.getall("Origin", [])
    if origins:
        if all(origin.strip().lower() in allowed_origins for origin in origins):
            return None
        # Never echo the Origin value: it is the caller's text.
        return "requests from a web page are refused unless access.allowed_origins lists it"
    sites = headers.getall("Sec-Fetch-Site", [])
    if any(site.strip().lower() not in _FIRST_PARTY_FETCH for site in sites):
        return "requests a browser marks as coming from another site are refused"
    return None


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


def _preflight_answer(request: web.Request, origin: str) -> web.Response:
    """The proxy's own answer to an allowed CORS preflight; it is never forwarded."""
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": _CORS_METHODS,
        "Access-Control-Max-Age": _CORS_MAX_AGE,
        "Vary": "Origin",
    }
    requested = request.headers.get("Access-Control-Request-Headers")
    if requested:
        headers["Access-Control-Allow-Headers"] = requested
    if request.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return web.Response(status=204, headers=headers)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: let an allowed origin's page read the answer."""
    origin = request.get(CORS_ORIGIN)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _CORS_EXPOSED
        response.headers.add("Vary", "Origin")


def browser_refusal(request: web.Request, snapshot: Snapshot) -> web.StreamResponse | None:
    """403 for another Host or another site's page; the answer to a preflight; else None."""
    config = snapshot.config
    if not host_allowed(request.headers.get("Host"), snapshot.allowed_hosts):
        request[CALL_RECORD].error = "proxy_host_not_allowed"
        return proxy_error(
            403,
            "proxy_host_not_allowed",
            "this Host is not served: use localhost or 127.0.0.1, or add the name to "
            "listen.allowed_hosts",
        )
    refusal = origin_refusal(request.headers, config.access.allowed_origins)
    if refusal is not None:
        request[CALL_RECORD].error = "proxy_origin_not_allowed"
        return proxy_error(403, "proxy_origin_not_allowed", refusal)
    origin = request.headers.get("Origin")
    if origin is not None:
        request[CORS_ORIGIN] = origin.strip()
        if _is_preflight(request):
            return _preflight_answer(request, origin.strip())
    return None


def make_guard(live: Live, gate: Gate) -> Middleware:
    """The guard middleware: every check, on one routing decision, before any handler."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        # One generation of settings for every check of this request.
        snapshot = live.current
        refused = browser_refusal(request, snapshot)
        if refused is not None:
            return refused
        route = route_target(request.raw_path)
        if isinstance(route, Refusal):
            return _refuse(request, route)
        request[ROUTE] = route
        if route.kind is RouteKind.PUBLIC:
            return await handler(request)
        # Default deny: every route that is not public needs the token and the policy.
        access = snapshot.access
        client = access.authenticate(request.headers)
        if isinstance(client, Refusal):
            headers = {"WWW-Authenticate": 'Bearer realm="signing-proxy"'}
            return _refuse(request, client, headers)
        if client is not None:
            request[CALL_RECORD].client = client.name
            lifted = gate.saw(client.name)
            if lifted is not None:
                request[LIFTED] = lifted
        request[CLIENT] = client
        if route.kind is RouteKind.ADMIN:
            refusal = admin_refusal(request, client)
            return await handler(request) if refusal is None else _refuse(request, refusal)
        refusal = access.authorize(client, request.method, route.path)
        if refusal is not None:
            return _refuse(request, refusal)
        return await handler(request)

    return guard


_NOT_ADMIN = Refusal(
    403, "proxy_admin_only", "the admin API needs a token with admin: true (access.tokens)"
)
_NOT_LOCAL = Refusal(
    403,
    "proxy_admin_only",
    "without tokens, the admin API answers only loopback clients that send no Origin; "
    "configure a token with admin: true to call it from elsewhere",
)


def admin_refusal(request: web.Request, client: Client | None) -> Refusal | None:
    """Why this caller may not use the admin API, or None.

    With tokens, only an admin token; without, only a loopback peer that no web page
    sent (no Origin at all, even an allowed one)."""
    if client is not None:
        return None if client.admin else _NOT_ADMIN
    peer = request.remote or ""
    try:
        address = ipaddress.ip_address(peer.partition("%")[0])
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        loopback = (mapped or address).is_loopback
    except ValueError:
        loopback = peer == ""  # a Unix socket has no address and is local
    if not loopback or "Origin" in request.headers:
        return _NOT_LOCAL
    return None


def _refuse(
    request: web.Request, refusal: Refusal, headers: dict[str, str] | None = None
) -> web.Response:
    request[CALL_RECORD].error = refusal.code
    return proxy_error(refusal.status, refusal.code, refusal.message, headers=headers)
