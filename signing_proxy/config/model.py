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

# Shown (commented out) in the starter config and the reference: these keys take a list or
# a mapping whose shape one line of doc cannot show.
_TOKENS_EXAMPLE = """\
tokens:
  - name: dashboard                 # may only read
    token_env: DASHBOARD_TOKEN
    read_only: true
  - name: bot                       # may trade, but not mass-cancel
    token_env: BOT_TOKEN
    deny: ["DELETE /trade-api/v2/portfolio/events/orders/batched*"]
  - name: maker                     # its own subaccount, and tighter limits
    token_env: MAKER_TOKEN
    subaccount: 1                   # acts on subaccount 1 only (0 is the primary)
    risk: {max_order_count: 5}      # overrides of the top-level risk section
    heartbeat: 30                   # silent 30 s: its resting orders are cancelled
  - name: ops                       # may halt, resume and read the journal
    token_env: OPS_TOKEN
    admin: true
  - name: prices                    # market data only
    token: "a-long-random-string-of-32-chars"
    allow: ["GET /trade-api/v2/markets*", "GET /trade-api/v2/events*"]
"""
_RATE_LIMIT_EXAMPLE = """\
rate_limit:
  source: kalshi             # kalshi | config
  tier: basic                # basic | advanced | premier | paragon | prime
  read_per_second: null      # tokens/s; overrides the tier and Kalshi's answer
  write_per_second: null
  read_capacity: null        # tokens
  write_capacity: null
  max_wait: 1.0              # seconds
  costs:                     # per-endpoint token costs, over Kalshi's
    - {method: GET, path: /trade-api/v2/markets, cost: 10}
"""


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """Where signed requests go and how long to wait for them."""

    rest_url: str = setting(
        "",
        "Kalshi's REST origin; empty: the environment's host",
        network.rest_url,
        env="SIGNING_PROXY_UPSTREAM",
        flag="upstream",
        note="Default from `environment`:\n"
        "demo: https://external-api.demo.kalshi.co\n"
        "production: https://external-api.kalshi.com\n"
        "A value ending in /trade-api/v2 is accepted (only the origin is used).",
    )
    ws_url: str = setting(
        "",
        "Kalshi's WebSocket URL; empty: the environment's, or rest_url's host",
        network.ws_url,
        note="Kalshi's WebSocket host differs from its REST host; when only rest_url is set "
        "(a local upstream), the WebSocket is on rest_url's host (http -> ws, https -> wss).",
    )
    margin_ws_url: str = setting(
        "",
        "Kalshi's margin (perpetuals) WebSocket URL; empty: the environment's",
        network.margin_ws_url,
        note="Served to clients at /trade-api/ws/v2/margin. Kalshi's margin WebSocket has "
        "a host of its own (external-api-margin-ws.*), or rest_url's host when only rest_url "
        "is set.",
    )
    connect_timeout: float = setting(
        5.0,
        "seconds to open an upstream connection",
        seconds(),
        note="Past it the client gets 504 proxy_upstream_connect_timeout.",
    )
    timeout: float = setting(
        30.0,
        "seconds one upstream attempt may take",
        seconds(),
        note="Past it the client gets 504 proxy_upstream_timeout.",
    )
    deadline: float = setting(
        60.0, "seconds for the whole call, retries included", seconds(), note="Backoff included."
    )
    retries: int = setting(
        2,
        "retries of GET and HEAD only",
        integer(0, 10),
        note="Never POST, PUT, PATCH or DELETE: a duplicate order is worse than an error. "
        "Retried on connection failures before any answer and on 502/503/504, with "
        "exponential backoff and full jitter; each attempt is signed afresh.",
    )
    probe_interval: float = setting(
        300.0,
        "seconds between signed probes; 0: off",
        seconds(allow_zero=True),
        restart=True,
        note="A signed GET of /trade-api/v2/exchange/status at start and at this interval: "
        "it warns when the key is refused or the local clock is more than 2 s off Kalshi's. "
        "With 0, /readyz still probes when it needs to.",
    )


@dataclass(frozen=True, slots=True)
class CredentialsConfig:
    """The Kalshi key id and where the private key comes from (never the key in a log)."""

    api_key_id: str | None = setting(
        None, "Kalshi API key id, a UUID", key_id, env="KALSHI_API_KEY_ID"
    )
    private_key_file: str | None = setting(
        None,
        "PEM file of the RSA private key",
        network.key_file,
        env="KALSHI_PRIVATE_KEY_FILE",
        note="PKCS#1 (BEGIN RSA PRIVATE KEY) or PKCS#8 (BEGIN PRIVATE KEY). It must not be "
        "readable by group or others (chmod 600). Or give the PEM itself in "
        "KALSHI_PRIVATE_KEY. Never put the key itself in this file.",
    )
    # The PEM itself, from KALSHI_PRIVATE_KEY only: a key must never sit in a YAML file.
    private_key_pem: str | None = setting(
        None,
        "the PEM itself; literal \\n sequences accepted",
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
        note="For a mounted secret whose mode you cannot change. Prefer fixing the mode.",
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
        note="Loopback names are localhost, *.localhost, 127.0.0.1 and [::1]. E.g. a compose "
        "service name: [signing-proxy]. A request for any other name gets 403 "
        "proxy_host_not_allowed, so a web page cannot reach the proxy through a name it "
        "controls (DNS rebinding). From the environment: comma-separated.",
    )


@dataclass(frozen=True, slots=True)
class AccessConfig:
    """Who may use the proxy and what they may send."""

    tokens: tuple[TokenConfig, ...] = setting(
        (),
        "inbound bearer tokens",
        tokens,
        note="When any is set, every call but the probes must carry one: "
        "'Authorization: Bearer <token>' or 'X-Proxy-Token: <token>' (never forwarded to "
        "Kalshi; only the token's name is logged). At least 16 characters, inline (token) or "
        "from a variable (token_env). Each may be read_only, carry allow / deny rules "
        "('METHOD /path-glob'; METHOD is GET, POST, ... or *; * in the glob matches "
        "anything, / included; deny wins; with an allow list only what it matches passes; a "
        "GET rule covers HEAD), be pinned to a subaccount, be an admin (the API under "
        "/proxy/v1/), have a heartbeat (dead-man's switch, seconds) and override the risk "
        "section.",
        example=_TOKENS_EXAMPLE,
    )
    read_only: bool = setting(False, "only GET and HEAD pass, for every client", boolean)
    max_body_bytes: int = setting(
        MEBIBYTE,
        "largest request body; 0: no limit",
        integer(0),
        note="A larger body gets 413 proxy_body_too_large and never reaches Kalshi.",
    )
    client_timeout: float = setting(
        30.0,
        "seconds a client may take to send a head, or idle",
        seconds(),
        restart=True,
        note="Also the time a client may take to send a body, and may stay idle between "
        "requests on a keep-alive connection (408 proxy_client_timeout).",
    )
    allow_unauthenticated_remote: bool = setting(
        False,
        "serve a non-loopback address without tokens",
        boolean,
        env="SIGNING_PROXY_ALLOW_UNAUTHENTICATED_REMOTE",
        note="Listening on a non-loopback address (0.0.0.0, ::, a LAN address) is refused "
        "unless tokens are configured. Set this to true only on a private network, such as "
        "a compose network where only your own containers reach the proxy; the proxy logs a "
        "warning.",
    )
    # A request from any other web page is refused, so a page in the user's browser
    # cannot trade with the key.
    allowed_origins: tuple[str, ...] = setting(
        (),
        "browser origins allowed to call",
        network.allowed_origins,
        env="SIGNING_PROXY_ALLOWED_ORIGINS",
        note='E.g. ["http://localhost:3000"] for your own dashboard. A request that '
        "carries any other Origin, or that a browser marks Sec-Fetch-Site: cross-site or "
        "same-site, gets 403 proxy_origin_not_allowed, WebSocket handshakes included. "
        "Preflights are answered by the proxy and never forwarded. From the environment: "
        "comma-separated.",
    )


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Bounds on what clients can hold: connections, request heads, WebSocket sessions."""

    max_connections: int = setting(
        1024,
        "client connections at once",
        integer(1),
        note="Past it new ones get 503 proxy_too_many_connections.",
    )
    max_header_bytes: int = setting(
        32768,
        "bytes of one request head",
        integer(1024),
        note="The request line and headers; 431 proxy_header_too_large past it.",
    )
    websocket_sessions: int = setting(
        64,
        "client WebSocket sessions at once",
        integer(0),
        note="Past it 503 proxy_websocket_limit.",
    )
    # Request bodies are read whole before they go upstream; this bounds them all together.
    body_memory_bytes: int = setting(
        64 * MEBIBYTE,
        "bytes of request bodies held at once",
        integer(1),
        note="At least access.max_body_bytes; past it a request gets 503 proxy_busy with "
        "Retry-After: 1.",
    )


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """How events are rendered."""

    format: LogFormat = setting(
        "auto",
        "auto, json or console",
        choice("auto", "json", "console"),
        env="SIGNING_PROXY_LOG_FORMAT",
        note="auto: console lines on a terminal, JSON otherwise.",
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
        note="Kalshi signs only timestamp + METHOD + path, so for a fixed order-entry path a "
        "signature can be ready before the order arrives. Each is used once and thrown away "
        "when older than presign_max_age. Exact paths only.",
    )
    presign_max_age: float = setting(
        1.0,
        "seconds a pre-made signature keeps",
        signing.presign_max_age,
        note="At most 3 (Kalshi accepts about 5 s).",
    )
    presign_depth: int = setting(
        2,
        "signatures kept ready per route",
        integer(1),
        note="A route whose pool a burst of calls finds empty is kept deeper, up to "
        f"{signing.MAX_PRESIGN_DEPTH}, until no call has found it empty for "
        "presign_max_age / 2 seconds.",
    )
    learn_hot_routes: int = setting(
        8,
        "hot read routes pre-signed; 0: off",
        integer(0),
        note="Read routes (GET, HEAD) called 3 times within a second, such as a polled "
        "balance, are pre-signed the same way while they stay hot (forgotten after 5 s idle).",
    )
    threads: int = setting(
        2,
        "threads that sign under load, and that keep the pre-signed pools full",
        integer(1),
        note="cryptography releases the GIL; an idle proxy signs on the event loop, which is "
        "faster for a single call. As many threads again keep the pools full, each putting "
        "its signatures in them itself, without waking the event loop.",
    )


@dataclass(frozen=True, slots=True)
class CompatConfig:
    """What to do with calls to Kalshi routes that no longer exist."""

    # refuse: 410 naming the V2 route, never forwarded (Kalshi has answered these with a
    # 2xx and no order). translate: sent as the V2 write, answered in the V1 shape.
    v1_orders: V1Orders = setting(
        "refuse",
        "refuse or translate V1 order writes",
        choice("refuse", "translate"),
        note="Kalshi removed the V1 order writes in 2026 (POST /portfolio/orders, DELETE "
        "/portfolio/orders/{id}, .../amend, .../decrease, .../batched). refuse: 410 "
        "proxy_v1_order_endpoint_removed naming the V2 route. translate: the V2 write is "
        "sent instead and answered in the V1 shape, for bots that cannot be changed.",
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
        note="default: $XDG_STATE_HOME/signing-proxy/journal-<environment>.sqlite3 "
        "(~/.local/state/... on Linux, ~/Library/Application Support/signing-proxy on macOS, "
        "%LOCALAPPDATA%\\signing-proxy on Windows).",
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
        note="Either way each client speaks Kalshi's protocol; shared keeps one upstream "
        "subscription per (channel, market) and gives each client its own sids and seq.",
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
        None,
        "client-side rate limiting; off unless set",
        _rate_limit,
        note="Token buckets that mirror Kalshi's, so clients never meet Kalshi's own 429. "
        "Over budget a request waits (first come, first served) up to max_wait seconds, "
        "then gets 429 proxy_rate_limited with Retry-After. source kalshi reads the key's "
        "buckets (GET /account/limits) and costs (GET /account/endpoint_costs) at start and "
        "on reload, the other settings being the fallback; config uses them only. tier: "
        "basic, advanced, premier, paragon or prime. *_per_second and *_capacity you set win "
        "over the tier and Kalshi's answer (capacity defaults: 1 s of budget; writes 2 s, 1 s "
        "on basic). A batch is billed once per order in it, as Kalshi bills it.",
        example=_RATE_LIMIT_EXAMPLE,
    )
    shutdown_timeout: float = setting(
        15.0,
        "seconds in-flight calls get after SIGTERM",
        seconds(allow_zero=True),
        restart=True,
        note="A hard cap: calls still in flight then are cut (logged with status 503). A "
        "container's stop grace period must be longer.",
    )
    signing: SigningConfig = section(SigningConfig, "pre-signing and threads", restart=True)
    compat: CompatConfig = section(CompatConfig, "removed Kalshi routes")
    risk: RiskConfig = section(
        RiskConfig,
        "limits on order entry",
        note="Checked on V2 creates, batched creates (one refusal refuses the batch) and "
        "amends before Kalshi sees them; a refused order gets 403 proxy_risk_<rule>. "
        "A token may override any of these for itself: access.tokens[].risk.",
    )
    journal: JournalConfig = section(
        JournalConfig,
        "the order journal",
        note="SQLite (WAL, mode 0600): every order-entry call and cancel, written before the "
        "call goes to Kalshi and completed with its answer; it also keeps the halt state and "
        "the daily notional across restarts. Read it with `signing-proxy journal`. No key, "
        "token, signature or body is stored.",
    )
    websocket: WebSocketConfig = section(
        WebSocketConfig, "client WebSockets (/trade-api/ws/v2 and .../margin)", restart=True
    )

    def secret_values(self) -> tuple[str, ...]:
        """Every secret string this configuration holds, for log redaction."""
        secrets = [t.token for t in self.access.tokens]
        if self.credentials.passphrase:
            secrets.append(self.credentials.passphrase)
        return tuple(secrets)
