"""Every configuration key, declared once: type, default, doc, variable and flag.

The YAML keys are these field names; config.example.yaml shows each with its default
(tests/config/test_model.py holds the two equal)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from signing_proxy.config import journal, network, signing
from signing_proxy.config.fields import section, setting
from signing_proxy.config.rate_limit import RateLimitConfig, parse_rate_limit
from signing_proxy.config.risk import RiskConfig
from signing_proxy.config.tokens import TokenConfig, tokens
from signing_proxy.config.values import boolean, choice, integer, key_id, seconds, utf8_text

Environment = Literal["demo", "production"]
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
V1Orders = Literal["refuse", "translate"]
WebSocketMode = Literal["shared", "relay"]

MEBIBYTE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """Where signed requests go and how long to wait for them."""

    rest_url: str = setting(
        "",
        "Kalshi's REST origin; empty: the environment's host",
        network.rest_url,
        env="SIGNING_PROXY_UPSTREAM",
        flag="upstream",
    )
    ws_url: str = setting(
        "", "Kalshi's WebSocket URL; empty: the environment's, or rest_url's host", network.ws_url
    )
    margin_ws_url: str = setting(
        "",
        "Kalshi's margin (perpetuals) WebSocket URL; empty: the environment's",
        network.margin_ws_url,
    )
    connect_timeout: float = setting(5.0, "seconds to open an upstream connection", seconds())
    timeout: float = setting(30.0, "seconds one upstream attempt may take", seconds())
    deadline: float = setting(60.0, "seconds for the whole call, retries included", seconds())
    retries: int = setting(2, "retries of GET and HEAD only", integer(0, 10))
    probe_interval: float = setting(
        300.0, "seconds between signed probes; 0: off", seconds(allow_zero=True), restart=True
    )


@dataclass(frozen=True, slots=True)
class CredentialsConfig:
    """The Kalshi key id and where the private key comes from (never the key in a log)."""

    api_key_id: str | None = setting(None, "Kalshi API key id", key_id, env="KALSHI_API_KEY_ID")
    private_key_file: str | None = setting(
        None, "PEM file of the RSA private key", network.key_file, env="KALSHI_PRIVATE_KEY_FILE"
    )
    # The PEM itself, from KALSHI_PRIVATE_KEY only: a key must never sit in a YAML file.
    private_key_pem: str | None = setting(
        None,
        "the PEM itself",
        utf8_text,
        env="KALSHI_PRIVATE_KEY",
        in_file=False,
        secret=True,
    )
    passphrase: str | None = setting(
        None,
        "passphrase of an encrypted key",
        utf8_text,
        env="KALSHI_PRIVATE_KEY_PASSPHRASE",
        in_file=False,
        secret=True,
    )
    allow_insecure_key_file: bool = setting(
        False,
        "accept a key file readable by group or others",
        boolean,
        env="SIGNING_PROXY_ALLOW_INSECURE_KEY_FILE",
    )


@dataclass(frozen=True, slots=True)
class ListenConfig:
    """The address the proxy serves on."""

    host: str = setting(
        "127.0.0.1",
        "address to listen on",
        network.listen_host,
        env="SIGNING_PROXY_HOST",
        flag="host",
    )
    port: int = setting(
        8080, "port to listen on", network.port, env="SIGNING_PROXY_PORT", flag="port"
    )
    # Loopback names and IP literals are always served; any other name is refused, which
    # defeats DNS rebinding.
    allowed_hosts: tuple[str, ...] = setting(
        (),
        "Host header names served besides loopback names and IP literals",
        network.allowed_hosts,
        env="SIGNING_PROXY_ALLOWED_HOSTS",
    )


@dataclass(frozen=True, slots=True)
class AccessConfig:
    """Who may use the proxy and what they may send."""

    tokens: tuple[TokenConfig, ...] = setting((), "inbound bearer tokens", tokens)
    read_only: bool = setting(False, "only GET and HEAD pass, for every client", boolean)
    max_body_bytes: int = setting(MEBIBYTE, "largest request body; 0: no limit", integer(0))
    client_timeout: float = setting(
        30.0, "seconds a client may take to send a head, or idle", seconds(), restart=True
    )
    allow_unauthenticated_remote: bool = setting(
        False,
        "serve a non-loopback address without tokens",
        boolean,
        env="SIGNING_PROXY_ALLOW_UNAUTHENTICATED_REMOTE",
    )
    # A request from any other web page is refused, so a page in the user's browser
    # cannot trade with the key.
    allowed_origins: tuple[str, ...] = setting(
        (),
        "browser origins allowed to call",
        network.allowed_origins,
        env="SIGNING_PROXY_ALLOWED_ORIGINS",
    )


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Bounds on what clients can hold: connections, request heads, WebSocket sessions."""

    max_connections: int = setting(1024, "client connections at once", integer(1))
    max_header_bytes: int = setting(32768, "bytes of one request head", integer(1024))
    websocket_sessions: int = setting(64, "client WebSocket sessions at once", integer(0))
    # Request bodies are read whole before they go upstream; this bounds them all together.
    body_memory_bytes: int = setting(
        64 * MEBIBYTE, "bytes of request bodies held at once", integer(1)
    )


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """How events are rendered."""

    format: LogFormat = setting(
        "auto",
        "auto, json or console",
        choice("auto", "json", "console"),
        env="SIGNING_PROXY_LOG_FORMAT",
    )
    level: LogLevel = setting(
        "info",
        "debug, info, warning or error",
        choice("debug", "info", "warning", "error"),
        env="SIGNING_PROXY_LOG_LEVEL",
    )


@dataclass(frozen=True, slots=True)
class SigningConfig:
    """How signatures are produced: pre-signed hot routes and signing threads."""

    presign_routes: tuple[tuple[str, str], ...] = setting(
        (
            ("POST", "/trade-api/v2/portfolio/events/orders"),
            ("POST", "/trade-api/v2/portfolio/events/orders/batched"),
        ),
        "routes signed ahead of time",
        signing.presign_routes,
    )
    presign_max_age: float = setting(
        1.0, "seconds a pre-made signature keeps", signing.presign_max_age
    )
    presign_depth: int = setting(2, "signatures kept ready per route", integer(1))
    learn_hot_routes: int = setting(8, "hot read routes pre-signed; 0: off", integer(0))
    threads: int = setting(2, "threads that sign under load", integer(1))


@dataclass(frozen=True, slots=True)
class CompatConfig:
    """What to do with calls to Kalshi routes that no longer exist."""

    # refuse: 410 naming the V2 route, never forwarded (Kalshi has answered these with a
    # 2xx and no order). translate: sent as the V2 write, answered in the V1 shape.
    v1_orders: V1Orders = setting(
        "refuse", "refuse or translate V1 order writes", choice("refuse", "translate")
    )


@dataclass(frozen=True, slots=True)
class JournalConfig:
    """The order journal: every order-entry call and cancel, and the halt state."""

    # Halt state and daily notional survive a restart only through this file.
    path: str | None = setting(
        journal.DEFAULT,
        "SQLite file; default: the user's state directory (one per environment); null: off",
        journal.journal_path,
        env="SIGNING_PROXY_JOURNAL",
        restart=True,
    )


@dataclass(frozen=True, slots=True)
class WebSocketConfig:
    """How client WebSockets reach Kalshi: one shared upstream feed, or one each."""

    mode: WebSocketMode = setting(
        "shared",
        "shared: one upstream connection per host, subscriptions shared and fanned out; "
        "relay: one upstream connection per client",
        choice("shared", "relay"),
        env="SIGNING_PROXY_WEBSOCKET_MODE",
        restart=True,
    )
    # The next client often comes soon (a bot restarting): the connection waits for it.
    linger: float = setting(
        30.0, "seconds the shared connection stays open after its last client left", seconds()
    )
    # Clients keep their connection while the proxy reconnects upstream, up to this long.
    upstream_grace: float = setting(
        30.0, "seconds clients wait for a lost upstream before they are closed (1011)", seconds()
    )
    client_queue_frames: int = setting(
        10_000,
        "frames a shared-feed client may have waiting before it is dropped (1008)",
        integer(10),
    )


def _rate_limit(value: Any, name: str, env: Mapping[str, str]) -> RateLimitConfig | None:
    # Its defaults follow the chosen tier, so the section validates its own keys.
    return parse_rate_limit(value)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole, validated configuration of one proxy."""

    environment: Environment = setting(
        "demo",
        "demo or production",
        choice("demo", "production"),
        env="KALSHI_ENV",
        flag="env",
    )
    upstream: UpstreamConfig = section(UpstreamConfig, "Kalshi's hosts and timeouts")
    credentials: CredentialsConfig = section(CredentialsConfig, "the Kalshi key")
    listen: ListenConfig = section(ListenConfig, "where the proxy serves", restart=True)
    access: AccessConfig = section(AccessConfig, "who may call and what")
    limits: LimitsConfig = section(LimitsConfig, "bounds on clients", restart=True)
    logging: LoggingConfig = section(LoggingConfig, "how events are rendered", restart=True)
    rate_limit: RateLimitConfig | None = setting(
        None, "client-side rate limiting; off unless set", _rate_limit
    )
    shutdown_timeout: float = setting(
        15.0, "seconds in-flight calls get after SIGTERM", seconds(allow_zero=True), restart=True
    )
    signing: SigningConfig = section(SigningConfig, "pre-signing and threads", restart=True)
    compat: CompatConfig = section(CompatConfig, "removed Kalshi routes")
    risk: RiskConfig = section(RiskConfig, "limits on order entry")
    journal: JournalConfig = section(JournalConfig, "the order journal")
    websocket: WebSocketConfig = section(WebSocketConfig, "client WebSockets", restart=True)

    def secret_values(self) -> tuple[str, ...]:
        """Every secret string this configuration holds, for log redaction."""
        secrets = [t.token for t in self.access.tokens]
        if self.credentials.passphrase:
            secrets.append(self.credentials.passphrase)
        return tuple(secrets)
