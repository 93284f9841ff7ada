"""Kalshi's check of a signed request, with the 401 bodies Kalshi answers (recorded in
shared/kalshi/wire/): used by the offline exchange and by the tests' upstreams."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from signing_proxy.kalshi.protocol import (
    HEADER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    PSS,
    SHA256,
    signed_message,
)


def kalshi_error(code: str, message: str, **extra: str) -> dict[str, Any]:
    """Kalshi's nested error body; keys keep Kalshi's order (code, message, details/service)."""
    return {"error": {"code": code, "message": message, **extra}}


def parse_ms(value: str | None) -> int | None:
    """A KALSHI-ACCESS-TIMESTAMP as milliseconds, or None when it is not one."""
    # Only plain ASCII digits count as "milliseconds since the epoch, decimal string".
    if value and value.isascii() and value.isdigit():
        return int(value)
    return None


def verify_signature(public_key: RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    """Whether `signature_b64` is a valid RSA-PSS/SHA-256 (salt 32) signature of `message`."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text: malformed base64 is a bad signature
        return False
    try:
        public_key.verify(signature, message, PSS, SHA256)
    except InvalidSignature:
        return False
    return True


def check_auth(
    headers: Mapping[str, str],
    method: str,
    raw_path: str,
    keys: Mapping[str, RSAPublicKey],
    now_ms: int,
    window_ms: int,
) -> tuple[int, dict[str, Any]] | None:
    """Verify Kalshi's three headers: (401, Kalshi's error body) on failure, None when valid."""
    lowered = {name.lower(): value for name, value in headers.items()}
    key_id = lowered.get(HEADER_KEY.lower(), "")
    timestamp = lowered.get(HEADER_TIMESTAMP.lower(), "")
    signature = lowered.get(HEADER_SIGNATURE.lower(), "")
    if not key_id:
        # Not recorded from Kalshi: modelled on the recorded missing-signature body.
        return 401, kalshi_error(
            "api_key_is_missing_from_headers", "api key is missing from headers"
        )
    if not timestamp:
        # Not recorded from Kalshi: modelled on the recorded missing-signature body.
        return 401, kalshi_error(
            "timestamp_is_missing_from_headers", "timestamp is missing from headers"
        )
    if not signature:
        return 401, kalshi_error(
            "signature_is_missing_from_headers", "signature is missing from headers"
        )
    public_key = keys.get(key_id)
    if public_key is None:
        return 401, kalshi_error(
            "authentication_error", "authentication_error", details="NOT_FOUND"
        )
    sent_ms = parse_ms(timestamp)
    # A timestamp that is not decimal milliseconds can never be inside the window (the
    # answer to a malformed one is not recorded from Kalshi).
    if sent_ms is None or abs(now_ms - sent_ms) > window_ms:
        return 401, kalshi_error("header_timestamp_expired", "header timestamp expired")
    # The path as it arrived on the wire, percent-encoding kept; the query is not signed.
    path = raw_path.partition("?")[0]
    message = signed_message(timestamp, method, path)
    if not verify_signature(public_key, message, signature):
        return 401, kalshi_error(
            "authentication_error", "authentication_error", details="INCORRECT_API_KEY_SIGNATURE"
        )
    return None
