"""Which request targets the proxy serves: one routing decision on the raw target."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast
from urllib.parse import unquote

from aiohttp import web

from signing_proxy.config import MARGIN_WS_PATH, WS_PATH

REST_PREFIX = "/trade-api/v2/"
# Probes answer without a token: orchestrators call them and they reveal nothing.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# The admin API: the proxy's own, never forwarded, admin tokens (or loopback) only.
ADMIN_PREFIX = "/proxy/v1/"

# Characters allowed in a raw request target: RFC 3986 unreserved, sub-delims, ":@/?%".
# Anything else (spaces, controls, backslash, '#', non-ASCII) is refused, not re-encoded,
# because the proxy must forward exactly the bytes it signs.
_ALLOWED = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?%"
)
# Enough rounds to see through %252e%252e (double encoding) and then some.
_DECODE_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class RestTarget:
    """A target that may be forwarded: the raw path (signed) and the raw query (not signed)."""

    path: str
    query: str | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A target the proxy will not forward, with the status and error code to answer."""

    status: int
    code: str
    message: str


NOT_PROXIED = Refusal(404, "proxy_not_found", "only /trade-api/v2/ is proxied")
_NOT_ORIGIN_FORM = Refusal(
    400,
    "proxy_invalid_target",
    "the request target must be a path such as /trade-api/v2/markets "
    "(absolute-form and asterisk-form targets are not accepted)",
)
_NON_CANONICAL = Refusal(
    400,
    "proxy_invalid_path",
    "the route part of the path must be spelled plainly (no percent-encoding, no alternate "
    "spelling): /trade-api/v2/... or /trade-api/ws/v2",
)


class RouteKind(enum.Enum):
    """What a request is for; the only routing decision the proxy makes."""

    PUBLIC = "public"  # probes: no token, never forwarded
    REST = "rest"  # /trade-api/v2/**: checked, signed, forwarded
    WEBSOCKET = "websocket"  # /trade-api/ws/v2: checked, handshake signed
    ADMIN = "admin"  # /proxy/v1/**: the admin API, answered by the proxy itself
    NOT_FOUND = "not_found"  # anything else: checked like a Kalshi route, then 404


@dataclass(frozen=True, slots=True)
class Route:
    """A routed request: its kind, and the raw path and query exactly as received."""

    kind: RouteKind
    path: str
    query: str | None


# The guard's decision, for the handler that serves the request.
ROUTE = web.RequestKey("route", Route)


# Calls whose text arguments are this short are remembered (the last 4096): a flood of long
# made-up targets cannot grow a memo past a few MB.
MEMO_MAX_CHARS = 512
_MEMO_SIZE = 4096
Pure = TypeVar("Pure", bound=Callable[..., object])


def remembered(function: Pure) -> Pure:
    """`function` (pure), remembered for calls with short text arguments.

    The order path asks the same few questions of the same few targets on every call (order
    entry is one path); ids in paths make the set of targets unbounded, hence the bounds."""
    memo = functools.lru_cache(maxsize=_MEMO_SIZE)(function)

    @functools.wraps(function)
    def call(*args: object) -> object:
        for arg in args:  # a loop, not all() over a generator: this runs on every call
            if isinstance(arg, str) and len(arg) > MEMO_MAX_CHARS:
                return function(*args)
        return memo(*args)

    call.cache_info = memo.cache_info  # type: ignore[attr-defined]  # for the bound's test
    return cast(Pure, call)


@remembered
def route_target(raw_target: str) -> Route | Refusal:
    """Decide, from the raw request target alone, which route serves it.

    Access checks, policy and the handler all act on this one decision, so no encoding
    (%74rade-api), absolute-form target (http://x/trade-api/...) or other spelling can
    reach a route by a way its checks did not see.
    """
    if not raw_target.startswith("/"):
        return _NOT_ORIGIN_FORM
    path, sep, query = raw_target.partition("?")
    route_query = query if sep else None
    if path in PUBLIC_PATHS:
        return Route(RouteKind.PUBLIC, path, route_query)
    if path in (WS_PATH, MARGIN_WS_PATH):
        return Route(RouteKind.WEBSOCKET, path, route_query)
    if path.startswith(ADMIN_PREFIX):
        return Route(RouteKind.ADMIN, path, route_query)
    if path.startswith(REST_PREFIX):
        # Checked here, once: the policy and the forwarder only ever see a clean target.
        checked = check_rest_target(raw_target)
        if isinstance(checked, Refusal):
            return checked
        return Route(RouteKind.REST, path, route_query)
    if _spells_a_route(path):
        return _NON_CANONICAL
    return Route(RouteKind.NOT_FOUND, path, route_query)


def _spells_a_route(path: str) -> bool:
    """Whether some decoding of `path` names a Kalshi route although `path` does not."""
    for _ in range(_DECODE_ROUNDS + 1):
        decoded = unquote(path, errors="surrogateescape")
        # A server may also treat backslashes as slashes and fold '//' into '/'.
        folded = decoded.replace("\\", "/")
        while "//" in folded:
            folded = folded.replace("//", "/")
        if folded.startswith((REST_PREFIX, ADMIN_PREFIX)) or folded.rstrip("/") in (
            WS_PATH,
            MARGIN_WS_PATH,
        ):
            return True
        if decoded == path:
            return False
        path = decoded
    return True  # still decoding after every round: refuse rather than guess


def check_rest_target(raw_target: str) -> RestTarget | Refusal:
    """Classify a raw request target (path and query exactly as the client sent them)."""
    if not raw_target.startswith(REST_PREFIX):
        return NOT_PROXIED
    if not _ALLOWED.issuperset(raw_target):
        return Refusal(
            400, "proxy_invalid_path", "the request target has characters that must be encoded"
        )
    path, sep, query = raw_target.partition("?")
    if has_dot_segment(path):
        return Refusal(400, "proxy_invalid_path", "dot segments are not allowed in the path")
    # No Kalshi path holds a '%', so an encoded one can only be a layer of encoding meant
    # for a server that decodes twice; overlong or broken UTF-8 (%c0%ae) is refused too.
    if "%25" in path:
        return Refusal(400, "proxy_invalid_path", "an encoded '%' (%25) is not allowed in the path")
    try:
        unquote(path, errors="strict")
    except UnicodeDecodeError:
        return Refusal(400, "proxy_invalid_path", "the path does not decode to UTF-8")
    return RestTarget(path=path, query=query if sep else None)


def has_dot_segment(path: str) -> bool:
    """Whether any decoding of `path` holds a '.' or '..' segment (in any spelling)."""
    for _ in range(_DECODE_ROUNDS + 1):
        # Backslash and ';' parameters are separators to some servers; treat them so here.
        for segment in path.replace("\\", "/").split("/"):
            if segment.split(";", 1)[0] in (".", ".."):
                return True
        decoded = unquote(path, errors="surrogateescape")
        if decoded == path:
            return False
        path = decoded
    return False
