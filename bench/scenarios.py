"""The scenario groups: which scenarios each runs, with which names, labels and baselines."""

from __future__ import annotations

import time
from typing import Any

from common import BALANCE_PATH, BATCHED_PATH, ORDER_BODY, ORDERS_PATH
from measure_http import paced_scenario
from records import Ctx
from servers import Proxy, Upstream, warm_up


def paced_group(ctx: Ctx, up: Upstream, px: Proxy) -> None:
    """c=1 latency, open loop at --paced-rate: GET balance, and POST orders pre-signed vs not."""
    rate = f"{ctx.args.paced_rate:g}/s"
    orders = (f"{up.url}{ORDERS_PATH}", f"{px.url}{ORDERS_PATH}")
    for u in (*orders, f"{up.url}{BATCHED_PATH}", f"{px.url}{BATCHED_PATH}"):
        warm_up(u, n=5, method="POST", body=ORDER_BODY)
    time.sleep(0.2)  # let the proxy refill its pre-signed pool after the warm-up
    paced_scenario(
        ctx,
        "direct_paced_get",
        f"direct GET balance, {rate} paced",
        f"{up.url}{BALANCE_PATH}",
        via="direct",
        upstream=up,
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
    post: dict[str, Any] = {"method": "POST", "body": ORDER_BODY, "upstream": up}
    paced_scenario(
        ctx,
        "direct_paced_post",
        f"direct POST orders, {rate} paced",
        orders[0],
        via="direct",
        **post,
    )
    paced_scenario(
        ctx,
        "proxy_paced_post",
        f"proxy  POST orders (pre-signed), {rate}",
        orders[1],
        via="proxy",
        proxy=px,
        baseline="direct_paced_post",
        presigned=True,
        **post,
    )
    paced_scenario(
        ctx,
        "proxy_paced_batched",
        f"proxy  POST orders/batched, on demand, {rate}",
        f"{px.url}{BATCHED_PATH}",
        via="proxy",
        proxy=px,
        baseline="direct_paced_post",
        presigned=False,
        **post,
    )
