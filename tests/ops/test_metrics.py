"""Metrics at /metrics: values move as requests pass, labels stay bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from signing_proxy.ops.metrics import route_group

pytestmark = pytest.mark.usefixtures("clean_env")


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_request_counters_and_histograms_move(make_upstream, make_proxy) -> None:
    async def answer(request: web.Request) -> web.Response:
        status = 404 if "missing" in request.path else 200
        return web.json_response({}, status=status)

    upstream = await make_upstream(answer)
    client = await make_proxy(upstream.url)
    before = await scrape(client)
    for _ in range(3):
        await client.get("/trade-api/v2/markets?limit=1")
    await client.post("/trade-api/v2/portfolio/events/orders", data=b"{}")
    await client.delete("/trade-api/v2/portfolio/events/orders/4a75a66e-missing")
    await client.get("/nope")
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    counter = "signing_proxy_requests_total"
    assert delta(counter, method="GET", route="markets", status_class="2xx") == 3
    assert delta(counter, method="POST", route="orders", status_class="2xx") == 1
    assert delta(counter, method="DELETE", route="orders", status_class="4xx") == 1
    assert delta(counter, method="GET", route="none", status_class="4xx") == 1
    assert delta("signing_proxy_request_duration_seconds_count", route="markets") == 3
    assert delta("signing_proxy_upstream_duration_seconds_count", route="orders") == 2
    # Five calls signed: the order with a signature made before it came (pre-signed), the
    # others on their way; the histogram times only the signatures made on a call's path.
    assert delta("signing_proxy_presigned_used_total") == 1
    assert delta("signing_proxy_signing_seconds_count") == 4
    # The order id never becomes a label value.
    assert "4a75a66e" not in repr(after)


async def test_upstream_401_and_retries_are_counted(make_upstream, make_proxy) -> None:
    statuses = [503]

    async def flaky(request: web.Request) -> web.Response:
        return web.json_response({}, status=statuses.pop() if statuses else 200)

    upstream = await make_upstream(flaky)
    client = await make_proxy(upstream.url)
    await client.get("/trade-api/v2/markets")
    samples = await scrape(client)
    assert value(samples, "signing_proxy_upstream_retries_total") == 1

    strangers = await make_proxy(upstream.url, KALSHI_API_KEY_ID="unknown-key-id")
    await strangers.get("/trade-api/v2/portfolio/balance")
    assert value(await scrape(strangers), "signing_proxy_upstream_401_total") == 1


async def test_rate_limit_levels_and_rejections(make_upstream, make_proxy, tmp_path: Path) -> None:
    upstream = await make_upstream()
    config = tmp_path / "c.yaml"
    config.write_text(
        "rate_limit: {source: config, write_per_second: 10, write_capacity: 20, max_wait: 0, "
        "costs: "
        "[{method: POST, path: /trade-api/v2/portfolio/events/orders, cost: 20}]}\n"
    )
    client = await make_proxy(upstream.url, config_file=config)
    assert value(await scrape(client), "signing_proxy_rate_limit_tokens", bucket="write") == 20
    assert (await client.post("/trade-api/v2/portfolio/events/orders", data=b"{}")).status == 200
    assert (await client.post("/trade-api/v2/portfolio/events/orders", data=b"{}")).status == 429
    samples = await scrape(client)
    assert value(samples, "signing_proxy_rate_limit_tokens", bucket="write") < 5
    assert value(samples, "signing_proxy_rate_limit_rejections_total") == 1


async def test_in_flight_gauge_counts_the_scrape_itself(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    assert value(await scrape(client), "signing_proxy_in_flight_requests") == 1


@pytest.mark.parametrize(
    ("path", "group"),
    [
        ("/trade-api/v2/markets/KX-1/orderbook", "markets"),
        ("/trade-api/v2/portfolio/events/orders/abc", "orders"),
        ("/trade-api/v2/portfolio/events/orders", "orders"),
        ("/trade-api/v2/portfolio/balance", "portfolio"),
        ("/trade-api/v2/exchange/status", "exchange"),
        ("/trade-api/v2/something-new/x", "other"),
        ("/trade-api/ws/v2", "ws"),
        ("/favicon.ico", "none"),
    ],
)
def test_route_groups_are_bounded(path: str, group: str) -> None:
    assert route_group(path) == group


async def test_websocket_sessions_and_frames(key_material, make_proxy) -> None:
    from aiohttp.test_utils import TestServer

    from signing_proxy.sandbox import create_sandbox_app
    from tests.support.keys import KEY_ID

    sandbox = TestServer(create_sandbox_app({KEY_ID: key_material.public_key}))
    await sandbox.start_server()
    try:
        client = await make_proxy(str(sandbox.make_url("")).rstrip("/"))
        async with client.ws_connect("/trade-api/ws/v2") as ws:
            await ws.send_json({"id": 1, "cmd": "list_subscriptions"})
            await ws.receive(timeout=5)
            samples = await scrape(client)
            assert value(samples, "signing_proxy_websocket_sessions") == 1
            assert (
                value(
                    samples, "signing_proxy_websocket_frames_total", direction="client_to_upstream"
                )
                == 1
            )
            assert (
                value(
                    samples, "signing_proxy_websocket_frames_total", direction="upstream_to_client"
                )
                >= 1
            )
        await asyncio.sleep(0.1)
        samples = await scrape(client)
        assert value(samples, "signing_proxy_websocket_sessions") == 0
        assert value(samples, "signing_proxy_websocket_sessions_opened_total") == 1
        assert (
            value(samples, "signing_proxy_websocket_frames_total", direction="client_to_upstream")
            == 1
        )
    finally:
        await sandbox.close()


async def test_made_up_methods_are_counted_but_bind_no_unbounded_table(key_file) -> None:
    """Each kind of call's series is bound once and kept; a flood of made-up methods is
    still counted (as 'other') but keeps no more than _MAX_SERIES of them."""
    from signing_proxy.config import CredentialsConfig, load_config
    from signing_proxy.kalshi.signer import load_signer
    from signing_proxy.ops import metrics as metrics_module
    from signing_proxy.proxy.live import Live
    from signing_proxy.proxy.signing_engine import SigningEngine
    from tests.support.keys import KEY_ID

    signer = load_signer(CredentialsConfig(api_key_id=KEY_ID, private_key_file=str(key_file)))
    metrics = metrics_module.Metrics(
        Live.build(load_config(None, {}), signer), SigningEngine(lambda: signer)
    )
    calls = metrics_module._MAX_SERIES + 500
    for n in range(calls):
        metrics.observe_call(f"M{n}", "/trade-api/v2/markets", 200, 0.001, 0.0005, 0)
    for _ in range(3):
        metrics.observe_call("GET", "/trade-api/v2/markets", 200, 0.001, None, 0)
    assert len(metrics._series) == metrics_module._MAX_SERIES
    counted = metrics.requests.labels("other", "markets", "2xx")._value.get()
    assert counted == calls
    assert metrics.requests.labels("GET", "markets", "2xx")._value.get() == 3
    assert metrics.upstream_duration.labels("markets")._sum.get() == pytest.approx(calls * 0.0005)
