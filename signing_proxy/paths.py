"""Which request targets the proxy forwards: the /trade-api/v2/ namespace, no dot segments."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

REST_PREFIX = "/trade-api/v2/"

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
