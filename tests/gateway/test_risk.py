"""Risk rules on order entry, through a real proxy in front of an upstream that records
what it receives: a refused order never arrives there."""

from __future__ import annotations

import fnmatch
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from signing_proxy.config.risk import RiskConfig
from signing_proxy.gateway import risk
from signing_proxy.gateway.orders import OrderFields
from signing_proxy.gateway.risk import DailyNotional

pytestmark = pytest.mark.usefixtures("clean_env")

V2 = "/trade-api/v2/portfolio/events/orders"
BOT, DESK = "bot-token-0123456789abcdef", "desk-token-0123456789abcdef"
RULES = {
    "risk": {
        "max_order_count": 10, "max_order_notional": "5.00", "price_collar": [0.05, 0.95],
        "deny_tickers": ["KXBTC*"], "max_orders_per_minute": 3,
    },
    "access": {"tokens": [
        {"name": "bot", "token": BOT},
        {"name": "desk", "token": DESK,
         "risk": {"max_order_count": 100, "max_order_notional": "500"}},
    ]},
}  # fmt: skip


def order(**changes: Any) -> dict[str, Any]:
    base = {
        "ticker": "KXHIGHNY-26JUN12-B74.5", "side": "bid", "price": "0.30", "count": "5",
        "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross",
    }  # fmt: skip
    return {**base, **changes}


async def accepted(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"order_id": "o-1"}, status=201)


@pytest.fixture
async def proxy(make_upstream, make_proxy, tmp_path: Path) -> Any:
    upstream = await make_upstream(accepted)
    config = tmp_path / "risk.yaml"
    config.write_text(json.dumps(RULES))  # JSON is YAML
    return upstream, await make_proxy(upstream.url, config_file=config)


async def send(client: Any, token: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = await client.post(path, data=data, headers={"Authorization": f"Bearer {token}"})
    return reply.status, await reply.json()


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"count": "11"}, "max_order_count"),
        ({"count": "10", "price": "0.51"}, "max_order_notional"),  # $5.10 > $5.00
        ({"side": "ask", "count": "10", "price": "0.49"}, "max_order_notional"),  # 10 x 0.51
        ({"price": "0.04"}, "price_collar"),
        ({"price": "0.9501"}, "price_collar"),
        ({"ticker": "kxbtcd-26jun1217-t105749.99"}, "deny_tickers"),
    ],
)
async def test_an_order_past_a_rule_is_403_naming_it_and_never_sent(
    proxy: Any, changes: dict[str, Any], rule: str
) -> None:
    upstream, client = proxy
    status, body = await send(client, BOT, V2, order(**changes))
    assert (status, body["error"]["code"]) == (403, f"proxy_risk_{rule}")
    assert f"risk.{rule}" in body["error"]["message"]
    assert upstream.seen == []


async def test_within_every_rule_the_order_goes_through(proxy: Any) -> None:
    upstream, client = proxy
    status, _ = await send(client, BOT, V2, order(count="10", price="0.50"))  # exactly $5.00
    assert status == 201 and len(upstream.seen) == 1


async def test_one_bad_order_refuses_the_whole_batch(proxy: Any) -> None:
    upstream, client = proxy
    batch = {"orders": [order(), order(), order(count="50")]}
    status, body = await send(client, BOT, f"{V2}/batched", batch)
    assert (status, body["error"]["code"]) == (403, "proxy_risk_max_order_count")
    assert upstream.seen == []


async def test_amend_is_checked_too(proxy: Any) -> None:
    upstream, client = proxy
    status, _ = await send(client, BOT, f"{V2}/o-1/amend", order(count="99"))
    assert status == 403 and upstream.seen == []


async def test_a_token_overrides_the_top_level_rules(proxy: Any) -> None:
    upstream, client = proxy
    status, _ = await send(client, DESK, V2, order(count="50"))  # desk may send 100, $500
    assert status == 201
    status, body = await send(client, DESK, V2, order(price="0.99"))  # the collar still holds
    assert body["error"]["code"] == "proxy_risk_price_collar"
    assert len(upstream.seen) == 1


async def test_orders_per_minute_per_client(proxy: Any) -> None:
    upstream, client = proxy
    statuses = [(await send(client, BOT, V2, order()))[0] for _ in range(4)]
    assert statuses == [201, 201, 201, 403]
    assert (await send(client, DESK, V2, order()))[0] == 201  # another client, its own minute
    assert len(upstream.seen) == 4


@pytest.mark.parametrize(
    "body",
    [b"not json", json.dumps(order(price=0.3)).encode(), json.dumps(order(side="yes")).encode()],
)
async def test_an_order_the_rules_cannot_read_is_400(proxy: Any, body: bytes) -> None:
    upstream, client = proxy
    status, answer = await send(client, BOT, V2, body)
    assert (status, answer["error"]["code"]) == (400, "proxy_invalid_order")
    assert upstream.seen == []


async def test_without_rules_bodies_pass_for_kalshi_to_judge(make_upstream, make_proxy) -> None:
    upstream = await make_upstream(accepted)
    client = await make_proxy(upstream.url)
    reply = await client.post(V2, data=b"not json")
    assert reply.status == 201 and upstream.seen[0].body == b"not json"


async def test_a_translated_v1_order_is_judged_as_the_v2_order(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    upstream = await make_upstream(accepted)
    config = tmp_path / "c.yaml"
    config.write_text("compat: {v1_orders: translate}\nrisk: {max_order_count: 2}\n")
    client = await make_proxy(upstream.url, config_file=config)
    v1 = {"ticker": "T", "side": "no", "action": "buy", "count": 3, "no_price": 40}
    reply = await client.post("/trade-api/v2/portfolio/orders", json=v1)
    assert reply.status == 403 and upstream.seen == []


@given(
    side=st.sampled_from(["bid", "ask"]),
    cents=st.integers(1, 9999),
    hundredths=st.integers(1, 10**7),
)
def test_notional_is_exact_on_fixed_point_strings(side: str, cents: int, hundredths: int) -> None:
    price, count = Decimal(cents) / 10_000, Decimal(hundredths) / 100
    terms = OrderFields("T", side, Decimal(f"{price:.4f}"), Decimal(f"{count:.2f}"))
    # Integer arithmetic in ten-thousandths of a cent as the oracle: no float anywhere.
    per_contract = cents if side == "bid" else 10_000 - cents
    assert terms.notional is not None
    assert terms.notional * 1_000_000 == hundredths * per_contract


DRY = {"X-Proxy-Dry-Run": "1"}


async def dry(client: Any, token: str, path: str, body: Any, method: str = "POST") -> Any:
    headers = {"Authorization": f"Bearer {token}", **DRY}
    reply = await client.request(method, path, json=body, headers=headers)
    assert reply.status == 200
    return await reply.json()


async def test_a_dry_run_runs_every_check_and_sends_nothing(proxy: Any) -> None:
    upstream, client = proxy
    fine = await dry(client, BOT, V2, order())
    assert (fine["dry_run"], fine["decision"]) == (True, "would_forward")
    assert {c["rule"] for c in fine["checks"]} >= {"max_order_count", "price_collar"}
    assert all(c["passed"] for c in fine["checks"])
    bad = await dry(client, BOT, V2, order(count="11"))
    assert bad["decision"] == "would_refuse"
    assert bad["error"]["code"] == "proxy_risk_max_order_count"
    assert [c for c in bad["checks"] if not c["passed"]] == [
        {"rule": "max_order_count", "passed": False}
    ]
    assert upstream.seen == []


async def test_dry_runs_do_not_count_towards_the_minute(proxy: Any) -> None:
    _, client = proxy
    for _ in range(5):
        await dry(client, BOT, V2, order())
    statuses = [(await send(client, BOT, V2, order()))[0] for _ in range(3)]
    assert statuses == [201, 201, 201]


async def test_a_dry_run_of_any_write_sends_nothing(make_upstream, make_proxy) -> None:
    upstream = await make_upstream(accepted)
    client = await make_proxy(upstream.url)
    answer = await dry(client, BOT, f"{V2}/o-1", None, method="DELETE")
    assert answer["decision"] == "would_forward" and upstream.seen == []
    reply = await client.get("/trade-api/v2/markets", headers=DRY)  # reads are just read
    assert reply.status == 201
    assert "x-proxy-dry-run" not in {name.lower() for name in upstream.seen[0].headers}


@pytest.mark.parametrize(
    "path",
    [
        "/trade-api/v2/portfolio/events/%6Frders",
        "/trade-api/v2/portfolio/events/orders/",
        "/trade-api/v2/portfolio//events/orders",
        "/trade-api/v2/portfolio/events/Orders",
        "/trade-api/v2/portfolio/events/orders;v=2",
    ],
)
async def test_no_spelling_of_order_entry_walks_around_the_rules(proxy: Any, path: str) -> None:
    upstream, client = proxy
    status, body = await send(client, BOT, path, order(count="11"))
    assert status == 403 and body["error"]["code"] == "proxy_risk_max_order_count"
    assert upstream.seen == []


@given(
    steps=st.lists(
        st.tuples(st.booleans(), st.integers(1, 5000), st.booleans()), min_size=1, max_size=60
    )
)
def test_the_daily_notional_never_passes_its_limit(steps: list[tuple[bool, int, bool]]) -> None:
    """Reserve and give back in any order, in cents as fixed-point strings: the total held
    is exactly what was reserved and not given back, and never above the limit."""
    limit = Decimal("100.00")
    daily = DailyNotional(lambda client, day: Decimal(0))
    held: list[Decimal] = []
    for other_client, cents, give_back in steps:
        client = "b" if other_client else "a"
        amount = Decimal(cents) / 100
        if give_back and held and client == "a":
            daily.give_back("a", "2026-11-30", held.pop())
            continue
        refused = daily.reserve(client, "2026-11-30", amount, limit)
        if client == "a":
            if refused is None:
                held.append(amount)
            else:
                assert sum(held, Decimal(0)) + amount > limit
        assert daily.spent("a", "2026-11-30") == sum(held, Decimal(0)) <= limit


GLOB_CHARS = st.text(alphabet="KXAB-1*?[]!", min_size=1, max_size=6)


@given(
    deny=st.lists(GLOB_CHARS, max_size=3),
    allow=st.lists(GLOB_CHARS, max_size=3),
    ticker=st.text(alphabet="KXAB-1", max_size=8),
)
def test_each_glob_of_a_ticker_list_counts_as_fnmatch_reads_it(
    deny: list[str], allow: list[str], ticker: str
) -> None:
    """The lists are matched as one pattern each (worked out once per generation): that
    pattern matches exactly where one of its globs does."""
    rules = RiskConfig(deny_tickers=tuple(deny), allow_tickers=tuple(allow))
    denied = any(fnmatch.fnmatchcase(ticker, glob) for glob in deny)
    allowed = not allow or any(fnmatch.fnmatchcase(ticker, glob) for glob in allow)
    refused = risk.check(OrderFields(ticker=ticker), rules)
    expected = "deny_tickers" if denied else None if allowed else "allow_tickers"
    assert (refused.code.removeprefix("proxy_risk_") if refused else None) == expected
