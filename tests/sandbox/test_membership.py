"""What the sandbox's user may do as the member it is, against the sandbox served for
real: no FCM endpoints (it is no FCM), the upgrade to Advanced once it has traded
through the API, transfers within the account, a target balance allocation; and the
catalogue it lacks (multivariate collections, weather indexes, event live data)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.sandbox.exchange_client import Exchange, Factory, serve
from tests.sandbox.test_sandbox import API, MARKET

UPGRADE = f"{API}/account/api_usage_level/upgrade"
TRANSFER = f"{API}/portfolio/intra_exchange_instance_transfer"
TRANSFERS = f"{API}/portfolio/intra_exchange_instance_transfers"
ALLOCATION = f"{API}/portfolio/target_balance_allocation"


@pytest.mark.parametrize("path", ["/fcm/orders", "/fcm/positions"])
async def test_fcm_reads_want_a_subtrader_and_the_user_has_none(
    exchange: Exchange, path: str
) -> None:
    status, answer = await exchange.call("GET", API + path)
    assert status == 400 and "SubtraderId" in answer["msg"]
    status, answer = await exchange.call("GET", f"{API}{path}?subtrader_id=abc_1")
    assert (status, answer["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fcm/subtraders"),
        ("POST", "/fcm/subtraders"),
        ("GET", "/fcm/subtraders/event_contract_daily_cap?subtrader_id=a_b"),
        ("PUT", "/fcm/subtraders/event_contract_daily_cap"),
        ("DELETE", "/fcm/subtraders/event_contract_daily_cap?subtrader_id=a_b"),
    ],
)
async def test_fcm_subtraders_are_forbidden(exchange: Exchange, method: str, path: str) -> None:
    body = {} if method in ("POST", "PUT") else None
    status, answer = await exchange.call(method, API + path, body)
    assert (status, answer["error"]["code"]) == (403, "forbidden")


async def test_the_upgrade_needs_an_api_order_then_raises_the_limits(
    aiohttp_client: Factory, key: rsa.RSAPrivateKey
) -> None:
    exchange = await serve(aiohttp_client, key, rate_limit_tier="basic")
    status, answer = await exchange.call("POST", UPGRADE)
    assert (status, answer["error"]["code"]) == (403, "api_usage_level_criteria_not_met")
    before = await exchange.ok("GET", f"{API}/account/limits")
    assert (before["usage_tier"], before["grants"]) == ("basic", [])
    status, _ = await exchange.order("bid", "0.05", "1")
    assert status == 201
    assert await exchange.raw("POST", UPGRADE) == (201, b"")
    after = await exchange.ok("GET", f"{API}/account/limits")
    assert after["usage_tier"] == "advanced"
    assert after["write"] == {"bucket_capacity": 600, "refill_rate": 300}
    assert after["grants"] == [
        {"exchange_instance": "event_contract", "level": "advanced", "source": "manual"}
    ]
    assert exchange.state.limiter is not None and exchange.state.limiter.tier == "advanced"
    assert await exchange.raw("POST", UPGRADE) == (201, b"")  # refreshed, not doubled
    assert len((await exchange.ok("GET", f"{API}/account/limits"))["grants"]) == 1


async def test_the_upgrade_without_rate_limits_reports_advanced(exchange: Exchange) -> None:
    await exchange.order("bid", "0.05", "1")
    await exchange.raw("POST", UPGRADE)
    limits = await exchange.ok("GET", f"{API}/account/limits")
    assert (limits["usage_tier"], limits["read"]["refill_rate"]) == ("advanced", 300)


async def balances(exchange: Exchange) -> dict[int, str]:
    answer = await exchange.ok("GET", f"{API}/portfolio/subaccounts/balances")
    return {b["subaccount_number"]: b["balance"] for b in answer["subaccount_balances"]}


def a_transfer(**extra: Any) -> dict[str, Any]:
    return {"source": "event_contract", "destination": "event_contract", "amount": 25_000,
            "source_subaccount": 0, "destination_subaccount": 1, **extra}  # fmt: skip


async def test_an_intra_exchange_transfer_moves_cash_between_subaccounts(
    exchange: Exchange,
) -> None:
    await exchange.ok("POST", f"{API}/portfolio/subaccounts", {})
    created = await exchange.ok("POST", TRANSFER, a_transfer())
    assert await balances(exchange) == {0: "997.5000", 1: "2.5000"}
    transfer = (await exchange.ok("GET", f"{TRANSFERS}/{created['transfer_id']}"))["transfer"]
    assert (transfer["amount"], transfer["status"], transfer["source"]) == (
        "2.5000", "complete", "event_contract")  # fmt: skip
    assert (await exchange.ok("GET", TRANSFERS)) == {"transfers": [transfer]}
    history = (await exchange.ok("GET", f"{API}/portfolio/subaccounts/transfers"))["transfers"]
    assert [(t["transfer_id"], t["amount_cents"]) for t in history] == [
        (created["transfer_id"], 250)
    ]
    second = await exchange.ok("POST", TRANSFER, a_transfer(amount=100))
    page = await exchange.ok("GET", f"{TRANSFERS}?limit=1")
    assert page["transfers"][0]["transfer_id"] == second["transfer_id"] and page["cursor"]


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"destination": "margined"}, 403),
        ({"source": "spot"}, 400),
        ({"amount": 150}, 400),  # not whole cents
        ({"amount": 0}, 400),
        ({"destination_subaccount": 0}, 400),
        ({"destination_subaccount": 7}, 400),
        ({"destination_exchange_shard": 1}, 400),
        ({"amount": 10_000 * 100_000}, 400),  # more than the balance
    ],
)
async def test_a_bad_intra_exchange_transfer_moves_nothing(
    exchange: Exchange, extra: Any, status: int
) -> None:
    await exchange.ok("POST", f"{API}/portfolio/subaccounts", {})
    answer = await exchange.call("POST", TRANSFER, a_transfer(**extra))
    assert answer[0] == status, answer
    assert await balances(exchange) == {0: "1000.0000", 1: "0.0000"}
    assert (await exchange.ok("GET", TRANSFERS))["transfers"] == []


async def test_an_unknown_transfer_is_404(exchange: Exchange) -> None:
    assert (await exchange.call("GET", f"{TRANSFERS}/nope"))[0] == 404


async def test_the_target_balance_allocation_is_kept(exchange: Exchange) -> None:
    default = await exchange.ok("GET", ALLOCATION)
    assert default == {"allocations": [], "resting_margin_reservation": "sum"}
    body = {"allocations": [{"exchange_index": 0, "percent": 100}],
            "resting_margin_reservation": "max"}  # fmt: skip
    assert await exchange.ok("POST", ALLOCATION, body) == {}
    assert await exchange.ok("GET", ALLOCATION) == body
    for bad in ([{"exchange_index": 0, "percent": 50}], [{"exchange_index": 1, "percent": 100}]):
        assert (await exchange.call("POST", ALLOCATION, {"allocations": bad}))[0] == 400
    assert await exchange.ok("GET", ALLOCATION) == body
    await exchange.ok("POST", ALLOCATION, {"allocations": []})  # no rebalancing
    assert (await exchange.ok("GET", ALLOCATION))["allocations"] == []


PAIRS = {"selected_markets": [{"market_ticker": MARKET, "event_ticker": "KXHIGHNY-26JUN12",
                               "side": "yes"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/multivariate_event_collections/KXMVE", PAIRS),
        ("PUT", "/multivariate_event_collections/KXMVE/lookup", PAIRS),
        ("GET", "/multivariate_event_collections/KXMVE/lookup?lookback_seconds=60", None),
        ("GET", "/live_data/events/KXHIGHNY-26JUN12", None),
    ],
)
async def test_unknown_collections_and_live_data_are_404(
    exchange: Exchange, method: str, path: str, body: Any
) -> None:
    status, answer = await exchange.call(method, API + path, body)
    assert (status, answer["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/multivariate_event_collections/KXMVE", {"selected_markets": []}),
        ("PUT", "/multivariate_event_collections/KXMVE/lookup", {"selected_markets": [{}]}),
        ("GET", "/multivariate_event_collections/KXMVE/lookup?lookback_seconds=7", None),
        ("GET", "/live_data/weather/nyc", None),
        ("GET", "/live_data/weather/nyc/calibrations", None),
    ],
)
async def test_bad_requests_and_unknown_cities_are_400(
    exchange: Exchange, method: str, path: str, body: Any
) -> None:
    assert (await exchange.call(method, API + path, body))[0] == 400


async def test_the_upgrade_counts_orders_of_an_rfq_too(exchange: Exchange) -> None:
    body = {"market_ticker": MARKET, "contracts": 2, "rest_remainder": False}
    rfq_id = (await exchange.ok("POST", f"{API}/communications/rfqs", body))["id"]
    quotes = await exchange.ok("GET", f"{API}/communications/quotes?rfq_id={rfq_id}")
    quote_id = quotes["quotes"][0]["id"]
    await exchange.raw("PUT", f"{API}/communications/quotes/{quote_id}/accept",
                       {"accepted_side": "yes"})  # fmt: skip
    assert Decimal((await exchange.ok("GET", f"{API}/portfolio/balance"))["balance_dollars"]) < 1000
    assert (await exchange.raw("POST", UPGRADE))[0] == 201
