"""The kill switch against the sandbox's matching engine: a halt refuses order entry and
lets cancels through; with cancel_orders it cancels exactly the resting orders; it
survives a restart; only admins may call it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.gateway.conftest import BOT, DESK, MAKER, OPS, ORDERS, Desk, bid

pytestmark = pytest.mark.usefixtures("clean_env")

HALT, RESUME, STATUS = "/proxy/v1/halt", "/proxy/v1/resume", "/proxy/v1/status"


async def test_a_halt_refuses_entry_and_lets_cancels_through(desk: Desk) -> None:
    resting = await desk.place(BOT)
    status, answer = await desk.call(OPS, "POST", HALT, {"reason": "fat finger"})
    assert status == 200 and answer["halt"]["scope"] == "everyone"
    before = len(desk.state.orders)
    entry = [
        ("POST", ORDERS, bid()),
        ("POST", f"{ORDERS}/batched", {"orders": [bid()]}),
        ("POST", f"{ORDERS}/{resting}/amend", bid(price="0.11")),
        ("POST", f"{ORDERS}/{resting}/decrease", {"reduce_by_fp": "1"}),
    ]
    for method, path, body in entry:
        status, answer = await desk.call(BOT, method, path, body)
        assert status == 403, (path, answer)
        assert answer["error"]["code"] == "proxy_trading_halted"
        assert "fat finger" in answer["error"]["message"]
    assert len(desk.state.orders) == before  # nothing reached the engine
    status, _ = await desk.call(BOT, "DELETE", f"{ORDERS}/{resting}")
    assert status == 200 and resting not in desk.resting()
    status, answer = await desk.call(OPS, "POST", RESUME)
    assert (status, answer) == (200, {"resumed": ["*"]})
    await desk.place(BOT)


@pytest.mark.parametrize(
    "path",
    [
        "/trade-api/v2/portfolio/events/%6Frders",
        "/trade-api/v2/portfolio/events/orders/",
        "/trade-api/v2/portfolio//events/orders",
        "/trade-api/v2/portfolio/events/ORDERS",
        "/trade-api/v2/portfolio/events/orders;x=1",
        "/trade-api/v2/portfolio/events/orders/bat%63hed",
    ],
)
async def test_no_spelling_of_order_entry_walks_around_a_halt(desk: Desk, path: str) -> None:
    await desk.call(OPS, "POST", HALT)
    body = {"orders": [bid()]} if "bat" in path else bid()
    before = len(desk.state.orders)
    status, answer = await desk.call(BOT, "POST", path, body)
    assert status == 403 and answer["error"]["code"] == "proxy_trading_halted"
    assert len(desk.state.orders) == before


async def test_halt_with_cancel_orders_cancels_exactly_the_resting_orders(desk: Desk) -> None:
    ours = {await desk.place(BOT), await desk.place(DESK, price="0.05"), await desk.place(MAKER)}
    filled = await desk.place(BOT, price="0.40", count="1")  # crosses the makers' ask
    assert filled not in desk.resting()
    resting = desk.resting()
    assert ours <= resting  # the makers' own quotes rest too
    status, answer = await desk.call(OPS, "POST", HALT, {"cancel_orders": True})
    assert status == 200
    assert answer["cancel"] == {"listed": len(resting), "cancelled": len(resting), "failed": []}
    assert not desk.resting() & resting
    # Only cancels were sent: the filled order is filled still.
    assert desk.state.orders[filled].status == "executed"


async def test_a_client_halt_stops_and_cancels_that_client_only(desk: Desk) -> None:
    bots = {await desk.place(BOT), await desk.place(BOT, price="0.12")}
    desks = {await desk.place(DESK)}
    body = {"client": "bot", "cancel_orders": True, "reason": "runaway"}
    status, answer = await desk.call(OPS, "POST", HALT, body)
    assert status == 200 and answer["cancel"]["cancelled"] == 2
    assert not bots & desk.resting() and desks <= desk.resting()
    status, answer = await desk.call(BOT, "POST", ORDERS, bid())
    assert (status, answer["error"]["code"]) == (403, "proxy_trading_halted")
    await desk.place(DESK)  # others trade on
    status, _ = await desk.call(OPS, "POST", RESUME, {"client": "bot"})
    await desk.place(BOT)


async def test_a_pinned_client_halt_cancels_in_its_subaccount(desk: Desk) -> None:
    maker = await desk.place(MAKER)
    primary = await desk.place(DESK)
    status, answer = await desk.call(OPS, "POST", HALT, {"client": "maker", "cancel_orders": True})
    assert status == 200 and answer["cancel"]["cancelled"] == 1
    assert maker not in desk.resting() and primary in desk.resting()
    assert desk.state.orders[maker].subaccount == 1


async def test_a_halt_survives_a_restart_until_resumed(desk: Desk) -> None:
    await desk.call(OPS, "POST", HALT, {"reason": "weekend"})
    await desk.restart()
    status, answer = await desk.call(OPS, "GET", STATUS)
    assert status == 200 and answer["halted"] is True
    assert answer["halts"][0]["reason"] == "weekend"
    status, _ = await desk.call(BOT, "POST", ORDERS, bid())
    assert status == 403
    await desk.call(OPS, "POST", RESUME)
    await desk.restart()
    await desk.place(BOT)


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [(None, 401, "proxy_unauthorized"), (BOT, 403, "proxy_admin_only"),
     ("wrong-token-0123456789abcdef", 401, "proxy_unauthorized")],
)  # fmt: skip
async def test_only_admin_tokens_reach_the_admin_api(
    desk: Desk, token: str | None, status: int, code: str
) -> None:
    calls = (("POST", HALT), ("POST", RESUME), ("GET", STATUS), ("GET", "/proxy/v1/journal"))
    for method, path in calls:
        got, answer = await desk.call(token, method, path, {} if method == "POST" else None)
        assert (got, answer["error"]["code"]) == (status, code), path
    got, answer = await desk.call(OPS, "GET", STATUS)
    assert got == 200 and answer["halted"] is False
    await desk.place(BOT)  # no halt was made


async def test_without_tokens_only_loopback_without_origin(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    proxy = await make_proxy(upstream.url)
    reply = await proxy.get(STATUS)
    assert reply.status == 200
    reply = await proxy.post(HALT, headers={"Origin": "http://127.0.0.1:8080"})
    body = await reply.json()
    assert reply.status == 403 and body["error"]["code"] in (
        "proxy_origin_not_allowed",
        "proxy_admin_only",
    )
    assert (await (await proxy.get(STATUS)).json())["halted"] is False
    assert upstream.seen == []  # the admin API is never forwarded


async def test_an_allowed_origin_still_cannot_halt_without_tokens(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    upstream = await make_upstream()
    config = tmp_path / "c.yaml"
    config.write_text("access: {allowed_origins: ['http://localhost:3000']}\n")
    proxy = await make_proxy(upstream.url, config_file=config)
    reply = await proxy.post(HALT, headers={"Origin": "http://localhost:3000"})
    assert reply.status == 403
    assert (await reply.json())["error"]["code"] == "proxy_admin_only"


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"[1]", 400), (b"{", 400), (b'{"client": "nobody"}', 400), (b'{"client": 7}', 400),
     (b'{"cancel_orders": "yes"}', 400), (b"x" * 5000, 413)],
)  # fmt: skip
async def test_a_bad_halt_body_is_a_clear_400_and_halts_nothing(
    desk: Desk, body: bytes, status: int
) -> None:
    headers = {"Authorization": f"Bearer {OPS}"}
    reply = await desk.proxy.post(HALT, data=body, headers=headers)
    assert reply.status == status
    assert (await reply.json())["error"]["code"].startswith("proxy_")
    _, answer = await desk.call(OPS, "GET", STATUS)
    assert answer["halted"] is False


@pytest.mark.parametrize(
    "path", ["/proxy/v1/%68alt", "/%70roxy/v1/halt", "/proxy//v1/halt", "/proxy/v1/./halt"]
)
async def test_no_spelling_reaches_the_admin_api_around_its_check(desk: Desk, path: str) -> None:
    status, answer = await desk.call(BOT, "POST", path, {})
    assert status in (400, 403, 404), answer
    _, state = await desk.call(OPS, "GET", STATUS)
    assert state["halted"] is False


async def test_halts_are_counted_in_the_metrics(desk: Desk) -> None:
    await desk.call(OPS, "POST", HALT)
    await desk.call(BOT, "POST", ORDERS, bid())
    text = await (await desk.proxy.get("/metrics")).text()
    assert 'signing_proxy_halts_total{kind="manual"} 1.0' in text
    assert 'signing_proxy_order_refusals_total{code="proxy_trading_halted"} 1.0' in text


async def test_status_shows_clients_and_the_journal(desk: Desk) -> None:
    _, answer = await desk.call(OPS, "GET", STATUS)
    names = {c["name"]: c for c in answer["clients"]}
    assert names["maker"]["subaccount"] == 1 and names["ops"]["admin"] is True
    assert answer["journal"]["path"] == str(desk.journal)
    assert json.dumps(answer).count(BOT) == 0  # never a token
