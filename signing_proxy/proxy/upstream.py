"""Talking to the upstream: aiohttp sends each request once, and failures are named in words.

The words reach clients (in the proxy's JSON errors) and the logs, so they are built here
from what the proxy knows (host, port, errno, the TLS verify result), never from an
exception's text, which may quote bytes the upstream sent (a non-HTTP banner, for one).
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from dataclasses import dataclass

import aiohttp

# REST calls (cancels included) never wait behind WebSocket sessions: each has its own pool.
REST_POOL = 256
# Beyond limits.websocket_sessions, room for the replays that read a refused handshake's body.
WS_POOL_SPARE = 8


class ConnectionLost(aiohttp.ClientConnectionError):
    """The upstream connection broke after the request was (maybe) sent, before an answer."""


async def send_once(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """A ClientSession middleware that keeps aiohttp from sending a request a second time.

    aiohttp resends a GET, PUT, DELETE... once, with the same signature, when a kept-alive
    connection breaks before the answer; a DELETE that cancels an order would reach Kalshi
    twice. It does so only for ClientOSError and ServerDisconnectedError leaving this
    middleware, so those leave as ConnectionLost (the original is its __cause__), and the
    proxy's own policy (GET and HEAD only, freshly signed) is the only retry.
    """
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:
        raise  # nothing was sent, and aiohttp never resends these itself
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise ConnectionLost("the upstream connection broke before an answer") from exc


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """What a client is told when a call to the upstream failed, and whether to try again."""

    status: int
    code: str
    message: str
    # Whether another attempt may succeed; the caller still retries GET and HEAD only.
    retryable: bool


def classify(exc: BaseException, timeout: float) -> UpstreamFailure:
    """The status, proxy_ code and reason for an upstream call that raised `exc`."""
    if isinstance(exc, ConnectionLost) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        message = "the connection was not accepted within upstream.connect_timeout"
        return UpstreamFailure(504, "proxy_upstream_connect_timeout", message, True)
    if isinstance(exc, TimeoutError):
        # Not retried: the upstream may still be working on it, and the client has waited.
        message = f"the upstream did not answer within {timeout:g} s"
        return UpstreamFailure(504, "proxy_upstream_timeout", message, False)
    if isinstance(exc, aiohttp.ClientSSLError):
        # Not retried: a certificate or TLS setup that fails now fails the same way 0.1 s later.
        return UpstreamFailure(502, "proxy_upstream_tls_error", _tls_reason(exc), False)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        # Only a temporary resolver failure may heal; an unknown name will not.
        again = exc.os_error.errno == socket.EAI_AGAIN
        message = f"DNS lookup failed for {exc.host}" + (" (temporary failure)" if again else "")
        return UpstreamFailure(502, "proxy_upstream_unreachable", message, again)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamFailure(502, "proxy_upstream_unreachable", _connect_reason(exc), True)
    if isinstance(exc, aiohttp.ClientPayloadError):
        # The order lane reads answers whole before relaying: one that broke midway.
        return UpstreamFailure(502, "proxy_upstream_body_error", describe(exc), False)
    if isinstance(exc, aiohttp.ClientResponseError):
        # The answer could not be parsed: another protocol (SSH, TLS on a plain port...).
        message = "the upstream did not speak HTTP (its answer could not be parsed)"
        return UpstreamFailure(502, "proxy_upstream_protocol_error", message, False)
    # Broke before any answer byte (e.g. a kept-alive connection the upstream had closed).
    return UpstreamFailure(502, "proxy_upstream_error", f"{describe(exc)} before answering", True)


def describe(exc: BaseException) -> str:
    """A reason for a broken upstream connection or answer, in words; never the exception's text."""
    if isinstance(exc, ConnectionLost) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the upstream closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the upstream's answer was cut short or malformed"
    if isinstance(exc, TimeoutError):
        return "the upstream stopped sending"
    code = exc.errno if isinstance(exc, OSError) else None
    if code:
        return f"the connection to the upstream failed: {_strerror(code)}"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "the connection to the upstream failed"
    return "the upstream call failed"


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    where = f"{exc.host}:{exc.port}"
    code = exc.os_error.errno
    if code == errno.ECONNREFUSED:
        return f"connection refused by {where}"
    if code:
        return f"cannot connect to {where}: {_strerror(code)}"
    return f"cannot connect to {where}"


# What OpenSSL's commonest verify results mean for the user, by how the result begins.
_VERIFY_HINTS = (
    ("certificate has expired", "its end date has passed, or this machine's clock is wrong"),
    ("certificate is not yet valid", "its start date is to come, or this machine's clock is wrong"),
    ("self-signed certificate", "no certificate authority this machine trusts issued it"),
    (
        "unable to get local issuer certificate",
        "issued by a certificate authority this machine does not trust; behind a "
        "TLS-inspecting proxy, point SSL_CERT_FILE at its CA bundle",
    ),
    ("Hostname mismatch", "the certificate is for another name: check upstream.rest_url"),
    ("IP address mismatch", "the certificate is for another address: check upstream.rest_url"),
)


def _tls_reason(exc: aiohttp.ClientSSLError) -> str:
    where = f"{exc.host}:{exc.port}"
    error = exc.os_error
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        # OpenSSL's verify result: "self-signed certificate", "Hostname mismatch, ...".
        verdict = error.verify_message
        hint = next((h for start, h in _VERIFY_HINTS if verdict.startswith(start)), None)
        return f"TLS certificate verify failed for {where}: {verdict}" + (
            f" ({hint})" if hint else ""
        )
    reason = getattr(error, "reason", None)
    if isinstance(reason, str) and reason.replace("_", "").isalnum():
        # OpenSSL's reason code, e.g. WRONG_VERSION_NUMBER (a plain-HTTP port, often).
        return f"TLS handshake with {where} failed: {reason.replace('_', ' ').lower()}"
    return f"TLS handshake with {where} failed"


def _strerror(code: int) -> str:
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


def open_session(pool: int, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    """A keep-alive ClientSession with its own pool of `pool` upstream connections."""
    # The system CA store; OpenSSL honours SSL_CERT_FILE and SSL_CERT_DIR here.
    ssl_context = ssl.create_default_context()
    connector = aiohttp.TCPConnector(ssl=ssl_context, limit=pool, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        # The default for calls that pass none (the probe, WebSocket handshakes); the
        # forwarder passes its snapshot's timeouts, which follow reloads.
        timeout=timeout,
        # Bodies pass through as Kalshi sent them (gzip stays gzip).
        auto_decompress=False,
        # Cookies set by the upstream belong to the client that received them, not to
        # every client of the proxy.
        cookie_jar=aiohttp.DummyCookieJar(),
        # Send only the headers the client sent (plus User-Agent when it sent none).
        skip_auto_headers=("Accept", "Accept-Encoding", "Content-Type", "User-Agent"),
        requote_redirect_url=False,
        middlewares=(send_once,),  # aiohttp never resends on its own
    )


class UpstreamSessions:
    """The proxy's two upstream pools, REST and WebSocket, open while the app runs.

    Built with the app and handed to everything that calls the upstream; the pools
    themselves are opened in the app's cleanup_ctx (a ClientSession needs the running
    loop) and closed with it.
    """

    __slots__ = ("_rest", "_websocket")

    def __init__(self) -> None:
        self._rest: aiohttp.ClientSession | None = None
        self._websocket: aiohttp.ClientSession | None = None

    @property
    def rest(self) -> aiohttp.ClientSession:
        """The pool for REST calls and probes."""
        if self._rest is None:
            raise RuntimeError("the upstream sessions are opened when the app starts")
        return self._rest

    @property
    def websocket(self) -> aiohttp.ClientSession:
        """The pool for WebSocket sessions."""
        if self._websocket is None:
            raise RuntimeError("the upstream sessions are opened when the app starts")
        return self._websocket

    def open(self, websocket_sessions: int, timeout: aiohttp.ClientTimeout) -> None:
        """Open both pools (on the running loop)."""
        self._rest = open_session(REST_POOL, timeout)
        self._websocket = open_session(websocket_sessions + WS_POOL_SPARE, timeout)

    async def close(self) -> None:
        """Close both pools."""
        for session in (self._rest, self._websocket):
            if session is not None:
                await session.close()
        self._rest = self._websocket = None
