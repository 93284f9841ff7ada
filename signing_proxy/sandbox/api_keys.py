"""The sandbox's API key endpoints (`/api_keys`): list, create with the client's public key,
generate a key pair, delete. A key added here signs requests at once (REST and WebSocket);
a deleted one is refused as an unknown key is (401, details NOT_FOUND)."""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.portfolio import MAX_SUBACCOUNT
from signing_proxy.sandbox.state import KeyInfo, SandboxState
from signing_proxy.sandbox.wire import (
    INVALID_PARAMETERS,
    JSON,
    NOT_FOUND,
    Call,
    KalshiError,
    decode_body,
)

# ApiKeyScope in spec 3.30; `write` needs `read` beside it, the children stand alone.
SCOPES: Final = (
    "read", "write", "read::block_trade_accept", "read::portfolio_balance", "write::trade",
    "write::transfer", "write::block_trade_accept",
)  # fmt: skip
_KEY_TYPES: Final = {
    "name": "string", "public_key": "string", "scopes": "array", "subaccount": "int",
    "fcm_subtrader_id": "string",
}  # fmt: skip
# Not recorded from Kalshi: the spec names the status (403), not the body.
_FCM_ONLY = kalshi_error("forbidden", "fcm_subtrader_id requires an FCM member caller")


def list_api_keys(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /api_keys: every key that may sign, oldest first."""
    listed = []
    for key_id in state.keys:
        info = state.key_info.get(key_id, KeyInfo("sandbox"))
        entry: JSON = {"api_key_id": key_id, "name": info.name, "scopes": list(info.scopes)}
        if info.subaccount is not None:
            entry["subaccount"] = info.subaccount
        listed.append(entry)
    return 200, {"api_keys": listed}


def create_api_key(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /api_keys: the client's RSA public key (PEM) signs from now on."""
    doc = decode_body(call.body, "CreateApiKeyRequest", _KEY_TYPES)
    info = _key_info(state, doc)
    try:
        public_key = serialization.load_pem_public_key(str(doc.get("public_key", "")).encode())
    except (ValueError, TypeError):
        raise KalshiError(400, INVALID_PARAMETERS) from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise KalshiError(400, INVALID_PARAMETERS)  # Kalshi's keys are RSA
    return 201, {"api_key_id": _add(state, public_key, info)}


def generate_api_key(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /api_keys/generate: a new RSA-2048 pair; the private key is answered once."""
    doc = decode_body(call.body, "GenerateApiKeyRequest", _KEY_TYPES)
    info = _key_info(state, doc)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # Kalshi hands its keys out "in the RSA_PRIVATE_KEY format" (docs: getting_started/
    # api_keys): PKCS#1, the PEM whose header names an RSA private key.
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    key_id = _add(state, private_key.public_key(), info)
    return 201, {"api_key_id": key_id, "private_key": pem.decode()}


def delete_api_key(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """DELETE /api_keys/{id}: gone for good (204, no body)."""
    key_id = call.params[0]
    if key_id not in state.keys:
        raise KalshiError(404, NOT_FOUND)
    del state.keys[key_id]
    state.key_info.pop(key_id, None)
    return 204, {}


def _key_info(state: SandboxState, doc: JSON) -> KeyInfo:
    """The name, scopes and subaccount a create or generate request asks for, checked."""
    if doc.get("fcm_subtrader_id") is not None:
        raise KalshiError(403, _FCM_ONLY)  # the sandbox's user is no FCM member
    name, scopes = doc.get("name"), doc.get("scopes")
    chosen = ["read", "write"] if scopes is None else scopes
    subaccount = doc.get("subaccount")
    if not isinstance(name, str) or not name.strip():
        raise KalshiError(400, INVALID_PARAMETERS)
    if not chosen or not all(isinstance(s, str) and s in SCOPES for s in chosen):
        raise KalshiError(400, INVALID_PARAMETERS)
    if "write" in chosen and "read" not in chosen:
        raise KalshiError(400, INVALID_PARAMETERS)
    if subaccount is not None and not (
        0 <= subaccount <= MAX_SUBACCOUNT and subaccount in state.accounts
    ):
        raise KalshiError(400, INVALID_PARAMETERS)
    return KeyInfo(name, tuple(dict.fromkeys(chosen)), subaccount)


def _add(state: SandboxState, public_key: rsa.RSAPublicKey, info: KeyInfo) -> str:
    key_id = state.new_id()
    state.keys[key_id] = public_key
    state.key_info[key_id] = info
    return key_id
