"""Prometheus metrics: one registry per app, label values from small fixed sets only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from signing_proxy.gateway.gate import GateStats
from signing_proxy.proxy.live import Live
from signing_proxy.proxy.signing_engine import SigningEngine

# Route groups: the first segments after /trade-api/v2/, mapped to a bounded set. Never a
# raw path or an id, which would make every order a new time series.
_GROUPS = {
    "markets": "markets",
    "events": "events",
    "series": "series",
    "exchange": "exchange",
    "account": "account",
    "communications": "communications",
    "api_keys": "api_keys",
    "trades": "markets",
    "multivariate_event_collections": "events",
}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)
# One kind of call's labelled series: its count, its duration, its upstream part; at most
# this many kinds are kept bound (a client's made-up methods must not grow the table).
_Series = tuple[Counter, Histogram, Histogram]
_MAX_SERIES: Final = 1024
_SIGNING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.01, 0.05)


def route_group(path: str) -> str:
    """The bounded route label for a raw request path."""
    if path.startswith("/trade-api/ws/"):
        return "ws"
    if not path.startswith("/trade-api/v2/"):
        return "none"
    first, _, rest = path[len("/trade-api/v2/") :].partition("/")
    if first == "portfolio":
        second = rest.partition("/")[0]
        if second == "orders" or (second == "events" and rest.startswith("events/orders")):
            return "orders"
        return "portfolio"
    return _GROUPS.get(first, "other")


def method_label(method: str) -> str:
    """The method, or 'other' for anything outside the forwarded set."""
    return method if method in _METHODS else "other"


def status_class(status: int) -> str:
    """'2xx', '4xx', ... for a status code."""
    return f"{status // 100}xx"


class Metrics:
    """The proxy's metrics, registered in a registry of their own."""

    def __init__(self, live: Live, engine: SigningEngine, gate: GateStats | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "signing_proxy_requests",
            "Calls answered, by method, route group and status class.",
            ["method", "route", "status_class"],
            registry=r,
        )
        self.duration = Histogram(
            "signing_proxy_request_duration_seconds",
            "Whole call, as the client sees it.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_duration = Histogram(
            "signing_proxy_upstream_duration_seconds",
            "The upstream part of a call.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.signing = Histogram(
            "signing_proxy_signing_seconds",
            "Time to compute one signature.",
            buckets=_SIGNING_BUCKETS,
            registry=r,
        )
        # Each kind of call's series, bound once (method, route group, status: _bind).
        self._series: dict[tuple[str, str, int], _Series] = {}
        # A plain count, read at scrape time: no lock taken twice per call on the order path.
        self.calls_in_flight = 0
        Gauge(
            "signing_proxy_in_flight_requests", "Calls being handled now.", registry=r
        ).set_function(lambda: self.calls_in_flight)
        self.retries = Counter(
            "signing_proxy_upstream_retries",
            "Upstream attempts repeated (GET and HEAD).",
            registry=r,
        )
        self.upstream_401 = Counter(
            "signing_proxy_upstream_401",
            "Upstream answers of 401 (key or signature refused).",
            registry=r,
        )
        self.reloads = Counter(
            "signing_proxy_reloads", "SIGHUP reloads, by result.", ["result"], registry=r
        )
        self.ws_sessions_total = Counter(
            "signing_proxy_websocket_sessions_opened", "WebSocket sessions opened.", registry=r
        )
        self._ws = _WebSocketCollector()
        r.register(self._ws)
        r.register(_RateLimitCollector(live))
        r.register(_PresignCollector(engine))
        r.register(_GatewayCollector(gate or GateStats()))
        for result in ("ok", "failed"):
            self.reloads.labels(result=result)

    def watch_shared_feed(self, stats: Callable[[], dict[str, float]]) -> None:
        """Read the shared WebSocket feed's figures at scrape time."""
        self.registry.register(_SharedFeedCollector(stats))

    def watch_websockets(
        self, frames: Callable[[], tuple[int, int]], sessions: Callable[[], int]
    ) -> None:
        """Read WebSocket frame totals and open sessions from the relay at scrape time."""
        self._ws.frames = frames
        self._ws.sessions = sessions

    def observe_call(
        self,
        method: str,
        path: str,
        status: int,
        seconds: float,
        upstream_seconds: float | None,
        retries: int,
    ) -> None:
        """Record one finished call."""
        route = route_group(path)
        series = self._series.get((method, route, status))
        if series is None:
            series = self._bind(method, route, status)
        count, duration, upstream_duration = series
        count.inc()
        duration.observe(seconds)
        if upstream_seconds is not None:
            upstream_duration.observe(upstream_seconds)
        if retries:
            self.retries.inc(retries)

    def _bind(self, method: str, route: str, status: int) -> _Series:
        """The labelled series of one kind of call, made once (labels() costs more than the
        observation itself); the key's parts are bounded, so the table is too."""
        series = (
            self.requests.labels(method_label(method), route, status_class(status)),
            self.duration.labels(route),
            self.upstream_duration.labels(route),
        )
        if len(self._series) < _MAX_SERIES:
            self._series[(method, route, status)] = series
        return series


class _WebSocketCollector(Collector):
    """Open sessions and frames relayed, read from the relay when scraped."""

    def __init__(self) -> None:
        self.frames: Callable[[], tuple[int, int]] = lambda: (0, 0)
        self.sessions: Callable[[], int] = lambda: 0

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "signing_proxy_websocket_sessions",
            "WebSocket sessions open now.",
            value=self.sessions(),
        )
        frames = CounterMetricFamily(
            "signing_proxy_websocket_frames",
            "WebSocket frames relayed, by direction.",
            labels=["direction"],
        )
        to_upstream, to_client = self.frames()
        frames.add_metric(["client_to_upstream"], to_upstream)
        frames.add_metric(["upstream_to_client"], to_client)
        yield frames


class _PresignCollector(Collector):
    """Pre-signed signatures used and thrown away, read at scrape time."""

    def __init__(self, engine: SigningEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "signing_proxy_presigned_used",
            "Calls sent with a signature made in advance.",
            value=self._engine.presigned_used,
        )
        yield CounterMetricFamily(
            "signing_proxy_presigned_discarded",
            "Signatures made in advance and thrown away (too old, or the key changed).",
            value=self._engine.presigned_discarded,
        )


class _RateLimitCollector(Collector):
    """Reads the limiter's buckets at scrape time, so requests pay nothing for it."""

    def __init__(self, live: Live) -> None:
        self._live = live

    def collect(self) -> Iterator[Metric]:
        limiter = self._live.current.limiter
        if limiter is None:
            return
        tokens = GaugeMetricFamily(
            "signing_proxy_rate_limit_tokens",
            "Tokens left in each local bucket.",
            labels=["bucket"],
        )
        for bucket, level in limiter.levels().items():
            tokens.add_metric([bucket], level)
        yield tokens
        yield CounterMetricFamily(
            "signing_proxy_rate_limit_waits",
            "Requests that waited for the budget.",
            value=limiter.waits,
        )
        yield CounterMetricFamily(
            "signing_proxy_rate_limit_rejections",
            "Requests refused with 429 locally.",
            value=limiter.rejections,
        )


class _GatewayCollector(Collector):
    """Reads the trading gateway's counts at scrape time: orders pay nothing for them."""

    def __init__(self, stats: GateStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        refusals = CounterMetricFamily(
            "signing_proxy_order_refusals",
            "Order calls the gateway refused, by code (proxy_risk_<rule>, proxy_trading_halted).",
            labels=["code"],
        )
        for code, count in sorted(stats.refusals.items()):
            refusals.add_metric([code], count)
        yield refusals
        halts = CounterMetricFamily(
            "signing_proxy_halts", "Halts, by kind (manual, deadman).", labels=["kind"]
        )
        for kind in ("manual", "deadman"):
            halts.add_metric([kind], stats.halts[kind])
        yield halts
        triggers = CounterMetricFamily(
            "signing_proxy_deadman_triggers",
            "Dead-man's switches fired, by client.",
            labels=["client"],
        )
        for client, count in sorted(stats.deadman_triggers.items()):
            triggers.add_metric([client], count)
        yield triggers
        yield CounterMetricFamily(
            "signing_proxy_orders_cancelled_by_proxy",
            "Resting orders the proxy cancelled (halts and dead-man's switches).",
            value=stats.orders_cancelled,
        )
        yield CounterMetricFamily(
            "signing_proxy_journal_errors",
            "Journal writes that failed (an order that cannot be journaled is not sent).",
            value=stats.journal_errors,
        )


class _SharedFeedCollector(Collector):
    """The shared WebSocket feed (websocket.mode: shared), read at scrape time."""

    _HELP: Final = {
        "upstream_connections": "Shared upstream WebSocket connections open.",
        "upstream_subscriptions": "(channel, market) pairs subscribed upstream.",
        "upstream_reconnects": "Times a shared upstream connection was opened again.",
        "upstream_gaps": "Upstream seq gaps (each resynced with fresh snapshots).",
        "clients_dropped_slow": "Shared-feed clients closed (1008) for falling behind.",
    }

    def __init__(self, stats: Callable[[], dict[str, float]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        for name, value in self._stats().items():
            metric = f"signing_proxy_ws_shared_{name}"
            if name in ("upstream_connections", "upstream_subscriptions"):
                yield GaugeMetricFamily(metric, self._HELP[name], value=value)
            else:
                yield CounterMetricFamily(metric, self._HELP[name], value=value)
