"""API keys and the account's usage level against the sandbox served for real: a key
created or generated through the API signs at once (REST and WebSocket); a deleted one
is refused with Kalshi's 401 for an unknown key."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signing_proxy.sandbox.ws import WS_PATH
from tests.sandbox.exchange_client import Client, Exchange, serve
from tests.sandbox.test_sandbox import API, KEY_ID, NOW_MS, UNKNOWN_KEY, signed_headers
from tests.support.keys import new_rsa_key

KEYS = f"{API}/api_keys"
BALANCE = f"{API}/portfolio/balance"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
async def exchange(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], key: rsa.RSAPrivateKey
) -> Exchange:
    return await serve(aiohttp_client, key)


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


async def test_the_starting_key_is_listed(exchange: Exchange) -> None:
    assert await exchange.ok("GET", KEYS) == {
        "api_keys": [{"api_key_id": KEY_ID, "name": "sandbox", "scopes": ["read", "write"]}]
    }


async def test_a_created_key_signs_at_once(
    exchange: Exchange, other_key: rsa.RSAPrivateKey
) -> None:
    body = {"name": "bot", "public_key": public_pem(other_key), "scopes": ["read"]}
    status, created = await exchange.call("POST", KEYS, body)
    assert status == 201, created
    assert set(created) == {"api_key_id"}
    new_id = created["api_key_id"]
    assert new_id != KEY_ID
    assert await exchange.raw("GET", BALANCE, key=other_key, key_id=new_id) == (
        200,
        (await exchange.raw("GET", BALANCE))[1],
    )
    listed = (await exchange.ok("GET", KEYS))["api_keys"]
    assert {"api_key_id": new_id, "name": "bot", "scopes": ["read"]} in listed
    # The key id names that key only: the sandbox's own key does not sign for it.
    status, _ = await exchange.raw("GET", BALANCE, key_id=new_id)
    assert status == 401


async def test_a_generated_key_is_kalshis_pem_and_signs_rest_and_websocket(
    exchange: Exchange,
) -> None:
    status, generated = await exchange.call("POST", f"{KEYS}/generate", {"name": "ci"})
    assert status == 201, generated
    assert set(generated) == {"api_key_id", "private_key"}
    pem = generated["private_key"]
    assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----\n")  # PKCS#1, Kalshi's format
    private_key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    assert private_key.key_size == 2048
    key_id = generated["api_key_id"]
    status, _ = await exchange.raw("GET", BALANCE, key=private_key, key_id=key_id)
    assert status == 200
    headers = signed_headers(private_key, "GET", WS_PATH, ts=NOW_MS, key_id=key_id)
    async with exchange.client.ws_connect(WS_PATH, headers=headers) as ws:
        await ws.send_json({"id": 1, "cmd": "list_subscriptions"})
        assert (await ws.receive_json(timeout=5))["type"] == "ok"


async def test_a_deleted_key_is_refused_as_an_unknown_key(exchange: Exchange) -> None:
    generated = await exchange.ok("POST", f"{KEYS}/generate", {"name": "short-lived"})
    private_key = serialization.load_pem_private_key(
        generated["private_key"].encode(), password=None
    )
    assert isinstance(private_key, rsa.RSAPrivateKey)
    key_id = generated["api_key_id"]
    headers = signed_headers(exchange.key, "DELETE", f"{KEYS}/{key_id}")
    async with exchange.client.delete(f"{KEYS}/{key_id}", headers=headers) as reply:
        # No Content: no body, and nothing claims there is JSON.
        assert (reply.status, await reply.read()) == (204, b"")
        assert "Content-Type" not in reply.headers
    assert await exchange.raw("GET", BALANCE, key=private_key, key_id=key_id) == (
        401,
        UNKNOWN_KEY,
    )
    assert key_id not in [k["api_key_id"] for k in (await exchange.ok("GET", KEYS))["api_keys"]]
    status, _ = await exchange.raw("DELETE", f"{KEYS}/{key_id}")
    assert status == 404


async def test_deleting_the_key_in_use_locks_it_out(exchange: Exchange) -> None:
    status, _ = await exchange.raw("DELETE", f"{KEYS}/{KEY_ID}")
    assert status == 204
    assert await exchange.raw("GET", BALANCE) == (401, UNKNOWN_KEY)


@pytest.mark.parametrize(
    "body",
    [
        {"public_key": "PEM"},  # no name
        {"name": "", "public_key": "PEM"},
        {"name": "k", "public_key": "not a pem"},
        {"name": "k", "public_key": "EC"},
        {"name": "k", "public_key": "PEM", "scopes": ["write"]},  # write needs read
        {"name": "k", "public_key": "PEM", "scopes": ["admin"]},
        {"name": "k", "public_key": "PEM", "scopes": []},
        {"name": "k", "public_key": "PEM", "subaccount": 5},  # no such subaccount
    ],
)
async def test_create_refuses_bad_requests(
    exchange: Exchange, other_key: rsa.RSAPrivateKey, body: dict[str, Any]
) -> None:
    if body.get("public_key") == "PEM":
        body = body | {"public_key": public_pem(other_key)}
    elif body.get("public_key") == "EC":
        body = body | {"public_key": public_pem(ec.generate_private_key(ec.SECP256R1()))}
    status, answer = await exchange.call("POST", KEYS, body)
    assert status == 400, answer
    assert list(exchange.state.keys) == [KEY_ID]


async def test_child_scopes_and_a_subaccount_are_kept(exchange: Exchange) -> None:
    body = {"name": "trader", "scopes": ["write::trade", "read::portfolio_balance"],
            "subaccount": 0}  # fmt: skip
    key_id = (await exchange.ok("POST", f"{KEYS}/generate", body))["api_key_id"]
    listed = {k["api_key_id"]: k for k in (await exchange.ok("GET", KEYS))["api_keys"]}
    assert listed[key_id] == {"api_key_id": key_id, "name": "trader", "subaccount": 0,
                              "scopes": ["write::trade", "read::portfolio_balance"]}  # fmt: skip


async def test_an_fcm_binding_is_forbidden_and_a_mistyped_name_is_a_decode_error(
    exchange: Exchange,
) -> None:
    status, _ = await exchange.call(
        "POST", f"{KEYS}/generate", {"name": "x", "fcm_subtrader_id": "u_1"}
    )
    assert status == 403
    status, answer = await exchange.call("POST", f"{KEYS}/generate", {"name": 7})
    assert (status, answer["code"]) == (400, "bad_request")


async def test_volume_progress_counts_the_accounts_contracts(exchange: Exchange) -> None:
    before = await exchange.ok("GET", f"{API}/account/api_usage_level/volume_progress")
    (progress,) = before["volume_progress"]
    assert progress["trailing_30d_volume_fp"] == "0.00"
    assert progress["computed_ts"] == NOW_MS // 1000
    assert [g["level"] for g in progress["goals"]] == [
        "expert", "premier", "paragon", "prime", "prestige",
    ]  # fmt: skip
    assert all(set(g) == {"level", "earn_volume_goal_fp", "keep_volume_goal_fp"}
               for g in progress["goals"])  # fmt: skip
    status, _ = await exchange.order("bid", "0.32", "3")
    assert status == 201
    after = await exchange.ok("GET", f"{API}/account/api_usage_level/volume_progress")
    assert after["volume_progress"][0]["trailing_30d_volume_fp"] == "3.00"
    exchange.clock.ms += 31 * 86_400_000
    later = await exchange.ok("GET", f"{API}/account/api_usage_level/volume_progress")
    assert later["volume_progress"][0]["trailing_30d_volume_fp"] == "0.00"


async def test_the_bare_usage_level_path_is_not_kalshis(exchange: Exchange) -> None:
    # Spec 3.30 has GET .../volume_progress and POST .../upgrade, no GET of the level itself.
    status, body = await exchange.raw("GET", f"{API}/account/api_usage_level")
    assert status == 404
    assert json.loads(body)["error"]["code"] == "not_found"
