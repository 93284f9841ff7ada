"""The sandbox served for real, with its signed caller (a module may define its own)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.sandbox.exchange_client import Exchange, Factory, serve
from tests.support.keys import new_rsa_key


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    """One RSA key per module (making one takes a while)."""
    return new_rsa_key()


@pytest.fixture
async def exchange(aiohttp_client: Factory, key: rsa.RSAPrivateKey) -> Exchange:
    """The sandbox and a caller that signs with `key`."""
    return await serve(aiohttp_client, key)
