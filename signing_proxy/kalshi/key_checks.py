"""Things about a key that work but are likely mistakes: warned about at start, never fatal."""

from __future__ import annotations

import uuid

from cryptography.hazmat.primitives.asymmetric import rsa

# Kalshi issues 2048-bit RSA keys (API_FACTS.md); anything shorter is weak, and may be refused.
MIN_KEY_BITS = 2048


def key_warnings(key_id: str, key: rsa.RSAPrivateKey, passphrase_unneeded: bool) -> tuple[str, ...]:
    """One line per likely mistake: a key id that is no UUID, a short key, a spare passphrase."""
    warnings = []
    if not _is_uuid(key_id):
        # Never the value: it may be something else pasted into the wrong variable.
        warnings.append(
            f"credentials.api_key_id (KALSHI_API_KEY_ID) is not a UUID ({len(key_id)} "
            "characters); Kalshi's key ids look like 0e2a91c4-1b7d-4a55-9c3e-2f6d8b0a7e31, "
            "so Kalshi will likely answer 401 NOT_FOUND"
        )
    if key.key_size < MIN_KEY_BITS:
        warnings.append(
            f"the RSA key has {key.key_size} bits, under {MIN_KEY_BITS}; Kalshi issues "
            f"{MIN_KEY_BITS}-bit keys, so this is likely not the key Kalshi knows"
        )
    if passphrase_unneeded:
        warnings.append(
            "KALSHI_PRIVATE_KEY_PASSPHRASE is set but the key is not encrypted; the passphrase "
            "is ignored (unset it, or check that this is the key you meant)"
        )
    return tuple(warnings)


def _is_uuid(text: str) -> bool:
    """Whether `text` is a UUID written the usual way (8-4-4-4-12 hex digits)."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return False
    return str(parsed) == text.lower()
