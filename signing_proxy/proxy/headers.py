"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

# RFC 9110 section 7.6.1 hop-by-hop headers, plus the non-standard ones still seen.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Never sent upstream: the inbound token, the client's addresses, and what the HTTP client
# sets itself. X-Request-ID stays local: it is the proxy's correlation id, not Kalshi's.
# A browser's own headers (Origin, Referer, Sec-Fetch-*) stay local too: the proxy has
# judged them, and Kalshi sees a plain API client.
_REQUEST_DROP = HOP_BY_HOP | {
    "host",
    "expect",
    "authorization",
    "x-proxy-token",
    "forwarded",
    "x-real-ip",
    "via",
    "x-request-id",
    "origin",
    "referer",
    # Method overrides: what is signed and checked is the request's method, so a header
    # claiming another must not reach a server that might honour it.
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-proxy-dry-run",  # the proxy's own: a dry run is never sent anyway
}
_REQUEST_DROP_PREFIXES = ("kalshi-access-", "x-forwarded-", "sec-fetch-", "access-control-request-")


def _connection_listed(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    listed: set[str] = set()
    for value in headers.getall("Connection", ()):
        listed.update(token.strip().lower() for token in value.split(",") if token.strip())
    return listed


def upstream_request_headers(incoming: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The client's headers that may go to Kalshi (signing headers are added afterwards)."""
    drop = _connection_listed(incoming)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        # Some servers read '_' as '-': KALSHI_ACCESS_SIGNATURE must not reach Kalshi either.
        lower = name.lower().replace("_", "-")
        if lower in _REQUEST_DROP or lower in drop or lower.startswith(_REQUEST_DROP_PREFIXES):
            continue
        out.add(name, value)
    return out


def downstream_response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """Kalshi's response headers minus hop-by-hop ones, repeated headers kept."""
    drop = _connection_listed(upstream)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in drop:
            continue
        out.add(name, value)
    return out
