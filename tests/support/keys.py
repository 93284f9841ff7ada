"""The test key: Kalshi's RSA-2048 in the encodings users bring, and Kalshi's PSS."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Written here, not imported from signing_proxy.kalshi: the tests state Kalshi's scheme
# independently, so a wrong constant in the product cannot make its own check pass.
KALSHI_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)

KEY_ID = str(uuid.UUID(int=0x5EED))


@dataclass(frozen=True)
class KeyMaterial:
    """One RSA key in the encodings users bring."""

    key: rsa.RSAPrivateKey
    pkcs8: bytes
    pkcs1: bytes

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.key.public_key()

    def encrypted(self, passphrase: str) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )


def new_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 key, as Kalshi issues them."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pkcs8_pem(key: rsa.RSAPrivateKey) -> bytes:
    """`key` as an unencrypted PKCS#8 PEM, the form Kalshi's download has."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def key_material_of(key: rsa.RSAPrivateKey) -> KeyMaterial:
    """`key` in PKCS#8 and PKCS#1."""
    pkcs1 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return KeyMaterial(key=key, pkcs8=pkcs8_pem(key), pkcs1=pkcs1)


def write_key(directory: Path, pem: bytes, name: str = "key.pem", mode: int = 0o600) -> Path:
    """`pem` written to `directory`/`name` with `mode` (0600: the proxy's requirement)."""
    path = directory / name
    path.write_bytes(pem)
    path.chmod(mode)
    return path
