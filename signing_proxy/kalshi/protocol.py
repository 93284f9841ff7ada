"""What Kalshi expects of a signed request: the three headers, the message, the padding."""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

HEADER_KEY: Final = "KALSHI-ACCESS-KEY"
HEADER_TIMESTAMP: Final = "KALSHI-ACCESS-TIMESTAMP"
HEADER_SIGNATURE: Final = "KALSHI-ACCESS-SIGNATURE"

# Kalshi's scheme: PSS with MGF1(SHA-256) and a salt as long as the digest (32 bytes).
PSS: Final = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
SHA256: Final = hashes.SHA256()


def signed_message(timestamp: str, method: str, path: str) -> bytes:
    """What is signed: timestamp (ms) + METHOD + the path as sent, without the query."""
    # surrogateescape: a path's undecodable bytes are signed as the bytes that travel.
    return f"{timestamp}{method}{path}".encode("utf-8", "surrogateescape")
