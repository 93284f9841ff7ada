"""Kalshi's own limits for the key, read (signed) at start; the built-in table is only
the fallback; batches are billed per order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from signing_proxy.proxy.app import LIVE
from signing_proxy.proxy.ratelimit import RateLimiter

pytestmark = pytest.mark.usefixtures("clean_env")

CREATE = "/trade-api/v2/portfolio/events/orders"
LIMITS = {
    "grants": [],
    "read": {"bucket_capacity": 300, "refill_rate": 300},
    "usage_tier": "advanced",
    "write": {"bucket_capacity": 140, "refill_rate": 70},
}
COSTS = {
    "default_cost": 10,
    "endpoint_costs": [
        {"cost": 7, "method": "POST", "path": CREATE},
        {"cost": 3, "method": "POST", "path": f"{CREATE}/batched"},
    ],
}


def kalshi_like(limits: Any = LIMITS, costs: Any = COSTS, status: int = 200):
    """An upstream that answers the two limit calls as Kalshi would, and 201 to writes."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/trade-api/v2/account/limits":
            return web.json_response(limits, status=status)
        if request.path == "/trade-api/v2/account/endpoint_costs":
            return web.json_response(costs, status=status)
        return web.json_response({}, status=201)

    return handler


async def limiter_of(client: Any, learned: bool = True) -> RateLimiter:
    limiter = client.app[LIVE].current.limiter
    assert limiter is not None
    async with asyncio.timeout(5):
        while learned and limiter.learned is None:
            await asyncio.sleep(0.01)
    return limiter


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


async def test_kalshis_buckets_and_costs_replace_the_tier(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    upstream = await make_upstream(kalshi_like())
    with capture_logs() as events:
        client = await make_proxy(upstream.url, config_file=config(tmp_path, "rate_limit: {}\n"))
        limiter = await limiter_of(client)
    assert limiter.levels()["write"] == 140  # basic would hold 100
    assert (limiter.rate("read"), limiter.rate("write")) == (300, 70)
    assert limiter.cost_of("POST", CREATE) == ("write", 7)  # Kalshi's cost, not the default
    assert (await client.post(CREATE, data=b"{}")).status == 201
    assert limiter.levels()["write"] < 140
    learned = [e for e in events if e["event"] == "rate_limit_learned"]
    assert learned and learned[0]["tier"] == "advanced" and learned[0]["endpoint_costs"] == 2
    # Both reads were signed, and verified by the upstream.
    reads = [s for s in upstream.seen if s.raw_path.startswith("/trade-api/v2/account/")]
    assert len(reads) == 2 and all(s.auth_error is None for s in reads)


async def test_a_batch_is_billed_per_order(make_upstream, make_proxy, tmp_path: Path) -> None:
    upstream = await make_upstream(kalshi_like())
    # A slow refill (pinned), so the level shows what the batch took.
    text = "rate_limit: {write_per_second: 20}\n"
    client = await make_proxy(upstream.url, config_file=config(tmp_path, text))
    limiter = await limiter_of(client)
    body = b'{"orders": [{}, {}, {}, {}, {}]}'
    assert (await client.post(f"{CREATE}/batched", data=body)).status == 201
    assert 125 - 1e-6 < limiter.levels()["write"] < 129  # 5 orders x 3 tokens, not 3


async def test_bucket_settings_the_user_wrote_win(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    upstream = await make_upstream(kalshi_like())
    text = "rate_limit: {write_per_second: 20}\n"
    client = await make_proxy(upstream.url, config_file=config(tmp_path, text))
    limiter = await limiter_of(client)
    assert limiter.rate("write") == 20  # pinned
    assert limiter.rate("read") == 300  # Kalshi's


@pytest.mark.parametrize(
    ("limits", "status", "reason"),
    [
        (LIMITS, 401, "answered 401"),
        ({"usage_tier": "basic"}, 200, "read is missing"),
        ({**LIMITS, "write": {"refill_rate": -1, "bucket_capacity": 1}}, 200, "refill_rate"),
    ],
)
async def test_without_kalshis_answer_the_tier_is_the_fallback_and_says_so(
    make_upstream, make_proxy, tmp_path: Path, limits: Any, status: int, reason: str
) -> None:
    upstream = await make_upstream(kalshi_like(limits, status=status), verify=False)
    with capture_logs() as events:
        client = await make_proxy(upstream.url, config_file=config(tmp_path, "rate_limit: {}\n"))
        limiter = await limiter_of(client, learned=False)
        async with asyncio.timeout(5):
            while not [e for e in events if e["event"] == "rate_limit_fallback"]:
                await asyncio.sleep(0.01)
    (fallback,) = [e for e in events if e["event"] == "rate_limit_fallback"]
    assert reason in fallback["reason"]
    assert limiter.learned is None and limiter.levels()["write"] == 100  # basic's


async def test_source_config_never_asks_kalshi(make_upstream, make_proxy, tmp_path: Path) -> None:
    upstream = await make_upstream(kalshi_like())
    text = "rate_limit: {source: config}\n"
    client = await make_proxy(upstream.url, config_file=config(tmp_path, text))
    await asyncio.sleep(0.2)
    assert (await limiter_of(client, learned=False)).learned is None
    assert upstream.seen == []


async def test_the_sandbox_answers_both_calls_and_the_proxy_learns_them(
    key_material, make_proxy, tmp_path: Path
) -> None:
    from aiohttp.test_utils import TestServer

    from signing_proxy.sandbox import create_sandbox_app
    from tests.support.keys import KEY_ID

    sandbox = TestServer(create_sandbox_app({KEY_ID: key_material.public_key}))
    await sandbox.start_server()
    try:
        url = str(sandbox.make_url("")).rstrip("/")
        client = await make_proxy(url, config_file=config(tmp_path, "rate_limit: {}\n"))
        limiter = await limiter_of(client)
        assert limiter.learned is not None and limiter.learned.tier == "basic"
        assert limiter.cost_of("DELETE", f"{CREATE}/o-1") == ("write", 2)
    finally:
        await sandbox.close()
