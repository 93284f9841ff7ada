"""The offline Kalshi-like upstream: Kalshi's signature rules and realistic endpoints."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from yarl import URL

from signing_proxy.kalshi.verifier import check_auth, verify_signature
from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.state import (
    SANDBOX_STATE,
    SandboxState,
)
from tests.support.keys import new_rsa_key

KEY_ID = "6f1c2e4a-3b5d-4c7e-9f80-1a2b3c4d5e6f"
NOW_MS = 1_781_200_000_000
API = "/trade-api/v2"
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)

# Kalshi's bodies, byte for byte (kalshi/API_FACTS.md).
BAD_SIGNATURE = (
    b'{"error":{"code":"authentication_error","message":"authentication_error",'
    b'"details":"INCORRECT_API_KEY_SIGNATURE"}}'
)
EXPIRED = b'{"error":{"code":"header_timestamp_expired","message":"header timestamp expired"}}'
UNKNOWN_KEY = (
    b'{"error":{"code":"authentication_error","message":"authentication_error",'
    b'"details":"NOT_FOUND"}}'
)
MISSING_SIGNATURE = (
    b'{"error":{"code":"signature_is_missing_from_headers",'
    b'"message":"signature is missing from headers"}}'
)
NOT_FOUND = b'{"error":{"code":"not_found","message":"not found","service":"exchange"}}'
DUPLICATE = (
    b'{"error":{"code":"order_already_exists","message":"order already exists",'
    b'"service":"exchange"}}'
)

MARKET = "KXHIGHNY-26JUN12-B74.5"  # active; quoted 0.30 bid / 0.32 ask

# The fields openapi.yaml marks required on Market and Order.
MARKET_REQUIRED = {
    "ticker", "event_ticker", "market_type", "yes_sub_title", "no_sub_title", "created_time",
    "updated_time", "open_time", "close_time", "latest_expiration_time",
    "settlement_timer_seconds", "status", "notional_value_dollars", "yes_bid_dollars",
    "yes_ask_dollars", "no_bid_dollars", "no_ask_dollars", "yes_bid_size_fp", "yes_ask_size_fp",
    "last_price_dollars", "previous_yes_bid_dollars", "previous_yes_ask_dollars",
    "previous_price_dollars", "volume_fp", "volume_24h_fp", "liquidity_dollars",
    "open_interest_fp", "result", "can_close_early", "fractional_trading_enabled",
    "expiration_value", "rules_primary", "rules_secondary", "price_level_structure",
    "price_ranges",
}  # fmt: skip
ORDER_REQUIRED = {
    "order_id", "user_id", "client_order_id", "ticker", "side", "action", "outcome_side",
    "book_side", "type", "status", "yes_price_dollars", "no_price_dollars", "fill_count_fp",
    "remaining_count_fp", "initial_count_fp", "taker_fees_dollars", "maker_fees_dollars",
    "taker_fill_cost_dollars", "maker_fill_cost_dollars",
}  # fmt: skip

Client = TestClient[web.Request, web.Application]
Call = Callable[..., Awaitable[tuple[int, Any]]]


def sign(key: rsa.RSAPrivateKey, message: str) -> str:
    """Sign as Kalshi's documentation says: RSA-PSS, SHA-256, salt 32, base64."""
    return base64.b64encode(key.sign(message.encode(), PSS, hashes.SHA256())).decode()


def signed_headers(
    key: rsa.RSAPrivateKey, method: str, path: str, *, ts: int = NOW_MS, key_id: str = KEY_ID
) -> dict[str, str]:
    return {
        "KALSHI-ACCESS-KEY": key_id,
        "KALSHI-ACCESS-TIMESTAMP": str(ts),
        "KALSHI-ACCESS-SIGNATURE": sign(key, f"{ts}{method}{path}"),
    }


async def fetch(
    client: Client, method: str, target: str, headers: dict[str, str], data: bytes | None = None
) -> tuple[int, bytes]:
    # encoded=True: the target goes on the wire exactly as written, %-escapes included.
    async with client.request(method, URL(target, encoded=True), headers=headers, data=data) as r:
        return r.status, await r.read()


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
def make_client(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], key: rsa.RSAPrivateKey
) -> Callable[..., Awaitable[Client]]:
    async def make(**options: Any) -> Client:
        app = create_sandbox_app({KEY_ID: key.public_key()}, clock=lambda: NOW_MS / 1000, **options)
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[Client]]) -> Client:
    return await make_client()


@pytest.fixture
def state(client: Client) -> SandboxState:
    return client.app[SANDBOX_STATE]


@pytest.fixture
def v1_live(state: SandboxState) -> None:
    """The removed V1 order writes served as they were (to compare translations with)."""
    state.v1_orders_live = True


@pytest.fixture
def call(client: Client, key: rsa.RSAPrivateKey) -> Call:
    """A correctly signed request; answers (status, decoded JSON)."""

    async def do(method: str, target: str, body: object = None) -> tuple[int, Any]:
        headers = signed_headers(key, method, target.partition("?")[0])
        data = None if body is None else json.dumps(body).encode()
        status, raw = await fetch(client, method, target, headers, data)
        return status, json.loads(raw)

    return do


def v2_order(**changes: Any) -> dict[str, Any]:
    order = {
        "ticker": MARKET,
        "client_order_id": "0d9c6b1e-7f43-4a8e-b2a5-5e3c9d1f7a20",
        "side": "bid",
        "count": "1.00",
        "price": "0.0100",
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
        "post_only": False,
    }
    return order | changes


async def create_v2(call: Call, **changes: Any) -> str:
    status, body = await call("POST", f"{API}/portfolio/events/orders", v2_order(**changes))
    assert status == 201, body
    return str(body["order_id"])


# --- signatures ---------------------------------------------------------------------------


async def test_valid_signature_is_accepted(call: Call) -> None:
    status, _ = await call("GET", f"{API}/portfolio/balance")
    assert status == 200


async def test_query_string_is_not_signed(call: Call) -> None:
    status, body = await call("GET", f"{API}/portfolio/orders?limit=5")
    assert status == 200
    assert body == {"cursor": "", "orders": []}


async def test_signing_path_and_query_fails(client: Client, key: rsa.RSAPrivateKey) -> None:
    target = f"{API}/portfolio/orders?limit=5"
    status, body = await fetch(client, "GET", target, signed_headers(key, "GET", target))
    assert (status, body) == (401, BAD_SIGNATURE)


async def test_percent_encoded_path_is_signed_as_sent(
    client: Client, state: SandboxState, key: rsa.RSAPrivateKey
) -> None:
    target = f"{API}/markets/KXHIGHNY-26JUN12-B74%2E5"
    status, body = await fetch(client, "GET", target, signed_headers(key, "GET", target))
    assert status == 200
    assert json.loads(body)["market"]["ticker"] == MARKET
    assert state.seen[-1].raw_path == target


async def test_signing_the_decoded_path_fails(client: Client, key: rsa.RSAPrivateKey) -> None:
    headers = signed_headers(key, "GET", f"{API}/markets/{MARKET}")
    target = f"{API}/markets/KXHIGHNY-26JUN12-B74%2E5"
    assert await fetch(client, "GET", target, headers) == (401, BAD_SIGNATURE)


async def test_signature_over_another_message_is_kalshis_bad_signature(
    client: Client, key: rsa.RSAPrivateKey
) -> None:
    headers = signed_headers(key, "GET", f"{API}/portfolio/positions")
    assert await fetch(client, "GET", f"{API}/portfolio/balance", headers) == (401, BAD_SIGNATURE)


async def test_malformed_base64_is_a_bad_signature(client: Client, key: rsa.RSAPrivateKey) -> None:
    headers = signed_headers(key, "GET", f"{API}/portfolio/balance")
    headers["KALSHI-ACCESS-SIGNATURE"] = "not base64!"
    assert await fetch(client, "GET", f"{API}/portfolio/balance", headers) == (401, BAD_SIGNATURE)


@pytest.mark.parametrize(
    "scheme",
    [
        padding.PKCS1v15(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
    ],
    ids=["pkcs1v15", "pss-max-salt"],
)
def test_only_pss_sha256_with_32_byte_salt_verifies(
    key: rsa.RSAPrivateKey, scheme: padding.AsymmetricPadding
) -> None:
    message = b"1781200000000GET/trade-api/v2/portfolio/balance"
    signature = base64.b64encode(key.sign(message, scheme, hashes.SHA256())).decode()
    assert not verify_signature(key.public_key(), message, signature)
    assert verify_signature(key.public_key(), message, sign(key, message.decode()))


@pytest.mark.parametrize("skew_ms", [-5_001, 5_001, -30_000, 300_000])
async def test_timestamp_outside_the_window_is_expired(
    client: Client, key: rsa.RSAPrivateKey, skew_ms: int
) -> None:
    headers = signed_headers(key, "GET", f"{API}/portfolio/balance", ts=NOW_MS + skew_ms)
    assert await fetch(client, "GET", f"{API}/portfolio/balance", headers) == (401, EXPIRED)


@pytest.mark.parametrize("skew_ms", [-4_000, 5_000, -5_000])
async def test_timestamp_inside_the_window_is_accepted(
    client: Client, key: rsa.RSAPrivateKey, skew_ms: int
) -> None:
    headers = signed_headers(key, "GET", f"{API}/portfolio/balance", ts=NOW_MS + skew_ms)
    status, _ = await fetch(client, "GET", f"{API}/portfolio/balance", headers)
    assert status == 200


async def test_timestamp_in_seconds_is_expired(client: Client, key: rsa.RSAPrivateKey) -> None:
    headers = signed_headers(key, "GET", f"{API}/portfolio/balance", ts=NOW_MS // 1000)
    assert await fetch(client, "GET", f"{API}/portfolio/balance", headers) == (401, EXPIRED)


async def test_unknown_key_id_is_kalshis_not_found(client: Client, key: rsa.RSAPrivateKey) -> None:
    headers = signed_headers(
        key, "GET", f"{API}/portfolio/balance", key_id="00000000-0000-0000-0000-000000000000"
    )
    assert await fetch(client, "GET", f"{API}/portfolio/balance", headers) == (401, UNKNOWN_KEY)


async def test_missing_signature_header(client: Client, key: rsa.RSAPrivateKey) -> None:
    headers = signed_headers(key, "GET", f"{API}/portfolio/balance")
    del headers["KALSHI-ACCESS-SIGNATURE"]
    status, body = await fetch(client, "GET", f"{API}/portfolio/balance", headers)
    assert (status, body) == (401, MISSING_SIGNATURE)


@pytest.mark.parametrize("header", ["KALSHI-ACCESS-KEY", "KALSHI-ACCESS-TIMESTAMP"])
async def test_missing_key_or_timestamp_header_is_401(
    client: Client, key: rsa.RSAPrivateKey, header: str
) -> None:
    headers = signed_headers(key, "GET", f"{API}/portfolio/balance")
    del headers[header]
    status, body = await fetch(client, "GET", f"{API}/portfolio/balance", headers)
    assert status == 401
    assert set(json.loads(body)["error"]) == {"code", "message"}


def test_checks_run_in_kalshis_order(key: rsa.RSAPrivateKey) -> None:
    keys = {KEY_ID: key.public_key()}
    stale = {"KALSHI-ACCESS-TIMESTAMP": "1", "KALSHI-ACCESS-SIGNATURE": "AAAA"}
    unknown = check_auth(stale | {"KALSHI-ACCESS-KEY": "nope"}, "GET", API, keys, NOW_MS, 5000)
    expired = check_auth(stale | {"KALSHI-ACCESS-KEY": KEY_ID}, "GET", API, keys, NOW_MS, 5000)
    assert unknown is not None and unknown[1]["error"]["details"] == "NOT_FOUND"
    assert expired is not None and expired[1]["error"]["code"] == "header_timestamp_expired"


def test_check_auth_reads_headers_case_insensitively(key: rsa.RSAPrivateKey) -> None:
    headers = {k.lower(): v for k, v in signed_headers(key, "GET", f"{API}/markets").items()}
    keys = {KEY_ID: key.public_key()}
    assert check_auth(headers, "GET", f"{API}/markets?limit=1", keys, NOW_MS, 5000) is None


async def test_default_clock_is_the_real_time(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], key: rsa.RSAPrivateKey
) -> None:
    client = await aiohttp_client(create_sandbox_app({KEY_ID: key.public_key()}))
    now_ms = int(time.time() * 1000)
    headers = signed_headers(key, "GET", f"{API}/portfolio/balance", ts=now_ms)
    status, _ = await fetch(client, "GET", f"{API}/portfolio/balance", headers)
    assert status == 200


async def test_unsigned_public_endpoint_is_refused_by_default(client: Client) -> None:
    status, _ = await fetch(client, "GET", f"{API}/exchange/status", {})
    assert status == 401


async def test_unsigned_public_endpoint_is_served_when_auth_is_optional(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(require_auth_everywhere=False)
    status, body = await fetch(client, "GET", f"{API}/markets?limit=1", {})
    assert status == 200
    assert json.loads(body)["markets"][0]["ticker"] == "KXHIGHNY-26JUN12-B70.5"
    assert client.app[SANDBOX_STATE].seen[-1].authenticated is False


async def test_present_signature_is_still_verified_when_auth_is_optional(
    make_client: Callable[..., Awaitable[Client]], key: rsa.RSAPrivateKey
) -> None:
    client = await make_client(require_auth_everywhere=False)
    headers = signed_headers(key, "GET", f"{API}/markets/other")
    assert await fetch(client, "GET", f"{API}/exchange/status", headers) == (401, BAD_SIGNATURE)


async def test_private_endpoint_needs_a_signature_when_auth_is_optional(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(require_auth_everywhere=False)
    status, _ = await fetch(client, "GET", f"{API}/portfolio/balance", {})
    assert status == 401


# --- exchange, account, routing -----------------------------------------------------------


async def test_exchange_status(call: Call) -> None:
    assert await call("GET", f"{API}/exchange/status") == (
        200,
        {"exchange_active": True, "trading_active": True},
    )


async def test_account_limits(call: Call) -> None:
    status, body = await call("GET", f"{API}/account/limits")
    assert status == 200
    assert body == {
        "usage_tier": "basic",
        "read": {"bucket_capacity": 200, "refill_rate": 200},
        "write": {"bucket_capacity": 100, "refill_rate": 100},
        "grants": [],
    }


async def test_unknown_route_is_kalshis_not_found(client: Client, key: rsa.RSAPrivateKey) -> None:
    headers = signed_headers(key, "GET", f"{API}/portfolio/nothing")
    assert await fetch(client, "GET", f"{API}/portfolio/nothing", headers) == (404, NOT_FOUND)


async def test_path_outside_the_api_is_404_without_a_signature(client: Client) -> None:
    assert await fetch(client, "GET", "/elsewhere", {}) == (404, NOT_FOUND)


# --- markets ------------------------------------------------------------------------------


async def test_markets_pagination_walks_every_market_once(call: Call) -> None:
    tickers: list[str] = []
    cursor, pages = None, 0
    while cursor != "":
        query = f"limit=7&cursor={cursor}" if cursor else "limit=7"
        status, body = await call("GET", f"{API}/markets?{query}")
        assert status == 200
        assert len(body["markets"]) <= 7
        tickers += [m["ticker"] for m in body["markets"]]
        cursor, pages = body["cursor"], pages + 1
    assert len(tickers) == len(set(tickers)) == 60
    assert pages == 9


async def test_markets_default_limit_returns_everything_on_one_page(call: Call) -> None:
    status, body = await call("GET", f"{API}/markets")
    assert status == 200
    assert (len(body["markets"]), body["cursor"]) == (60, "")


async def test_markets_limit_over_1000_is_kalshis_validation_error(
    client: Client, key: rsa.RSAPrivateKey
) -> None:
    headers = signed_headers(key, "GET", f"{API}/markets")
    status, body = await fetch(client, "GET", f"{API}/markets?limit=1001", headers)
    assert status == 400
    assert body == (
        b'{"msg":"Parameter validation failed for GetMarkets: Key: \'GetMarketsParams.Limit\' '
        b"Error:Field validation for 'Limit' failed on the 'lte' tag\"}"
    )


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("event_ticker=KXHIGHNY-26JUN12", 6),
        ("series_ticker=KXBTCD", 20),
        ("status=open", 32),
        ("status=settled", 6),
        ("tickers=KXHIGHNY-26JUN12-B74.5,KXFEDDECISION-26JUL-H0", 2),
    ],
)
async def test_markets_filters(call: Call, query: str, count: int) -> None:
    status, body = await call("GET", f"{API}/markets?{query}")
    assert (status, len(body["markets"])) == (200, count)


async def test_markets_reject_a_forged_cursor(call: Call) -> None:
    status, body = await call("GET", f"{API}/markets?cursor=bm9wZQ")
    assert status == 400
    assert "msg" in body


async def test_markets_reject_an_unknown_status(call: Call) -> None:
    status, body = await call("GET", f"{API}/markets?status=sleeping")
    assert status == 400
    assert "GetMarketsParams.Status" in body["msg"]


async def test_market_by_ticker_has_kalshis_fields(call: Call) -> None:
    status, body = await call("GET", f"{API}/markets/{MARKET}")
    market = body["market"]
    assert status == 200
    assert market["event_ticker"] == "KXHIGHNY-26JUN12"
    assert market["status"] == "active"
    assert (market["yes_bid_dollars"], market["yes_ask_dollars"]) == ("0.3000", "0.3200")
    assert (market["no_bid_dollars"], market["no_ask_dollars"]) == ("0.6800", "0.7000")
    assert set(market) >= MARKET_REQUIRED


async def test_unknown_market_is_kalshis_not_found(client: Client, key: rsa.RSAPrivateKey) -> None:
    target = f"{API}/markets/KXNOPE-26JUN12-X"
    assert await fetch(client, "GET", target, signed_headers(key, "GET", target)) == (
        404,
        NOT_FOUND,
    )


# --- orders -------------------------------------------------------------------------------


async def test_create_order_v2_answers_kalshis_shape(call: Call) -> None:
    status, body = await call("POST", f"{API}/portfolio/events/orders", v2_order())
    assert status == 201
    assert body == {
        "client_order_id": "0d9c6b1e-7f43-4a8e-b2a5-5e3c9d1f7a20",
        "fill_count": "0.00",
        "order_id": body["order_id"],
        "remaining_count": "1.00",
        "ts_ms": NOW_MS,
    }


async def test_created_order_is_listed_and_fetched(call: Call) -> None:
    order_id = await create_v2(call)
    _, listed = await call("GET", f"{API}/portfolio/orders?ticker={MARKET}")
    status, fetched = await call("GET", f"{API}/portfolio/orders/{order_id}")
    assert status == 200
    assert listed == {"cursor": "", "orders": [fetched["order"]]}
    order = fetched["order"]
    assert set(order) >= ORDER_REQUIRED
    assert (order["status"], order["book_side"], order["outcome_side"]) == ("resting", "bid", "yes")
    assert (order["yes_price_dollars"], order["no_price_dollars"]) == ("0.0100", "0.9900")
    assert order["remaining_count_fp"] == "1.00"


async def test_orders_list_pages_newest_first(call: Call) -> None:
    ids = [await create_v2(call, client_order_id=f"c-{i}") for i in range(3)]
    _, first = await call("GET", f"{API}/portfolio/orders?limit=2")
    _, second = await call("GET", f"{API}/portfolio/orders?limit=2&cursor={first['cursor']}")
    assert [o["order_id"] for o in first["orders"] + second["orders"]] == ids[::-1]
    assert second["cursor"] == ""


@pytest.mark.usefixtures("v1_live")
async def test_amend_changes_price_and_count(call: Call) -> None:
    order_id = await create_v2(call)
    amend = {"ticker": MARKET, "side": "yes", "action": "buy", "yes_price": 2, "count": 3}
    status, body = await call("POST", f"{API}/portfolio/orders/{order_id}/amend", amend)
    assert status == 200
    assert body["old_order"]["yes_price_dollars"] == "0.0100"
    assert (body["order"]["yes_price_dollars"], body["order"]["remaining_count_fp"]) == (
        "0.0200",
        "3.00",
    )
    assert body["order"]["order_id"] == order_id


@pytest.mark.usefixtures("v1_live")
async def test_amend_unknown_order_is_404(call: Call) -> None:
    amend = {"ticker": MARKET, "side": "yes", "action": "buy", "yes_price": 2}
    status, _ = await call("POST", f"{API}/portfolio/orders/no-such-order/amend", amend)
    assert status == 404


async def test_cancel_v2_answers_reduced_by(call: Call) -> None:
    order_id = await create_v2(call)
    status, body = await call("DELETE", f"{API}/portfolio/events/orders/{order_id}")
    assert status == 200
    assert body == {
        "client_order_id": "0d9c6b1e-7f43-4a8e-b2a5-5e3c9d1f7a20",
        "order_id": order_id,
        "reduced_by": "1.00",
        "ts_ms": NOW_MS,
    }
    _, fetched = await call("GET", f"{API}/portfolio/orders/{order_id}")
    assert fetched["order"]["status"] == "canceled"


async def test_cancel_twice_is_kalshis_not_found(
    call: Call, client: Client, key: rsa.RSAPrivateKey
) -> None:
    order_id = await create_v2(call)
    target = f"{API}/portfolio/events/orders/{order_id}"
    await call("DELETE", target)
    assert await fetch(client, "DELETE", target, signed_headers(key, "DELETE", target)) == (
        404,
        NOT_FOUND,
    )


@pytest.mark.usefixtures("v1_live")
async def test_legacy_cancel_returns_the_canceled_order(call: Call) -> None:
    order_id = await create_v2(call, count="2")
    status, body = await call("DELETE", f"{API}/portfolio/orders/{order_id}")
    assert status == 200
    assert (body["order"]["status"], body["order"]["remaining_count_fp"]) == ("canceled", "0.00")
    assert (body["reduced_by"], body["reduced_by_fp"]) == (2, "2.00")


@pytest.mark.usefixtures("v1_live")
async def test_duplicate_client_order_id_is_409(
    call: Call, client: Client, key: rsa.RSAPrivateKey
) -> None:
    legacy = {"ticker": MARKET, "side": "yes", "action": "buy", "count": 1, "yes_price": 1}
    await call("POST", f"{API}/portfolio/orders", legacy | {"client_order_id": "same"})
    target = f"{API}/portfolio/events/orders"
    data = json.dumps(v2_order(client_order_id="same")).encode()
    headers = signed_headers(key, "POST", target)
    assert await fetch(client, "POST", target, headers, data) == (409, DUPLICATE)


async def test_numeric_count_is_kalshis_flat_bad_request(
    client: Client, key: rsa.RSAPrivateKey
) -> None:
    target = f"{API}/portfolio/events/orders"
    data = json.dumps(v2_order(count=1, price=0.01)).encode()
    status, body = await fetch(client, "POST", target, signed_headers(key, "POST", target), data)
    assert status == 400
    assert body == (
        b'{"code":"bad_request","message":"bad request","details":"json: cannot unmarshal '
        b'number into Go struct field CreateOrderV2Request.count of type string"}'
    )


async def test_invalid_json_is_a_flat_bad_request(client: Client, key: rsa.RSAPrivateKey) -> None:
    target = f"{API}/portfolio/events/orders"
    headers = signed_headers(key, "POST", target)
    status, body = await fetch(client, "POST", target, headers, b"{not json")
    assert status == 400
    assert json.loads(body) == {
        "code": "bad_request",
        "message": "bad request",
        "details": "invalid character 'n' looking for beginning of value",
    }


@pytest.mark.usefixtures("v1_live")
async def test_legacy_create_buy_no_rests_on_the_ask(call: Call) -> None:
    order = {"ticker": MARKET, "side": "no", "action": "buy", "count": 2, "no_price": 40}
    status, body = await call("POST", f"{API}/portfolio/orders", order | {"type": "limit"})
    assert status == 201
    created = body["order"]
    assert (created["side"], created["action"], created["book_side"]) == ("no", "buy", "ask")
    assert (created["yes_price_dollars"], created["no_price_dollars"]) == ("0.6000", "0.4000")
    assert (created["status"], created["initial_count_fp"]) == ("resting", "2.00")


@pytest.mark.usefixtures("v1_live")
async def test_legacy_create_needs_exactly_one_price(call: Call) -> None:
    order = {"ticker": MARKET, "side": "yes", "action": "buy", "count": 1}
    status, body = await call("POST", f"{API}/portfolio/orders", order)
    assert status == 400
    assert body["error"]["code"] == "invalid_order"


@pytest.mark.usefixtures("v1_live")
async def test_legacy_create_needs_side(call: Call) -> None:
    order = {"ticker": MARKET, "action": "buy", "count": 1, "yes_price": 5}
    status, body = await call("POST", f"{API}/portfolio/orders", order)
    assert (status, body) == (
        400,
        {"error": {"code": "invalid_parameters", "message": "invalid parameters"}},
    )


async def test_order_on_unknown_market_is_404(call: Call) -> None:
    status, body = await call("POST", f"{API}/portfolio/events/orders", v2_order(ticker="KXNOPE"))
    assert (status, body) == (404, json.loads(NOT_FOUND))


async def test_crossing_order_fills_at_the_ask(call: Call) -> None:
    status, body = await call(
        "POST", f"{API}/portfolio/events/orders", v2_order(count="10", price="0.3500")
    )
    assert status == 201
    assert (body["fill_count"], body["remaining_count"]) == ("10.00", "0.00")
    assert body["average_fill_price"] == "0.3200"


async def test_positions_reflect_a_fill(call: Call) -> None:
    await create_v2(call, count="10", price="0.3500")
    status, body = await call("GET", f"{API}/portfolio/positions")
    assert status == 200
    assert body["cursor"] == ""
    [position] = body["market_positions"]
    assert (position["ticker"], position["position_fp"]) == (MARKET, "10.00")
    assert position["market_exposure_dollars"] == "3.200000"
    # Kalshi's taker fee: 0.07 x 10 x 0.32 x 0.68 = 0.15232, rounded up.
    assert position["fees_paid_dollars"] == "0.152400"
    assert body["event_positions"][0]["event_ticker"] == "KXHIGHNY-26JUN12"


async def test_selling_nets_against_the_position(call: Call) -> None:
    await create_v2(call, count="10", price="0.3500")  # buys YES at the 0.32 ask
    await create_v2(call, client_order_id="sell", side="ask", count="10", price="0.2500")
    _, positions = await call("GET", f"{API}/portfolio/positions")
    _, balance = await call("GET", f"{API}/portfolio/balance")
    [position] = positions["market_positions"]
    assert (position["position_fp"], position["market_exposure_dollars"]) == ("0.00", "0.000000")
    # Bought at 0.32, sold at the 0.30 bid: 10 x -0.02.
    assert position["realized_pnl_dollars"] == "-0.200000"
    # 1000 - 3.20 - 0.1524 (fee) - 7.00 (NO side) - 0.1470 (fee) + 10 (pairs pay $1).
    assert balance["balance_dollars"] == "999.5006"


async def test_immediate_or_cancel_that_does_not_cross_is_canceled(call: Call) -> None:
    order_id = await create_v2(call, time_in_force="immediate_or_cancel")
    _, body = await call("GET", f"{API}/portfolio/orders/{order_id}")
    assert (body["order"]["status"], body["order"]["remaining_count_fp"]) == ("canceled", "0.00")


async def test_orders_filter_by_status(call: Call) -> None:
    resting = await create_v2(call, client_order_id="a")
    await create_v2(call, client_order_id="b", count="1", price="0.9900")  # fills
    _, body = await call("GET", f"{API}/portfolio/orders?status=resting")
    assert [o["order_id"] for o in body["orders"]] == [resting]


async def test_order_on_a_market_that_is_not_open_is_refused(call: Call) -> None:
    order = v2_order(ticker="KXHIGHNY-26JUN11-B74.5")  # finalized
    status, body = await call("POST", f"{API}/portfolio/events/orders", order)
    assert (status, body["error"]["code"]) == (400, "market_closed")


async def test_positions_count_resting_orders(call: Call) -> None:
    await create_v2(call, count="4")
    _, body = await call("GET", f"{API}/portfolio/positions")
    [position] = body["market_positions"]
    assert (position["position_fp"], position["resting_orders_count"]) == ("0.00", 4)


async def test_balance_shape(call: Call) -> None:
    status, body = await call("GET", f"{API}/portfolio/balance")
    assert status == 200
    assert body == {
        "balance": 100_000,
        "balance_breakdown": [{"balance": "1000.0000", "exchange_index": 0}],
        "balance_dollars": "1000.0000",
        "portfolio_value": 0,
        "updated_ts": NOW_MS // 1000,
    }


async def test_balance_pays_for_a_fill(call: Call) -> None:
    await create_v2(call, count="10", price="0.3500")
    _, body = await call("GET", f"{API}/portfolio/balance")
    assert (body["balance"], body["balance_dollars"], body["portfolio_value"]) == (
        99_664,
        "996.6476",
        320,
    )


# --- what the sandbox saw -----------------------------------------------------------------


async def test_seen_keeps_raw_path_and_body_byte_exact(
    client: Client, state: SandboxState, key: rsa.RSAPrivateKey
) -> None:
    target = f"{API}/portfolio/events/orders?x=%2F%20y"
    data = b'{ "ticker" : "KXNOPE",\n "count": "1" }'
    await fetch(client, "POST", target, signed_headers(key, "POST", target.split("?")[0]), data)
    seen = state.seen[-1]
    assert (seen.method, seen.raw_path, seen.body) == ("POST", target, data)
    assert (seen.key_id, seen.timestamp_ms, seen.authenticated) == (KEY_ID, NOW_MS, True)


async def test_seen_records_why_authentication_failed(
    client: Client, state: SandboxState, key: rsa.RSAPrivateKey
) -> None:
    headers = signed_headers(key, "GET", f"{API}/elsewhere")
    await fetch(client, "GET", f"{API}/portfolio/balance", headers)
    assert (state.seen[-1].authenticated, state.seen[-1].auth_error) == (
        False,
        "INCORRECT_API_KEY_SIGNATURE",
    )


def test_seen_is_bounded(state: SandboxState) -> None:
    assert state.seen.maxlen == 10_000


V1_REMOVED = {
    "error": {
        "code": "deprecated_v1_order_endpoint",
        "message": "Please switch to the V2 endpoints",
        "service": "exchange",
    }
}


@pytest.mark.parametrize(
    ("method", "rest"),
    [
        ("POST", ""),
        ("DELETE", "/o1"),
        ("POST", "/o1/amend"),
        ("POST", "/o1/decrease"),
        ("POST", "/batched"),
        ("DELETE", "/batched"),
    ],
)
async def test_removed_v1_writes_answer_as_kalshi_does_now(
    call: Call, state: SandboxState, method: str, rest: str
) -> None:
    order = {"ticker": MARKET, "side": "yes", "action": "buy", "count": 1, "yes_price": 1}
    status, body = await call(method, f"{API}/portfolio/orders{rest}", order)
    assert (status, body) == (400, V1_REMOVED)
    assert state.orders == {}


async def test_cancel_all_cancels_every_resting_order_and_answers_204(
    call: Call, client: Client, key: rsa.RSAPrivateKey, state: SandboxState
) -> None:
    first = await create_v2(call)
    second = await create_v2(call, count="3", client_order_id="second-order")
    headers = signed_headers(key, "DELETE", f"{API}/portfolio/events/orders")
    status, body = await fetch(client, "DELETE", f"{API}/portfolio/events/orders", headers)
    assert (status, body) == (204, b"")
    assert {state.orders[o].status for o in (first, second)} == {"canceled"}
