"""The scenario groups: which scenarios each runs, with which names, labels and baselines."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from anchors import start_minimal, start_nginx
from certs import make_tls
from clients import run_loadgen
from common import (
    BALANCE_PATH,
    HOST,
    MIB,
    ON_DEMAND_PATH,
    ORDER_BODY,
    ORDERS_PATH,
    STREAM_PATH,
    WS_PATH,
)
from fanout import fanout_result, merge_fanout
from measure_http import (
    PacedRow,
    http_scenario,
    oneshot_scenario,
    paced_in_turn,
    paced_scenario,
    sandbox_scenario,
)
from measure_streams import idle_scenario, stream_scenario, ws_scenario
from processes import Watch, proc_status_kib, stop
from records import Ctx
from servers import Proxy, Upstream, start_proxy, start_upstream, warm_up

# The groups that share the fast upstream and one proxy, in the order they run.
FAST_GROUPS = ("keepalive", "paced", "gateway", "stream", "idle", "ws", "fanout")


def fast_groups(ctx: Ctx, groups: set[str], info: dict[str, Any]) -> None:
    """Start the fast upstream and a proxy, run the chosen groups of FAST_GROUPS, stop both."""
    args, tmp = ctx.args, ctx.tmp
    up = start_upstream(
        tmp,
        "upstream-fast",
        ctx.key_id,
        ctx.pub,
        verify_every=args.verify_every,
        uvloop=not args.no_uvloop,
    )
    px = start_proxy(tmp, "proxy-fast", up, ctx.key_id, ctx.key, args.proxy_log_level)
    info["proxy_rss_after_start_mib"] = round((proc_status_kib(px.pid, "VmRSS") or 0) / 1024, 2)
    warm_up(f"{up.url}{BALANCE_PATH}")
    warm_up(f"{px.url}{BALANCE_PATH}")
    if "keepalive" in groups:
        keepalive_group(ctx, up, px)
    if "paced" in groups:
        paced_group(ctx, up, px)
    if "gateway" in groups:
        gateway_group(ctx, up)
    if "stream" in groups:
        stream_group(ctx, up, px)
    if "idle" in groups:
        idle_group(ctx, px)
    if "ws" in groups:
        ws_group(ctx, up)
    if "fanout" in groups:
        fanout_group(ctx, up)
    ctx.stop_proxy("proxy-fast", px)
    stop(up.proc)


def keepalive_group(ctx: Ctx, up: Upstream, px: Proxy) -> None:
    """GET balance direct and through the proxy, closed loop at each --concurrency."""
    direct, proxied = f"{up.url}{BALANCE_PATH}", f"{px.url}{BALANCE_PATH}"
    for c in ctx.args.concurrency:
        http_scenario(
            ctx,
            f"direct_c{c}",
            f"direct GET balance, c={c}",
            direct,
            c,
            via="direct",
            upstream=up,
        )
        http_scenario(
            ctx,
            f"proxy_c{c}",
            f"proxy  GET balance, c={c}",
            proxied,
            c,
            via="proxy",
            upstream=up,
            proxy=px,
            baseline=f"direct_c{c}",
        )


def paced_group(ctx: Ctx, up: Upstream, px: Proxy) -> None:
    """c=1 latency, open loop at --paced-rate: GET balance, and POST orders pre-signed vs not."""
    rate = f"{ctx.args.paced_rate:g}/s"
    orders = (f"{up.url}{ORDERS_PATH}", f"{px.url}{ORDERS_PATH}")
    for u in (*orders, f"{up.url}{ON_DEMAND_PATH}", f"{px.url}{ON_DEMAND_PATH}"):
        warm_up(u, n=5, method="POST", body=ORDER_BODY)
    time.sleep(0.2)  # let the proxy refill its pre-signed pool after the warm-up
    paced_scenario(
        ctx,
        "direct_paced_get",
        f"direct GET balance, {rate} paced",
        f"{up.url}{BALANCE_PATH}",
        via="direct",
        upstream=up,
        client_signs=True,
    )
    paced_scenario(
        ctx,
        "proxy_paced_get",
        f"proxy  GET balance, {rate} paced",
        f"{px.url}{BALANCE_PATH}",
        via="proxy",
        upstream=up,
        proxy=px,
        baseline="direct_paced_get",
    )
    anchors = start_anchors(ctx, up)
    rows = [
        PacedRow("direct_paced_post", f"direct POST orders, {rate} paced", orders[0], "direct",
                 client_signs=True),
        PacedRow("proxy_paced_post", f"proxy  POST orders (pre-signed), {rate}", orders[1],
                 "proxy", px, "direct_paced_post", presigned=True),
        *anchor_rows(ctx, anchors),
        PacedRow("proxy_paced_on_demand", f"proxy  POST order_groups/create, on demand, {rate}",
                 f"{px.url}{ON_DEMAND_PATH}", "proxy", px, "direct_paced_post", presigned=False),
    ]  # fmt: skip
    paced_in_turn(ctx, rows, up, method="POST", body=ORDER_BODY, rounds=ctx.args.paced_rounds)
    for _, anchor in anchors:
        stop(anchor.proc)


# Every gateway feature on, none of them refusing the bench's order (1 contract at $0.01).
_GATEWAY_TOKEN = "bench-gateway-token-0123456789"  # noqa: S105 - a throwaway, loopback only
_GATEWAY_CONFIG = {
    "access": {"tokens": [{"name": "bench", "token": _GATEWAY_TOKEN, "heartbeat": 3600}]},
    "risk": {
        "max_order_count": 1000, "max_order_notional": 1000, "price_collar": [0.01, 0.99],
        "allow_tickers": ["KXBENCH-*"], "deny_tickers": ["KXBTC*"],
        "max_orders_per_minute": 1_000_000, "max_daily_notional": 1_000_000_000,
    },
}  # fmt: skip


def gateway_group(ctx: Ctx, up: Upstream) -> None:
    """Pre-signed order entry, paced, through a proxy with the gateway off (no journal, no
    token, no rules) and one with all of it on (token, every risk rule, heartbeat, journal),
    same upstream, same run: what the gateway adds to an order's latency."""
    config = ctx.tmp / "gateway.yaml"
    config.write_text(json.dumps(_GATEWAY_CONFIG))  # JSON is YAML
    bare = start_proxy(
        ctx.tmp, "proxy-bare", up, ctx.key_id, ctx.key, ctx.args.proxy_log_level,
        {"SIGNING_PROXY_JOURNAL": "null"},
    )  # fmt: skip
    full = start_proxy(
        ctx.tmp, "proxy-gateway", up, ctx.key_id, ctx.key, ctx.args.proxy_log_level,
        {"SIGNING_PROXY_CONFIG": str(config)},
    )  # fmt: skip
    token = f"Authorization: Bearer {_GATEWAY_TOKEN}"
    rate = f"{ctx.args.paced_rate:g}/s"
    for proxy, headers in ((bare, ()), (full, (token,))):
        warm_up(f"{proxy.url}{ORDERS_PATH}", n=5, method="POST", body=ORDER_BODY, headers=headers)
    # Direct and the anchors again, in turn with the proxy's rows: this VM's latency drifts
    # within a run, and a ratio is only as good as the two figures being taken together.
    anchors = start_anchors(ctx, up)
    direct = "direct_paced_post_gw"
    rows = [
        PacedRow(direct, f"direct POST orders, {rate} paced", f"{up.url}{ORDERS_PATH}", "direct",
                 client_signs=True),
        *anchor_rows(ctx, anchors, "_gw"),
        PacedRow("proxy_paced_post_bare", f"proxy  POST orders, gateway off, {rate}",
                 f"{bare.url}{ORDERS_PATH}", "proxy", bare, direct, presigned=True),
        PacedRow("proxy_paced_post_gateway", f"proxy  POST orders, gateway all on, {rate}",
                 f"{full.url}{ORDERS_PATH}", "proxy", full, direct, presigned=True,
                 headers=(token,)),
    ]  # fmt: skip
    time.sleep(0.2)  # the pre-signed pools refill after the warm-up
    paced_in_turn(ctx, rows, up, method="POST", body=ORDER_BODY, rounds=ctx.args.paced_rounds)
    for _, anchor in anchors:
        stop(anchor.proc)
    ctx.stop_proxy("proxy-bare", bare)
    ctx.stop_proxy("proxy-gateway", full)


def stream_group(ctx: Ctx, up: Upstream, px: Proxy) -> None:
    """One --stream-mib body, direct and through the proxy."""
    size = ctx.args.stream_mib * MIB
    q = f"{STREAM_PATH}?bytes={size}"
    stream_scenario(
        ctx,
        "direct_stream",
        f"direct stream {ctx.args.stream_mib} MiB",
        f"{up.url}{q}",
        size,
        via="direct",
        proxy=None,
        baseline=None,
    )
    stream_scenario(
        ctx,
        "proxy_stream",
        f"proxy  stream {ctx.args.stream_mib} MiB",
        f"{px.url}{q}",
        size,
        via="proxy",
        proxy=px,
        baseline="direct_stream",
    )


def idle_group(ctx: Ctx, px: Proxy) -> None:
    """--idle-connections idle client connections held open to the proxy."""
    idle_scenario(
        ctx,
        "proxy_idle",
        f"proxy  {ctx.args.idle_connections} idle connections",
        px,
        ctx.args.idle_connections,
    )


def ws_group(ctx: Ctx, up: Upstream) -> None:
    """One WebSocket session direct (signing its own handshake) and through the proxy in
    websocket.mode relay: this feed's frames and echoes are not Kalshi's protocol, which
    the default (shared) mode speaks; group fanout measures that mode."""
    px = start_proxy(
        ctx.tmp, "proxy-ws-relay", up, ctx.key_id, ctx.key, ctx.args.proxy_log_level,
        {"SIGNING_PROXY_WEBSOCKET_MODE": "relay"},
    )  # fmt: skip
    ws_scenario(
        ctx,
        "direct_ws",
        "direct WebSocket feed + echo, 1 session",
        f"ws://{HOST}:{up.port}{WS_PATH}",
        via="direct",
        upstream=up,
        proxy=None,
        baseline=None,
        sign=True,
    )
    ws_scenario(
        ctx,
        "proxy_ws",
        "proxy  WebSocket feed + echo, 1 session (relay)",
        f"ws://{HOST}:{px.port}{WS_PATH}",
        via="proxy",
        upstream=up,
        proxy=px,
        baseline="direct_ws",
        sign=False,
    )
    ctx.stop_proxy("proxy-ws-relay", px)


def oneshot_group(ctx: Ctx) -> None:
    """One-shot clients: direct HTTPS to a TLS upstream vs plain HTTP to the proxy."""
    args, tmp = ctx.args, ctx.tmp
    tls = make_tls(tmp)
    up = start_upstream(
        tmp,
        "upstream-tls",
        ctx.key_id,
        ctx.pub,
        verify_every=args.verify_every,
        tls=tls,
        uvloop=not args.no_uvloop,
    )
    px = start_proxy(
        tmp,
        "proxy-tls",
        up,
        ctx.key_id,
        ctx.key,
        args.proxy_log_level,
        {"SSL_CERT_FILE": str(tls[0])},
    )
    direct, proxied = f"{up.url}{BALANCE_PATH}", f"{px.url}{BALANCE_PATH}"
    warm_up(direct, n=3, ssl_context=up.ssl_context)
    warm_up(proxied, n=3)
    oneshot_scenario(
        ctx,
        "direct_oneshot",
        "direct one-shot HTTPS, c=1",
        direct,
        via="direct",
        upstream=up,
        proxy=None,
        baseline=None,
        cafile=tls[0],
    )
    oneshot_scenario(
        ctx,
        "proxy_oneshot",
        "proxy  one-shot (http->pooled TLS), c=1",
        proxied,
        via="proxy",
        upstream=up,
        proxy=px,
        baseline="direct_oneshot",
    )
    ctx.stop_proxy("proxy-tls", px)
    stop(up.proc)


def sandbox_group(ctx: Ctx) -> None:
    """GET balance through the proxy to the sandbox upstream (no direct baseline)."""
    up = start_upstream(
        ctx.tmp,
        "upstream-sandbox",
        ctx.key_id,
        ctx.pub,
        sandbox=True,
        uvloop=not ctx.args.no_uvloop,
    )
    px = start_proxy(ctx.tmp, "proxy-sandbox", up, ctx.key_id, ctx.key, ctx.args.proxy_log_level)
    warm_up(f"{px.url}{BALANCE_PATH}", n=20)
    sandbox_scenario(ctx, up, px)
    ctx.stop_proxy("proxy-sandbox", px)
    stop(up.proc)


# Frames/s the fan-out upstream sends, by clients: 100,000 delivered in all from 10 on.
_FANOUT = ((1, 10_000), (10, 10_000), (50, 2_000))


def _fan_out(args: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """Run the fan-out receivers: one process for one client; from 10 clients on, two
    processes side by side (one Python process cannot take 100,000 frames/s: it ran at
    90% of a core at 80,000 while the proxy used 50%)."""
    if clients < 10:
        return run_loadgen("fanout", *args, timeout=seconds + 60)
    halves = (clients // 2, clients - clients // 2)
    with ThreadPoolExecutor(len(halves)) as pool:
        runs = [
            pool.submit(run_loadgen, "fanout", *args, "--concurrency", str(n), timeout=seconds + 60)
            for n in halves
        ]
        return merge_fanout([run.result() for run in runs])


def fanout_group(ctx: Ctx, up: Upstream) -> None:
    """websocket.mode: shared: one upstream feed to 1, 10 and 50 clients, and direct."""
    px = start_proxy(
        ctx.tmp, "proxy-shared", up, ctx.key_id, ctx.key, ctx.args.proxy_log_level,
        {"SIGNING_PROXY_WEBSOCKET_MODE": "shared", "SIGNING_PROXY_LOG_LEVEL": "warning"},
    )  # fmt: skip
    seconds = max(1.0, ctx.duration)
    runs = [("direct", up, 1, 10_000)] + [("proxy", px, c, r) for c, r in _FANOUT]
    for via, server, clients, rate in runs:
        key = f"{via}_ws_fanout_{clients}"
        args = ["--url", f"{server.url.replace('http', 'ws', 1)}{WS_PATH}"]
        args += ["--concurrency", str(clients), "--feed-rate", str(rate)]
        args += ["--feed-count", str(int(rate * seconds)), "--feed-delay-ms", "1500"]
        if via == "direct":
            args += ["--key-file", str(ctx.key), "--key-id", ctx.key_id]
        with Watch(px.proc.pid if via == "proxy" else None) as watch:
            res = _fan_out(args, clients, seconds)
        label = f"{via:<6} WebSocket fan-out, {clients} client(s), {rate}/s feed"
        baseline = "direct_ws_fanout_1" if via == "proxy" else None
        ctx.add(fanout_result(ctx, key, label, via, res, baseline, watch))
    ctx.stop_proxy("proxy-shared", px)


def start_anchors(ctx: Ctx, up: Upstream) -> list[tuple[str, Proxy]]:
    """nginx and the minimal aiohttp proxy in front of `up` (those that can run), warmed."""
    anchors = []
    for name, start in (("nginx", start_nginx), ("minimal", start_minimal)):
        anchor = start(ctx.tmp, up)
        if anchor is None:
            print(f"anchor {name}: not available (nginx not installed and not installable)")
            continue
        warm_up(f"{anchor.url}{ORDERS_PATH}", n=5, method="POST", body=ORDER_BODY)
        anchors.append((name, anchor))
    return anchors


def anchor_rows(ctx: Ctx, anchors: list[tuple[str, Proxy]], suffix: str = "") -> list[PacedRow]:
    """The paced POST through each anchor, against the direct row of the same `suffix`.
    The client's signed headers pass through the anchor untouched, to be verified."""
    rate = f"{ctx.args.paced_rate:g}/s"
    return [
        PacedRow(
            f"{name}_paced_post{suffix}",
            f"{name} POST orders (anchor), {rate}",
            f"{anchor.url}{ORDERS_PATH}",
            "anchor",
            baseline=f"direct_paced_post{suffix}",
            client_signs=True,
        )
        for name, anchor in anchors
    ]
