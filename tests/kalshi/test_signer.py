"""The signer: Kalshi's exact scheme, verified with the public key, and every key-loading error."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signing_proxy.config import CredentialsConfig
from signing_proxy.errors import ConfigError
from signing_proxy.kalshi.signer import Signer, load_signer, normalise_pem
from tests.support.keys import KALSHI_PSS, KEY_ID, KeyMaterial, write_key


def verify(key_material: KeyMaterial, message: bytes, signature_b64: str) -> None:
    """Raise InvalidSignature unless `signature_b64` is Kalshi's PSS signature of `message`."""
    key_material.public_key.verify(
        base64.b64decode(signature_b64, validate=True), message, KALSHI_PSS, hashes.SHA256()
    )


def signer_for(path: Path, **kwargs: object) -> Signer:
    return load_signer(CredentialsConfig(api_key_id=KEY_ID, private_key_file=str(path), **kwargs))  # type: ignore[arg-type]


def test_headers_verify_with_public_key(key_file: Path, key_material: KeyMaterial) -> None:
    headers = signer_for(key_file).headers("GET", "/trade-api/v2/portfolio/balance")
    assert headers["KALSHI-ACCESS-KEY"] == KEY_ID
    message = f"{headers['KALSHI-ACCESS-TIMESTAMP']}GET/trade-api/v2/portfolio/balance".encode()
    verify(key_material, message, headers["KALSHI-ACCESS-SIGNATURE"])


def test_timestamp_is_milliseconds_now(key_file: Path) -> None:
    before = time.time_ns() // 1_000_000
    stamp = int(signer_for(key_file).headers("GET", "/x")["KALSHI-ACCESS-TIMESTAMP"])
    after = time.time_ns() // 1_000_000
    assert before <= stamp <= after


def test_signature_covers_method_and_path(key_file: Path, key_material: KeyMaterial) -> None:
    headers = signer_for(key_file).headers("POST", "/trade-api/v2/portfolio/orders", 1703123456789)
    with pytest.raises(InvalidSignature):
        verify(
            key_material,
            b"1703123456789GET/trade-api/v2/portfolio/orders",
            headers["KALSHI-ACCESS-SIGNATURE"],
        )
    verify(
        key_material,
        b"1703123456789POST/trade-api/v2/portfolio/orders",
        headers["KALSHI-ACCESS-SIGNATURE"],
    )


def test_pss_is_randomised_so_signatures_differ(key_file: Path) -> None:
    signer = signer_for(key_file)
    assert signer.sign(b"same") != signer.sign(b"same")


def test_pkcs1_key_loads(tmp_path: Path, key_material: KeyMaterial) -> None:
    signer = signer_for(write_key(tmp_path, key_material.pkcs1))
    verify(key_material, b"m", signer.sign(b"m"))


def test_encrypted_key_with_passphrase(tmp_path: Path, key_material: KeyMaterial) -> None:
    path = write_key(tmp_path, key_material.encrypted("correct horse"))
    signer = signer_for(path, passphrase="correct horse")
    verify(key_material, b"m", signer.sign(b"m"))


def test_key_from_env_with_literal_backslash_n(key_material: KeyMaterial) -> None:
    pasted = key_material.pkcs8.decode().strip().replace("\n", "\\n")
    signer = load_signer(CredentialsConfig(api_key_id=KEY_ID, private_key_pem=f'"{pasted}"'))
    verify(key_material, b"m", signer.sign(b"m"))


def test_normalise_pem_handles_crlf() -> None:
    assert normalise_pem("a\r\nb\\r\\nc") == b"a\nb\nc"


def test_info_reports_type_size_and_fingerprint(key_file: Path) -> None:
    info = signer_for(key_file).info
    assert (info.key_type, info.key_size) == ("RSA", 2048)
    assert info.fingerprint.startswith("SHA256:") and len(info.fingerprint) == 50


def test_repr_hides_the_key(key_file: Path, key_material: KeyMaterial) -> None:
    text = repr(signer_for(key_file))
    assert "PRIVATE" not in text and KEY_ID in text


def _error(credentials: CredentialsConfig) -> str:
    with pytest.raises(ConfigError) as caught:
        load_signer(credentials)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_key_id(key_file: Path) -> None:
    assert "KALSHI_API_KEY_ID" in _error(CredentialsConfig(private_key_file=str(key_file)))


def test_no_key_configured() -> None:
    assert "no private key" in _error(CredentialsConfig(api_key_id=KEY_ID))


def test_missing_key_file(tmp_path: Path) -> None:
    message = _error(CredentialsConfig(api_key_id=KEY_ID, private_key_file=str(tmp_path / "no")))
    assert "does not exist" in message and "private_key_file" in message


def test_group_readable_key_refused_with_fix(tmp_path: Path, key_material: KeyMaterial) -> None:
    path = write_key(tmp_path, key_material.pkcs8, mode=0o640)
    message = _error(CredentialsConfig(api_key_id=KEY_ID, private_key_file=str(path)))
    assert f"chmod 600 {path}" in message and "allow_insecure_key_file" in message


def test_insecure_key_file_opt_out(tmp_path: Path, key_material: KeyMaterial) -> None:
    path = write_key(tmp_path, key_material.pkcs8, mode=0o644)
    signer = signer_for(path, allow_insecure_key_file=True)
    verify(key_material, b"m", signer.sign(b"m"))


def test_encrypted_key_without_passphrase(tmp_path: Path, key_material: KeyMaterial) -> None:
    path = write_key(tmp_path, key_material.encrypted("pw-pw-pw-pw"))
    message = _error(CredentialsConfig(api_key_id=KEY_ID, private_key_file=str(path)))
    assert "KALSHI_PRIVATE_KEY_PASSPHRASE" in message and "encrypted" in message


def test_wrong_passphrase(tmp_path: Path, key_material: KeyMaterial) -> None:
    path = write_key(tmp_path, key_material.encrypted("right-passphrase"))
    message = _error(
        CredentialsConfig(api_key_id=KEY_ID, private_key_file=str(path), passphrase="wrong-one!")
    )
    assert "wrong passphrase" in message and "wrong-one!" not in message


def test_passphrase_for_unencrypted_key_is_ignored(
    key_file: Path, key_material: KeyMaterial
) -> None:
    signer = signer_for(key_file, passphrase="not-needed")
    verify(key_material, b"m", signer.sign(b"m"))


def test_non_rsa_key_refused(tmp_path: Path) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = write_key(tmp_path, pem)
    message = _error(CredentialsConfig(api_key_id=KEY_ID, private_key_file=str(path)))
    assert "the key type is EC; Kalshi keys are RSA" in message


def test_public_key_refused(tmp_path: Path, key_material: KeyMaterial) -> None:
    pem = key_material.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = write_key(tmp_path, pem)
    assert "public key" in _error(CredentialsConfig(api_key_id=KEY_ID, private_key_file=str(path)))


def test_garbage_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write_key(tmp_path, b"hello this is not a key")
    message = _error(CredentialsConfig(api_key_id=KEY_ID, private_key_file=str(path)))
    assert "not a PEM private key" in message and "hello" not in message


def test_damaged_pem_error_does_not_echo_key(key_material: KeyMaterial) -> None:
    lines = key_material.pkcs8.decode().splitlines()
    damaged = "\n".join([lines[0], lines[1][:-4] + "!!!!", *lines[2:]])
    message = _error(CredentialsConfig(api_key_id=KEY_ID, private_key_pem=damaged))
    assert "KALSHI_PRIVATE_KEY" in message
    assert lines[2] not in message


def test_both_key_sources_is_an_error(key_file: Path, key_material: KeyMaterial) -> None:
    from signing_proxy.config import load_config

    with pytest.raises(ConfigError, match="keep one"):
        load_config(
            None,
            {
                "KALSHI_PRIVATE_KEY_FILE": str(key_file),
                "KALSHI_PRIVATE_KEY": key_material.pkcs8.decode(),
            },
        )
