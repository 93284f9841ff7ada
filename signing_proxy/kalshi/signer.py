"""Kalshi request signing: load the RSA key once, sign timestamp + METHOD + path with RSA-PSS."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from signing_proxy.config import CredentialsConfig
from signing_proxy.errors import ConfigError
from signing_proxy.kalshi.key_checks import key_warnings
from signing_proxy.kalshi.protocol import (
    HEADER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    PSS,
    SHA256,
    signed_message,
)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a key: never the key itself."""

    key_type: str
    key_size: int
    fingerprint: str


class Signer:
    """Signs Kalshi requests with one private key; safe to share across threads."""

    __slots__ = ("_key", "info", "key_id", "warnings")

    def __init__(
        self, key_id: str, private_key: rsa.RSAPrivateKey, warnings: tuple[str, ...] = ()
    ) -> None:
        self.key_id = key_id
        self._key = private_key
        self.info = key_info(private_key)
        # Likely mistakes found when the key was loaded (kalshi/key_checks.py), for the log.
        self.warnings = warnings

    def __repr__(self) -> str:
        # Never let the key object reach a log through a repr.
        return f"Signer(key_id={self.key_id!r}, fingerprint={self.info.fingerprint!r})"

    def sign(self, message: bytes) -> str:
        """Base64 RSA-PSS-SHA256 signature of `message`."""
        return base64.b64encode(self._key.sign(message, PSS, SHA256)).decode("ascii")

    def headers(self, method: str, path: str, timestamp_ms: int | None = None) -> dict[str, str]:
        """The three KALSHI-ACCESS-* headers for `method` on `path` (the path without query)."""
        if timestamp_ms is None:
            timestamp_ms = time.time_ns() // 1_000_000
        timestamp = str(timestamp_ms)
        signature = self.sign(signed_message(timestamp, method, path))
        return {
            HEADER_KEY: self.key_id,
            HEADER_TIMESTAMP: timestamp,
            HEADER_SIGNATURE: signature,
        }

    def public_key(self) -> rsa.RSAPublicKey:
        """The public half, for verification and fingerprints."""
        return self._key.public_key()


def key_info(private_key: rsa.RSAPrivateKey) -> KeyInfo:
    """Type, size and SHA-256 fingerprint (of the DER public key) of `private_key`."""
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    return KeyInfo(key_type="RSA", key_size=private_key.key_size, fingerprint=f"SHA256:{digest}")


def load_signer(credentials: CredentialsConfig) -> Signer:
    """Load the configured key and key id, or raise ConfigError naming what is wrong."""
    if not credentials.api_key_id:
        raise ConfigError(
            "credentials.api_key_id: not set (set KALSHI_API_KEY_ID or credentials.api_key_id)"
        )
    if credentials.private_key_pem:
        source = "KALSHI_PRIVATE_KEY"
        pem = normalise_pem(credentials.private_key_pem)
    elif credentials.private_key_file:
        source = f"credentials.private_key_file {credentials.private_key_file!r}"
        pem = read_key_file(credentials.private_key_file, credentials.allow_insecure_key_file)
    else:
        raise ConfigError(
            "credentials: no private key; set KALSHI_PRIVATE_KEY_FILE, "
            "credentials.private_key_file or KALSHI_PRIVATE_KEY"
        )
    key = parse_private_key(pem, credentials.passphrase, source)
    # Both PKCS#8 ("BEGIN ENCRYPTED PRIVATE KEY") and PKCS#1 ("Proc-Type: 4,ENCRYPTED") say so.
    unneeded = bool(credentials.passphrase) and b"ENCRYPTED" not in pem
    warnings = key_warnings(credentials.api_key_id, key, passphrase_unneeded=unneeded)
    return Signer(credentials.api_key_id, key, warnings)


def normalise_pem(text: str) -> bytes:
    """Accept a PEM pasted into an env var: literal \\n sequences, quotes, CRLF."""
    text = text.strip().strip("'\"").replace("\\r", "").replace("\\n", "\n")
    return text.replace("\r\n", "\n").strip().encode()


def read_key_file(path: str, allow_insecure: bool) -> bytes:
    """Read a key file, refusing one that group or others can read."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"credentials.private_key_file: {path!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(
            f"credentials.private_key_file: {path!r} cannot be read: {exc.strerror}"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"credentials.private_key_file: {path!r} is not a regular file")
    if info.st_mode & 0o077 and not allow_insecure:
        mode = stat.S_IMODE(info.st_mode)
        raise ConfigError(
            f"credentials.private_key_file: {path!r} is readable by group or others "
            f"(mode {mode:o}); run: chmod 600 {path} "
            "(or set credentials.allow_insecure_key_file: true for a mounted secret)"
        )
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"credentials.private_key_file: {path!r} cannot be read: {exc.strerror}"
        ) from None


def parse_private_key(pem: bytes, passphrase: str | None, source: str) -> rsa.RSAPrivateKey:
    """Parse a PKCS#1 or PKCS#8 PEM RSA key; errors name `source`, never the key."""
    if b"-----BEGIN" not in pem:
        raise ConfigError(f"{source}: is not a PEM private key (no -----BEGIN line)")
    if b"PUBLIC KEY-----" in pem and b"PRIVATE KEY-----" not in pem:
        raise ConfigError(f"{source}: is a public key; the proxy needs the private key")
    password = passphrase.encode() if passphrase else None
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except TypeError:
        if password is None:
            raise ConfigError(
                f"{source}: the key is encrypted; set KALSHI_PRIVATE_KEY_PASSPHRASE"
            ) from None
        # A passphrase was given for a key that has none: the key is still usable.
        key = _load_unencrypted(pem, source)
    except ValueError:
        if password is not None and b"ENCRYPTED" in pem:
            raise ConfigError(
                f"{source}: wrong passphrase (KALSHI_PRIVATE_KEY_PASSPHRASE) for the key"
            ) from None
        raise ConfigError(f"{source}: cannot parse the PEM private key (damaged?)") from None
    except UnsupportedAlgorithm:
        raise ConfigError(f"{source}: the key uses an unsupported algorithm") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
        raise ConfigError(f"{source}: the key type is {kind or 'not RSA'}; Kalshi keys are RSA")
    return key


def _load_unencrypted(pem: bytes, source: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{source}: cannot parse the PEM private key (damaged?)") from None
