"""Attacks on the trading gateway (issue 13): halts, the admin API, risk rules and the
daily notional, the journal, the dead-man's switch, availability.

Written by an attacking review session. Each test is a promise under attack; the
`test_fixed_` ones were bugs when found, and their docstrings say what the request did
then and what it must do (which they now check)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from signing_proxy.config.tokens import tokens as parse_tokens
from signing_proxy.errors import ConfigError
from signing_proxy.gateway.journal import read
from tests.gateway.conftest import BOT, DESK, MAKER, OPS, ORDERS, TOKENS, Desk, bid

pytestmark = pytest.mark.usefixtures("clean_env")

HALT, RESUME, STATUS, JOURNAL = (f"/proxy/v1/{n}" for n in ("halt", "resume", "status", "journal"))
BALANCE = "/trade-api/v2/portfolio/balance"


async def configure(desk: Desk, **top: Any) -> None:
    """Restart the desk's proxy with `top` merged into its config (tokens kept unless given)."""
    doc: dict[str, Any] = {"access": {"tokens": TOKENS}}
    doc.update(top)
    desk.config.write_text(json.dumps(doc))
    await desk.restart()


def with_heartbeat(name: str, seconds: float) -> list[dict[str, Any]]:
    return [dict(t, heartbeat=seconds) if t["name"] == name else t for t in TOKENS]


def is_proxy_error(answer: Any) -> bool:
    return (
        isinstance(answer, dict)
        and isinstance(answer.get("error"), dict)
        and str(answer["error"].get("code", "")).startswith("proxy_")
        and answer["error"].get("service") == "signing-proxy"
    )


async def raw_call(desk: Desk, token: str | None, method: str, path: str, data: bytes = b"",
                   **headers: str) -> tuple[int, str]:  # fmt: skip
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    reply = await desk.proxy.request(method, path, data=data or None, headers=headers)
    return reply.status, await reply.text()


async def wait_until(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


# --- 3. risk rules and the daily notional ----------------------------------------------------


@pytest.mark.parametrize(
    "poison",
    [bid(price="-0.40", count="5"), bid(price="0.40", count="-5"),
     bid(side="ask", price="5", count="1")],
    ids=["negative-price", "negative-count", "ask-above-one"],
)  # fmt: skip
async def test_fixed_negative_notional_in_a_batch_overshoots_max_daily_notional(
    desk: Desk, poison: dict[str, Any]
) -> None:
    """Fixed: an order with a negative notional (price or count below 0, or an ask priced
    above 1) offsets the real orders of its batch, so the batch is admitted under
    max_daily_notional; Kalshi refuses the bad order, places the real one, and the client
    has sent more than its cap. gate.py _count sums `o.notional` (negative allowed) and
    orders.fixed_point accepts negative numbers. Should be: 400 proxy_invalid_order (or 403)
    and nothing placed."""
    await configure(desk, risk={"max_daily_notional": "1.00"})
    before = set(desk.state.orders)
    real = bid(price="0.40", count="5")  # $2.00: crosses the makers' ask and fills
    status, answer = await desk.call(BOT, "POST", f"{ORDERS}/batched", {"orders": [real, poison]})
    placed = set(desk.state.orders) - before
    assert status in (400, 403) and not placed, (status, answer)


async def test_fixed_go_reads_the_last_case_folded_key_the_proxy_reads_the_exact_one(
    make_upstream: Any, make_proxy: Any, tmp_path: Path
) -> None:
    """Fixed (against Kalshi's Go server): `{"count": "1", "Count": "500"}`; orders._key
    reads the exact key ("1") and the order passes max_order_count 10; Go's encoding/json
    matches keys case-insensitively and the later one wins, so Kalshi places 500. The
    same holds for `{"orders": [small], "Orders": [big]}` in a batch. orders._key says
    itself that Kalshi's server reads keys in any case. Should be: refuse (400
    proxy_invalid_order) a body whose keys collide when case is folded."""
    upstream = await make_upstream()
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"risk": {"max_order_count": 10}}))
    proxy = await make_proxy(upstream.url, config_file=config, SIGNING_PROXY_JOURNAL="null")
    body = b'{"ticker": "T", "side": "bid", "price": "0.10", "count": "1", "Count": "500"}'
    reply = await proxy.post(ORDERS, data=body)
    batch = (
        b'{"orders": [{"ticker": "T", "side": "bid", "price": "0.1", "count": "1"}],'
        b' "Orders": [{"ticker": "T", "side": "bid", "price": "0.1", "count": "500"}]}'
    )
    reply2 = await proxy.post(f"{ORDERS}/batched", data=batch)
    assert (reply.status, reply2.status) == (400, 400) and upstream.seen == []


async def test_fixed_an_order_with_an_unknown_outcome_is_forgotten_by_the_daily_notional(
    make_upstream: Any, make_proxy: Any, tmp_path: Path
) -> None:
    """Fixed: an order whose call timed out (outcome unknown: it may be on the book) counts
    toward max_daily_notional while the proxy runs, but not after a restart: the journal
    stores its error ("proxy_upstream_timeout: ...") and Journal.daily_notional requires
    `error IS NULL`, which drops exactly the 'unknown' rows its docstring promises to count
    (journal.py daily_notional; gate.complete passes record.error as the call's error).
    Same for calls cut by the client ("client_disconnected"/"cut")."""
    slow = {"first": True}

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        if slow["first"]:
            slow["first"] = False
            await asyncio.sleep(3)
        return web.json_response({"order_id": "o-2"}, status=201)

    upstream = await make_upstream(handler)
    config = tmp_path / "c.yaml"
    config.write_text(
        json.dumps({"risk": {"max_daily_notional": "1.00"}, "upstream": {"timeout": 0.5}})
    )
    journal = str(tmp_path / "j.sqlite3")
    proxy = await make_proxy(upstream.url, config_file=config, SIGNING_PROXY_JOURNAL=journal)
    order = json.dumps(bid(price="0.10", count="6")).encode()  # $0.60
    reply = await proxy.post(ORDERS, data=order)
    assert reply.status == 504  # timed out: Kalshi may have it
    reply = await proxy.post(ORDERS, data=order)
    assert reply.status == 403  # counted while the proxy runs
    await proxy.close()
    proxy = await make_proxy(upstream.url, config_file=config, SIGNING_PROXY_JOURNAL=journal)
    reply = await proxy.post(ORDERS, data=order)
    assert reply.status == 403, "after a restart the unknown $0.60 was forgotten"


@pytest.mark.parametrize("gateway_status", [502, 504])
async def test_fixed_a_gateway_timeout_from_kalshis_edge_gives_the_notional_back(
    make_upstream: Any, make_proxy: Any, tmp_path: Path, gateway_status: int
) -> None:
    """Fixed: a POST create answered 502/504 by Kalshi's edge (its load balancer gave up
    while the exchange may well have placed the order) is treated as a known refusal:
    Gate.complete gives the whole notional back (`failed = status >= 300`, known=True since
    no proxy error was recorded) and the journal marks it done. The client can then send
    the same dollars again, past max_daily_notional, while the first order may rest on the
    book (and the dead-man's switch does not know it). Should be: a 502/503/504 answer to
    an order is an unknown outcome, counted like a proxy timeout."""
    answers = iter([gateway_status, 201, 201])

    async def edge(request: web.Request) -> web.Response:
        await request.read()
        status = next(answers)
        if status != 201:
            return web.Response(status=status, text="<html>gateway timeout</html>")
        return web.json_response({"order_id": "o"}, status=201)

    upstream = await make_upstream(edge)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"risk": {"max_daily_notional": "1.00"}}))
    journal = str(tmp_path / "j.sqlite3")
    proxy = await make_proxy(upstream.url, config_file=config, SIGNING_PROXY_JOURNAL=journal)
    order = json.dumps(bid(price="0.10", count="6")).encode()  # $0.60
    reply = await proxy.post(ORDERS, data=order)
    assert reply.status == gateway_status
    reply = await proxy.post(ORDERS, data=order)
    assert reply.status == 403, "the $0.60 of an order of unknown outcome was given back"


@pytest.mark.parametrize("name", ["*", "proxy:halt", "proxy:dead-man"])
def test_reserved_names_cannot_be_token_names(name: str) -> None:
    """'*' is the halt scope of every client and 'proxy:' names the proxy's own calls: a
    token named so could halt everyone, or pass for the proxy in the journal."""
    tokens = [{"name": name, "token": "star-token-0123456789abcdef", "heartbeat": 1.0}]
    with pytest.raises(ConfigError, match="reserved"):
        parse_tokens(tokens, "access.tokens", {})


async def test_concurrent_orders_cannot_overshoot_the_daily_notional(desk: Desk) -> None:
    await configure(desk, risk={"max_daily_notional": "1.00"})
    before = set(desk.state.orders)
    calls = [desk.call(BOT, "POST", ORDERS, bid(price="0.10", count="2")) for _ in range(20)]
    batches = [
        desk.call(BOT, "POST", f"{ORDERS}/batched", {"orders": [bid(price="0.10", count="2")] * 2})
        for _ in range(5)
    ]
    results = await asyncio.gather(*calls, *batches)
    placed = [desk.state.orders[o] for o in set(desk.state.orders) - before]
    total = sum(o.remaining_count * o.yes_price + o.fill_cost for o in placed)
    assert total <= 1, (total, [r[0] for r in results])
    assert all(s in (201, 403) for s, _ in results)


async def test_dry_runs_never_count_toward_the_daily_notional(desk: Desk) -> None:
    await configure(desk, risk={"max_daily_notional": "1.00"})
    for _ in range(10):
        status, answer = await desk.call(
            BOT, "POST", ORDERS, bid(price="0.10", count="5"), **{"X-Proxy-Dry-Run": "1"}
        )
        assert status == 200 and answer["decision"] == "would_forward"
    await desk.place(BOT, price="0.10", count="10")  # the whole $1.00 is still there


@pytest.mark.parametrize(
    "body",
    [b'{"ticker": "KXHIGHNY-26JUN12-B74.5", "side": "bid", "price": 0.1, "count": 500}',
     b'{"ticker": "KXHIGHNY-26JUN12-B74.5", "side": "bid", "price": "NaN", "count": "500"}',
     b'{"ticker": "KXHIGHNY-26JUN12-B74.5", "side": "bid", "price": "0.1", "count": "Infinity"}',
     b'{"ticker": "KXHIGHNY-26JUN12-B74.5", "side": "bid", "price": "0.1", "count": "1e400"}',
     b'\xef\xbb\xbf{"ticker": "KXHIGHNY-26JUN12-B74.5", "side": "bid", "price": "0.1",'
     b' "count": "500"}',
     b'{"orders": [[{"ticker": "X", "side": "bid", "price": "0.1", "count": "500"}]]}',
     b'\xff\xfe{',
     b'{"ticker": "KXHIGHNY-26JUN12-B74.5", "side": "bid", "price": "0.1", "count": "1",'
     b' "count": "500"}'],
)  # fmt: skip
async def test_odd_json_never_gets_a_big_order_past_max_order_count(
    desk: Desk, body: bytes
) -> None:
    await configure(desk, risk={"max_order_count": 10})
    before = len(desk.state.orders)
    path = f"{ORDERS}/batched" if b"orders" in body else ORDERS
    status, text = await raw_call(desk, BOT, "POST", path, body)
    assert status in (400, 403), text
    assert is_proxy_error(json.loads(text))
    assert len(desk.state.orders) == before


# --- 1. halts ---------------------------------------------------------------------------------


ENTRY_SPELLINGS = [
    ("POST", ORDERS),
    ("POST", "/trade-api/v2/portfolio/events/%6Frders"),
    ("POST", "/trade-api/v2/portfolio/events/%256Frders"),
    ("POST", "/trade-api/v2/portfolio/events/Orders/"),
    ("POST", "/trade-api/v2/portfolio/events/orders;a=b"),
    ("POST", "/trade-api/v2//portfolio/events//orders//"),
    ("POST", "/trade-api/v2/portfolio/events/orders%2F"),
    ("POST", "/trade-api/v2/portfolio/events/orders%20"),
    ("POST", "/trade-api/v2/portfolio/events/orders%09"),
    ("POST", f"{ORDERS}/batched"),
    ("POST", f"{ORDERS}/BATCHED"),
    ("POST", f"{ORDERS}/batched;x"),
    ("POST", f"{ORDERS}%2Fbatched"),
    ("POST", "/trade-api/v2/communications/quotes"),
    ("POST", "/trade-api/v2/communications/Quotes/"),
    ("PUT", "/trade-api/v2/communications/quotes/q1/accept"),
    ("PUT", "/trade-api/v2/communications/quotes/q1/confirm"),
    ("PUT", "/trade-api/v2/communications/rfqs/r1/quotes/q1/accept"),
    ("PUT", "/trade-api/v2/communications/rfqs/r1/quotes/q1/%63onfirm"),
    ("POST", "/trade-api/v2/communications/block-trade-proposals"),
    ("POST", "/trade-api/v2/communications/block-trade-proposals/p1/accept"),
]


@pytest.mark.parametrize(("method", "path"), ENTRY_SPELLINGS)
async def test_no_spelling_of_entry_reaches_the_exchange_while_halted(
    desk: Desk, method: str, path: str
) -> None:
    await desk.call(OPS, "POST", HALT)
    seen = len(desk.state.seen)
    body = {"orders": [bid()]} if "atched" in path.lower() else bid()
    status, answer = await desk.call(BOT, method, path, body)
    assert status in (400, 403), (status, answer)
    assert is_proxy_error(answer)
    assert len(desk.state.seen) == seen, [s.raw_path for s in list(desk.state.seen)[seen:]]


@pytest.mark.parametrize("kind", ["amend", "decrease", "AMEND", "%61mend", "amend/", "amend;p"])
async def test_amend_and_decrease_are_refused_while_halted(desk: Desk, kind: str) -> None:
    order = await desk.place(BOT)
    await desk.call(OPS, "POST", HALT)
    seen = len(desk.state.seen)
    body = {"reduce_by": "1"} if "decrease" in kind else bid(price="0.11", count="5")
    status, answer = await desk.call(BOT, "POST", f"{ORDERS}/{order}/{kind}", body)
    assert status in (400, 403) and is_proxy_error(answer), answer
    assert len(desk.state.seen) == seen


@pytest.mark.parametrize(
    "headers",
    [{"X-HTTP-Method-Override": "POST"}, {"X-Method-Override": "POST"},
     {"X-HTTP-Method": "POST"}],
)  # fmt: skip
async def test_method_override_headers_never_reach_the_exchange(
    desk: Desk, headers: dict[str, str]
) -> None:
    await desk.call(OPS, "POST", HALT)
    before = len(desk.state.orders)
    for method in ("PUT", "PATCH", "GET"):
        # Kalshi has no such route: it may go (Kalshi answers 404), but never as a POST.
        status, _ = await desk.call(BOT, method, ORDERS, bid(), **headers)
        assert status in (403, 404, 405)
    assert len(desk.state.orders) == before


async def test_v1_translated_writes_are_refused_while_halted(desk: Desk) -> None:
    await configure(desk, compat={"v1_orders": "translate"})
    order = await desk.place(BOT)
    await desk.call(OPS, "POST", HALT)
    seen = len(desk.state.seen)
    v1 = {"ticker": bid()["ticker"], "side": "yes", "action": "buy", "count": 1,
          "type": "limit", "yes_price": 10}  # fmt: skip
    for path in ("/trade-api/v2/portfolio/orders", f"/trade-api/v2/portfolio/orders/{order}/amend",
                 "/trade-api/v2/portfolio/orders/batched"):  # fmt: skip
        body = {"orders": [v1]} if path.endswith("batched") else v1
        status, answer = await desk.call(BOT, "POST", path, body)
        assert status in (400, 403) and is_proxy_error(answer), (path, answer)
    assert len(desk.state.seen) == seen


async def test_pipelined_chunked_and_expect_continue_orders_are_refused_while_halted(
    desk: Desk,
) -> None:
    await desk.call(OPS, "POST", HALT)
    seen = len(desk.state.seen)
    body = json.dumps(bid()).encode()
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    head = (f"POST {ORDERS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {BOT}\r\n"
            "Content-Type: application/json\r\n").encode()  # fmt: skip
    requests = (
        head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        + head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked
        + head + f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        + head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    )  # fmt: skip
    port = desk.proxy.server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(requests)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert [s for s in statuses if s != b"100"] == [b"403"] * 4, data
    assert len(desk.state.seen) == seen


async def test_absolute_form_and_odd_methods_never_reach_the_exchange_while_halted(
    desk: Desk,
) -> None:
    await desk.call(OPS, "POST", HALT)
    seen = len(desk.state.seen)
    port = desk.proxy.server.port
    body = json.dumps(bid()).encode()
    for target, method in ((f"http://127.0.0.1:{port}{ORDERS}", "POST"), (ORDERS, "CONNECT"),
                           (ORDERS, "TRACE"), (ORDERS, "post")):  # fmt: skip
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {BOT}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert not data.startswith(b"HTTP/1.1 2"), (method, target, data[:300])
    assert len(desk.state.seen) == seen


async def test_cancels_pass_while_halted_in_every_shape(desk: Desk) -> None:
    one, two, three = [await desk.place(BOT, price=p) for p in ("0.10", "0.11", "0.12")]
    await desk.call(OPS, "POST", HALT)
    status, _ = await desk.call(BOT, "DELETE", f"{ORDERS}/{one}")
    assert status == 200
    status, _ = await desk.call(BOT, "DELETE", f"{ORDERS}/batched", {"orders": [{"order_id": two}]})
    assert status == 200
    status, _ = await desk.call(BOT, "DELETE", ORDERS)
    assert status in (200, 204)
    assert not {one, two, three} & desk.resting()


@pytest.mark.parametrize("value", ["true", "yes", "on", "TRUE", "1 ", "2"])
async def test_fixed_a_dry_run_header_other_than_1_places_a_real_order(
    desk: Desk, value: str
) -> None:
    """Fixed (fail-open): `X-Proxy-Dry-Run: true` (or yes/on/2) on a create is not a dry run:
    entry.admit compares the header to "1" exactly, so the order is placed for real and the
    caller, which asked for a preview, gets Kalshi's 201. Only an absent header (or "0")
    should send; any other value should be a dry run or a 400, never a real order."""
    before = len(desk.state.orders)
    status, answer = await desk.call(BOT, "POST", ORDERS, bid(), **{"X-Proxy-Dry-Run": value})
    assert len(desk.state.orders) == before, (status, answer)


async def test_fixed_two_dry_run_headers_the_first_saying_0_place_a_real_order(desk: Desk) -> None:
    """Fixed (fail-open): `X-Proxy-Dry-Run: 0` then `X-Proxy-Dry-Run: 1` on one request:
    headers.get reads only the first copy, so the order is sent (entry.admit)."""
    before = len(desk.state.orders)
    body = json.dumps(bid()).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", desk.proxy.server.port)
    writer.write(
        f"POST {ORDERS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {BOT}\r\n"
        f"X-Proxy-Dry-Run: 0\r\nX-Proxy-Dry-Run: 1\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert len(desk.state.orders) == before


# --- 2. the admin API -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "headers"),
    [(OPS, {"Host": "evil.example"}), (OPS, {"Origin": "http://evil.example"}),
     (OPS, {"Sec-Fetch-Site": "cross-site"}), (BOT, {}), (MAKER, {}), (None, {}),
     (OPS + "x", {}), (None, {"X-Proxy-Token": BOT})],
)  # fmt: skip
async def test_no_one_but_an_admin_from_here_can_halt(
    desk: Desk, token: str | None, headers: dict[str, str]
) -> None:
    for method, path in (("POST", HALT), ("POST", "/proxy/v1/%68alt"), ("GET", JOURNAL),
                         ("GET", STATUS), ("POST", RESUME)):  # fmt: skip
        status, answer = await desk.call(token, method, path, {}, **headers)
        assert status in (401, 403) and is_proxy_error(answer), (method, path, answer)
    _, state = await desk.call(OPS, "GET", STATUS)
    assert state["halted"] is False


@pytest.mark.parametrize(
    "path",
    ["/proxy%2fv1/halt", "/proxy%2Fv1/halt", "/%2570roxy/v1/halt", "/proxy/v1/halt/",
     "/proxy/v1//halt", "/PROXY/v1/halt", "/proxy/v1/halt%00", "/proxy/v1/Halt",
     "/trade-api/v2/../../proxy/v1/halt", "/trade-api/v2/%2e%2e/%2e%2e/proxy/v1/halt",
     "/proxy/v1/../v1/halt", "/proxy\\v1\\halt", "/proxy/v2/halt", "/proxy/v1/halt;x"],
)  # fmt: skip
async def test_no_spelling_of_halt_for_a_bot_and_none_forwarded(desk: Desk, path: str) -> None:
    seen = len(desk.state.seen)
    status, text = await raw_call(desk, BOT, "POST", path, b"{}")
    assert status in (400, 403, 404), (path, status, text)
    assert is_proxy_error(json.loads(text))
    assert len(desk.state.seen) == seen  # never forwarded
    _, state = await desk.call(OPS, "GET", STATUS)
    assert state["halted"] is False


async def test_admin_paths_are_never_forwarded_even_for_admins(desk: Desk) -> None:
    seen = len(desk.state.seen)
    for path in ("/proxy/v1/", "/proxy/v1/nothing", "/proxy/v1/halt/x", "/proxy/", "/proxy",
                 "/proxy/v1/status?x=1", "/proxy/v1/journal/..;/x"):  # fmt: skip
        for method in ("GET", "POST", "DELETE", "PUT"):
            status, text = await raw_call(desk, OPS, method, path, b"{}")
            assert status < 500 and (status == 200 or is_proxy_error(json.loads(text))), (
                method, path, status, text,
            )  # fmt: skip
    assert len(desk.state.seen) == seen


# --- 4. the journal ---------------------------------------------------------------------------


async def test_wal_and_shm_files_are_private_and_hold_no_secret(desk: Desk) -> None:
    await desk.place(BOT, client_order_id="cid-1")
    query = "?secret-query-value=1"
    await desk.call(BOT, "POST", ORDERS + query, bid(client_order_id="cid-2"))
    await desk.call(BOT, "GET", BALANCE + query)
    await desk.call(OPS, "GET", JOURNAL + query)
    files = sorted(desk.journal.parent.glob(desk.journal.name + "*"))
    assert len(files) >= 2, files
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) & 0o077 == 0, (file, oct(file.stat().st_mode))
        content = file.read_bytes()
        for secret in (BOT, OPS, "secret-query-value", "KALSHI-ACCESS", "Bearer"):
            assert secret.encode() not in content, (file.name, secret)


async def test_fixed_a_halt_while_the_journal_is_locked_answers_500_yet_halts(desk: Desk) -> None:
    """Fixed: POST /proxy/v1/halt while another process holds the journal's write lock (or
    the disk is full): Halts.halt sets the halt in memory, then Journal.set_halt raises
    sqlite3.OperationalError ('database is locked'), which nothing catches (halt.py
    Halts.halt, admin.halt): the answer is 500 proxy_internal_error "the proxy failed"
    (the connection is closed; `signing-proxy halt` reports a failure), yet the halt is
    in force. POST /proxy/v1/resume the same way: 500, yet resumed. The operator is told
    the opposite of what happened. Should be: the kill switch works and says so (200,
    noting that the journal could not record it), or fails cleanly and changes nothing."""
    blocker = sqlite3.connect(desk.journal, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        status, text = await raw_call(desk, OPS, "POST", HALT, b'{"reason": "locked"}')
        _, state = await desk.call(OPS, "GET", STATUS)
        halted = state["halted"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert is_proxy_error(json.loads(text)) or status == 200
    assert (status == 200) == halted, (status, text, "halted" if halted else "not halted")


async def test_fixed_the_dead_mans_switch_cancels_nothing_while_the_journal_is_locked(
    desk: Desk,
) -> None:
    """Fixed: a heartbeat client goes silent while the journal cannot be written (another
    process holds its lock; a full disk): Gate.fire calls Halts.halt first, whose
    Journal.set_halt raises, so the _fire task dies and no cancel is ever sent; the
    switch is marked fired and never tries again. Cancels must pass when the journal
    cannot be written (the brief's rule), so the switch should still cancel."""
    await configure(desk, access={"tokens": with_heartbeat("bot", 1.0)})
    order = await desk.place(BOT)
    blocker = sqlite3.connect(desk.journal, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        cancelled = await wait_until(lambda: order not in desk.resting(), 3.0)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert cancelled, "the silent client's order is still resting"


async def test_fixed_a_client_cannot_cancel_after_its_switch_fired_while_journal_locked(
    desk: Desk,
) -> None:
    """Fixed: after a dead-man's switch fired, the client's next call lifts the automatic
    halt in the guard (Gate.saw -> Halts.lift_automatic -> Journal.clear_halts). With the
    journal locked that raises inside the guard middleware: every call of that client,
    cancels and GETs included, gets a 500 instead of passing."""
    await configure(desk, access={"tokens": with_heartbeat("bot", 1.0)})
    order = await desk.place(BOT)
    await wait_until(lambda: order not in desk.resting(), 3.0)  # the switch fired
    other = await desk.place(DESK)
    blocker = sqlite3.connect(desk.journal, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        status, text = await raw_call(desk, BOT, "GET", BALANCE)
        status2, text2 = await raw_call(desk, BOT, "DELETE", f"{ORDERS}/{other}")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert status == 200, (status, text[:200])
    assert status2 == 200, (status2, text2[:200])


async def test_fixed_orders_are_journaled_into_a_deleted_journal_file(desk: Desk) -> None:
    """Fixed: the journal file is deleted (or moved) while the proxy runs: the open SQLite
    connection keeps writing into the unlinked inode, so orders still go out (201) while
    nothing anyone can read records them; after a restart their daily notional, the
    dead-man's knowledge of them and any halt are gone. GET /proxy/v1/journal meanwhile
    answers 500 proxy_internal_error ("the proxy failed"; journal.read raises
    sqlite3.OperationalError 'unable to open database file' uncaught in admin.journal).
    Should be: orders refused with 503 proxy_journal_unavailable (or the file recreated),
    and a clear JSON error (503, not 500) from the endpoint."""
    await desk.place(BOT)
    for file in desk.journal.parent.glob(desk.journal.name + "*"):
        file.unlink()
    placed, _ = await desk.call(BOT, "POST", ORDERS, bid())
    status, text = await raw_call(desk, OPS, "GET", JOURNAL)
    assert placed == 503 or (desk.journal.exists() and read(desk.journal)), placed
    assert status != 500, (status, text[:200])


async def test_fixed_a_gzipped_answer_leaves_the_order_id_out_of_the_journal(
    make_upstream: Any, make_proxy: Any, tmp_path: Path
) -> None:
    """Fixed: most HTTP clients (requests, httpx, aiohttp) send `Accept-Encoding: gzip`; the
    proxy forwards it and relays Kalshi's gzipped answer untouched (auto_decompress off),
    but Gate.complete -> orders.read_answer json-parses the compressed bytes, finds
    nothing, and the journal row keeps order_id NULL. placed_orders() then does not know
    the order: the dead-man's switch and a per-client halt with cancel_orders leave it
    resting. The same happens for any answer relayed as a stream (chunked or over 64 KiB:
    forward._relay, body None in entry.journaled)."""

    async def gzipping(request: web.Request) -> web.Response:
        await request.read()
        raw = json.dumps({"order_id": "order-gz", "client_order_id": None}).encode()
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(status=201, body=gzip.compress(raw), headers={
                "Content-Encoding": "gzip", "Content-Type": "application/json"})  # fmt: skip
        return web.Response(status=201, body=raw, content_type="application/json")

    upstream = await make_upstream(gzipping)
    journal = tmp_path / "j.sqlite3"
    proxy = await make_proxy(upstream.url, SIGNING_PROXY_JOURNAL=str(journal))
    reply = await proxy.post(ORDERS, data=json.dumps(bid()), headers={"Accept-Encoding": "gzip"})
    assert reply.status == 201 and (await reply.json())["order_id"] == "order-gz"
    (row,) = read(journal)
    assert row["order_id"] == "order-gz", row


async def test_fixed_a_chunked_answer_leaves_the_order_id_out_of_the_journal(
    make_upstream: Any, make_proxy: Any, tmp_path: Path
) -> None:
    """Fixed: Go's net/http sends an answer of more than a few KiB chunked (no
    Content-Length), a batch of 20 orders' results for instance; forward._relay streams
    it, entry.journaled gets body None, and no order id is journaled (see the gzip case)."""

    async def chunked(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=201, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(json.dumps({"order_id": "order-ch"}).encode())
        await response.write_eof()
        return response

    upstream = await make_upstream(chunked)
    journal = tmp_path / "j.sqlite3"
    proxy = await make_proxy(upstream.url, SIGNING_PROXY_JOURNAL=str(journal))
    reply = await proxy.post(ORDERS, data=json.dumps(bid()))
    assert reply.status == 201
    (row,) = read(journal)
    assert row["order_id"] == "order-ch", row


# --- 5. the dead-man's switch -----------------------------------------------------------------


async def test_fixed_the_dead_mans_switch_erases_a_manual_halt(desk: Desk) -> None:
    """Fixed: an admin halts client `bot` by hand (POST /proxy/v1/halt {"client": "bot"});
    the bot, halted, goes quiet; its dead-man's switch fires and Gate.fire ->
    Halts.halt(client, automatic=True) REPLACES the manual halt (same scope, INSERT OR
    REPLACE); the bot's next call lifts that 'automatic' halt, and the call after places
    orders again: the operator's halt is gone without a resume. Should be: a manual halt
    is never replaced or lifted by the switch."""
    await configure(desk, access={"tokens": with_heartbeat("bot", 1.0)})
    await desk.place(BOT)
    status, _ = await desk.call(OPS, "POST", HALT, {"client": "bot", "reason": "runaway"})
    assert status == 200
    await asyncio.sleep(2.0)  # silent: the switch fires
    await desk.call(BOT, "GET", BALANCE)  # the bot comes back
    before = len(desk.state.orders)
    status, answer = await desk.call(BOT, "POST", ORDERS, bid())
    assert status == 403 and answer["error"]["code"] == "proxy_trading_halted", answer
    assert len(desk.state.orders) == before


async def test_the_switch_of_one_client_never_cancels_anothers_orders(desk: Desk) -> None:
    tokens = [dict(t, heartbeat=1.0) if t["name"] == "maker" else t for t in TOKENS]
    await configure(desk, access={"tokens": tokens})
    mine = await desk.place(MAKER)
    theirs = {await desk.place(BOT), await desk.place(DESK), await desk.place(DESK, subaccount=1)}
    # The others keep calling; the maker goes silent.
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        await desk.call(BOT, "GET", BALANCE)
        await asyncio.sleep(0.2)
    assert mine not in desk.resting()
    assert theirs <= desk.resting()
    status, _ = await desk.call(BOT, "POST", ORDERS, bid())
    assert status == 201  # only the maker is halted


async def test_refused_and_foreign_calls_do_not_feed_another_clients_heartbeat(desk: Desk) -> None:
    await configure(desk, access={"tokens": with_heartbeat("bot", 1.0)})
    order = await desk.place(BOT)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # noise that must not count as the bot's heartbeat
        await desk.call(None, "GET", BALANCE, Authorization="Bearer " + BOT + "x")
        await desk.call(DESK, "GET", BALANCE)
        await desk.call(BOT, "GET", BALANCE, Host="evil.example")
        await desk.call(BOT, "GET", BALANCE, Origin="http://evil.example")
        await asyncio.sleep(0.1)
    assert order not in desk.resting()


# --- 6. availability --------------------------------------------------------------------------


async def test_floods_of_halts_resumes_and_big_journal_reads_keep_the_proxy_serving(
    desk: Desk,
) -> None:
    for _ in range(30):
        await desk.place(BOT, price="0.05", count="1")
    calls = []
    for i in range(100):
        calls.append(desk.call(OPS, "POST", HALT if i % 2 else RESUME, {"reason": "r" * 500}))
        calls.append(desk.call(OPS, "GET", f"{JOURNAL}?limit=10000"))
    for limit in ("-1", "0", "1e3", "99999999999999999999999", "x", ""):
        calls.append(desk.call(OPS, "GET", f"{JOURNAL}?limit={limit}&since=\x00&client=%ff"))
    results = await asyncio.gather(*calls)
    for status, answer in results:
        assert status in (200, 400), (status, answer)
        assert status == 200 or is_proxy_error(answer)
    await desk.call(OPS, "POST", RESUME)
    await desk.place(BOT)


@pytest.mark.parametrize(
    "body",
    [b"x" * 100_000, b'{"reason": "' + b"a" * 5000 + b'"}', b"\xff\xfe\x00", b"[]" * 3000,
     b"[" * 100_000, b'{"client": null, "cancel_orders": NaN}', b'{"reason": 7}',
     b'{"client": ["bot"]}', b'{"client": "*"}', b'{"client": ""}'],
)  # fmt: skip
async def test_odd_admin_bodies_get_json_errors_and_halt_nothing(desk: Desk, body: bytes) -> None:
    status, text = await raw_call(desk, OPS, "POST", HALT, body)
    assert status in (400, 413) and is_proxy_error(json.loads(text)), (status, text[:200])
    _, state = await desk.call(OPS, "GET", STATUS)
    assert state["halted"] is False


async def test_a_chunked_admin_body_over_the_limit_is_refused(desk: Desk) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"reason": "'
        for _ in range(100):
            yield b"a" * 1000
        yield b'"}'

    reply = await desk.proxy.post(HALT, data=chunks(), headers={"Authorization": f"Bearer {OPS}"})
    assert reply.status in (400, 413) and is_proxy_error(await reply.json())


async def test_fixed_a_slow_admin_body_holds_its_connection_forever(desk: Desk) -> None:
    """Fixed (availability, admin token needed): POST /proxy/v1/halt announcing a
    Content-Length whose body never comes is awaited without any timeout
    (admin._json_body reads request.content with no asyncio.timeout, unlike the
    forwarder's access.client_timeout): the connection and its handler are held
    indefinitely. Should be: 408 proxy_client_timeout after access.client_timeout."""
    await configure(desk, access={"tokens": TOKENS, "client_timeout": 1})
    reader, writer = await asyncio.open_connection("127.0.0.1", desk.proxy.server.port)
    writer.write(
        f"POST {HALT} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {OPS}\r\n"
        "Content-Length: 100\r\n\r\n".encode()
    )
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(1000), 4)
    except TimeoutError:
        data = b"(nothing after 4 s with client_timeout 1 s)"
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 408") or data == b"", data[:200]


async def test_fixed_a_halt_body_in_two_tcp_segments_is_refused_as_not_json(desk: Desk) -> None:
    """Fixed: admin._json_body does `request.content.read(_MAX_BODY + 1)`, which returns as
    soon as any bytes are buffered, not the whole body: a valid halt whose body arrives
    in two segments (a slow link, a client that writes the body in pieces) is parsed from
    its first piece and answered 400 "the body must be a JSON object"; the halt is not
    made. Should be: read up to Content-Length (or the end of a chunked body)."""
    body = b'{"reason": "two segments", "cancel_orders": false}'
    reader, writer = await asyncio.open_connection("127.0.0.1", desk.proxy.server.port)
    writer.write(
        f"POST {HALT} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {OPS}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body[:12]
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.write(body[12:])
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:400]
    _, state = await desk.call(OPS, "GET", STATUS)
    assert state["halted"] is True


async def test_fixed_signing_proxy_halt_sends_the_admin_token_to_an_http_proxy(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fixed: `signing-proxy halt` (ops/admin_client.call) uses urllib.request.urlopen, which
    honours HTTP_PROXY/http_proxy from the environment (common on corporate machines):
    the halt, with `Authorization: Bearer <admin token>`, goes to that proxy instead of
    the loopback proxy named by the config, so the admin token leaks and the kill switch
    does not reach the proxy. Should be: a direct connection (no environment proxies)."""
    from signing_proxy.config import Overrides, load_config
    from signing_proxy.ops import admin_client

    got: list[dict[str, str]] = []

    async def snoop(request: web.Request) -> web.Response:
        got.append(dict(request.headers))
        return web.json_response({"halted": True, "halt": {}, "cancel": None})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", snoop)
    from aiohttp.test_utils import TestServer

    snooper = TestServer(app)
    await snooper.start_server()
    try:
        config_file = tmp_path / "admin.yaml"
        port = desk.proxy.server.port
        listen = {"host": "127.0.0.1", "port": port}
        config_file.write_text(json.dumps({"access": {"tokens": TOKENS}, "listen": listen}))
        env = {"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY_FILE": str(tmp_path / "none")}
        config = load_config(str(config_file), env, Overrides())
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{snooper.port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        with contextlib.suppress(admin_client.AdminCallFailed):
            await asyncio.to_thread(admin_client.call, config, None, "POST", "halt", {})
    finally:
        await snooper.close()
    assert not any(OPS in h.get("Authorization", "") for h in got), got
    _, state = await desk.call(OPS, "GET", STATUS)
    assert state["halted"] is True


async def test_no_token_query_or_body_reaches_the_logs(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = "body-marker-6c1f"
    await desk.call(BOT, "POST", ORDERS + "?q-secret=1", bid(client_order_id=marker))
    await desk.call(BOT + "x", "POST", ORDERS, bid())  # a wrong token
    await desk.call(OPS, "POST", HALT, {"reason": "why", "cancel_orders": True})
    await desk.call(BOT, "POST", ORDERS, bid())
    await desk.call(OPS, "GET", JOURNAL + "?client=bot&q-secret=2")
    await desk.call(OPS, "POST", RESUME, {})
    out = capsys.readouterr()
    assert "proxy_trading_halted" in out.out + out.err  # the log was captured
    for secret in (BOT, OPS, "q-secret", marker, "KALSHI-ACCESS-SIGNATURE", "Bearer"):
        assert secret not in out.out + out.err, secret
