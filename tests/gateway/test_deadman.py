"""The dead-man's switch against the sandbox's engine: a heartbeat client that goes silent
has exactly its resting orders cancelled within N + 1 s, and its order entry halted until
it calls again; a client that keeps calling keeps its orders."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.gateway.conftest import BOT, DESK, OPS, ORDERS, TOKENS, Desk, bid

pytestmark = pytest.mark.usefixtures("clean_env")

HEARTBEAT = 1.0


async def with_heartbeat(desk: Desk) -> None:
    tokens = [dict(t, heartbeat=HEARTBEAT) if t["name"] == "bot" else t for t in TOKENS]
    desk.config.write_text(json.dumps({"access": {"tokens": tokens}}))
    await desk.restart()


async def test_a_silent_client_has_its_orders_cancelled_and_entry_halted(desk: Desk) -> None:
    await with_heartbeat(desk)
    bots = {await desk.place(BOT), await desk.place(BOT, price="0.12")}
    desks = {await desk.place(DESK)}
    silent_since = time.monotonic()
    while bots & desk.resting():
        assert time.monotonic() - silent_since < HEARTBEAT + 1, "not cancelled within N + 1 s"
        await asyncio.sleep(0.05)
    assert desks <= desk.resting()  # only the silent client's orders
    _, status = await desk.call(OPS, "GET", "/proxy/v1/status")
    assert status["halts"][0]["kind"] == "dead-man" and status["halts"][0]["client"] == "bot"
    # Its first call after is refused (it must learn its orders are gone), and re-arms it.
    code, answer = await desk.call(BOT, "POST", ORDERS, bid())
    assert code == 403 and "dead-man" in answer["error"]["message"]
    await desk.place(BOT)
    metrics = await (await desk.proxy.get("/metrics")).text()
    assert 'signing_proxy_deadman_triggers_total{client="bot"} 1.0' in metrics
    assert "signing_proxy_orders_cancelled_by_proxy_total 2.0" in metrics


async def test_a_client_that_keeps_calling_keeps_its_orders(desk: Desk) -> None:
    await with_heartbeat(desk)
    order = await desk.place(BOT)
    for _ in range(8):  # 2.4 s of calls 0.3 s apart: never silent for 1 s
        await asyncio.sleep(0.3)
        status, _ = await desk.call(BOT, "GET", "/trade-api/v2/portfolio/balance")
        assert status == 200
    assert order in desk.resting()
    await desk.place(BOT)


async def test_after_a_restart_a_client_that_never_returns_is_still_cancelled(
    desk: Desk,
) -> None:
    await with_heartbeat(desk)
    order = await desk.place(BOT)
    await desk.restart()  # the bot does not come back
    started = time.monotonic()
    while order in desk.resting():
        assert time.monotonic() - started < HEARTBEAT + 1
        await asyncio.sleep(0.05)
