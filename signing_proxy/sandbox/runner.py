"""`signing-proxy sandbox`: a throwaway key, the offline upstream, and the proxy in front."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.config import (
    Config,
    CredentialsConfig,
    JournalConfig,
    ListenConfig,
    Overrides,
    is_loopback_host,
    load_config,
    with_upstream,
)
from signing_proxy.config.rate_limit import TIERS
from signing_proxy.errors import ConfigError
from signing_proxy.kalshi.signer import load_signer
from signing_proxy.ops.logging import SecretRedactor, configure_logging, get_logger
from signing_proxy.ops.server import Served, ServeHooks, run_event_loop, serve, start
from signing_proxy.proxy.app import LIFECYCLE, create_app
from signing_proxy.sandbox import create_sandbox_app

# The sandbox ignores credentials and upstream settings from the environment; only
# how it logs may be chosen.
_LOGGING_ENV = ("SIGNING_PROXY_LOG_FORMAT", "SIGNING_PROXY_LOG_LEVEL")
# The exchange serves only the proxy, which has drained by then: it stops at once.
_EXCHANGE_STOP_SECONDS = 2.0


def write_throwaway_key(directory: Path) -> Path:
    """Generate an RSA-2048 key into `directory` with mode 0600; return its path."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / "sandbox-key.pem"
    # Created 0600 from the start: there is no moment when others could read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return path


def check_arguments(host: str, port: str | int) -> int:
    """Refuse a sandbox address that others could reach, or a port that does not exist;
    the port as a number."""
    # The sandbox has no inbound tokens and signs whatever it is sent: off loopback,
    # anyone on the network could use it.
    if not is_loopback_host(host.strip("[]")):
        raise ConfigError(
            f"sandbox --host: {host!r} is not a loopback address, and the sandbox has no "
            "inbound tokens, so anyone on the network could use it; use 127.0.0.1 or localhost"
        )
    text = str(port).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        raise ConfigError(f"sandbox --port: must be a number between 0 and 65535; got {port!r}")
    # Checked here: a larger number would silently wrap around to another port at bind.
    if not 0 <= int(text) <= 65535:
        raise ConfigError(f"sandbox --port: must be between 0 and 65535; got {int(text)}")
    return int(text)


@dataclass(frozen=True, slots=True)
class ExchangeOptions:
    """How the sandbox's own exchange runs, as the command line asked."""

    rate_limit: str | None = None  # the Kalshi tier whose rate limits it keeps; None: none
    seed: int | None = None  # makes the makers' moves and the ids repeatable
    port: int = 0  # the exchange's own port on 127.0.0.1; 0: any free one


def rate_limit_tier(value: str | None) -> str | None:
    """--rate-limit TIER, checked: one of Kalshi's tiers (any case), or None for off."""
    if value is None:
        return None
    tier = value.strip().lower()
    if tier not in TIERS:
        raise ConfigError(f"sandbox --rate-limit: must be one of {', '.join(TIERS)}; got {value!r}")
    return tier


def whole_number(flag: str, value: str | None, highest: int) -> int | None:
    """A flag's value as a whole number from 0 to `highest`; None when not given."""
    if value is None:
        return None
    text = value.strip()
    # Length first: int() refuses (with a traceback) strings of thousands of digits.
    well_formed = text.isascii() and text.isdigit() and len(text) <= len(str(highest))
    if not well_formed or int(text) > highest:
        raise ConfigError(
            f"sandbox {flag}: must be a whole number from 0 to {highest}; got {value!r}"
        )
    return int(text)


def exchange_options(
    port: int, rate_limit: str | None, seed: str | None, exchange_port: str | None
) -> ExchangeOptions:
    """The exchange's flags, checked (each mistake one ConfigError naming its flag)."""
    pinned = whole_number("--exchange-port", exchange_port, 65535)
    if pinned and pinned == port:
        raise ConfigError(f"sandbox --exchange-port: must differ from --port; both are {port}")
    return ExchangeOptions(
        rate_limit=rate_limit_tier(rate_limit),
        seed=whole_number("--seed", seed, 2**63 - 1),
        port=pinned or 0,
    )


def run_sandbox(
    host: str,
    port: str | int,
    *,
    rate_limit: str | None = None,
    seed: str | None = None,
    exchange_port: str | None = None,
) -> int:
    """Serve the sandbox until SIGINT or SIGTERM; the key file is removed at exit."""
    port = check_arguments(host, port)
    options = exchange_options(port, rate_limit, seed, exchange_port)
    with tempfile.TemporaryDirectory(prefix="signing-proxy-sandbox-") as tmp:
        key_path = write_throwaway_key(Path(tmp))
        key_id = str(uuid.uuid4())
        # Only logging settings come from the usual sources; everything else is fixed.
        logging_env = {k: os.environ[k] for k in _LOGGING_ENV if k in os.environ}
        base = load_config(None, logging_env, Overrides())
        config = dataclasses.replace(
            base,
            credentials=CredentialsConfig(api_key_id=key_id, private_key_file=str(key_path)),
            listen=ListenConfig(host=host, port=port),
            # Like the exchange's state, the journal lasts as long as this sandbox.
            journal=JournalConfig(path=str(Path(tmp) / "journal.sqlite3")),
        )
        run_event_loop(_serve_sandbox(config, options))
    return 0


async def _serve_sandbox(config: Config, options: ExchangeOptions) -> None:
    signer = load_signer(config.credentials)
    configure_logging(config.logging, SecretRedactor(config.secret_values()))
    upstream_app = create_sandbox_app(
        {signer.key_id: signer.public_key()},
        rate_limit_tier=options.rate_limit,
        seed=options.seed,
    )
    upstream = await _start_exchange(upstream_app, options.port)
    try:
        config = with_upstream(config, upstream.url)
        proxy_app = create_app(config, signer)
        proxy = await start(
            proxy_app,
            config.listen.host,
            config.listen.port,
            limits=config.limits,
        )
    except BaseException:
        await upstream.runner.cleanup()
        raise

    def announce() -> None:
        get_logger().info(
            "sandbox_started",
            proxy=proxy.url,
            upstream=upstream.url,
            key_id=signer.key_id,
            fingerprint=signer.info.fingerprint,
            key_file=config.credentials.private_key_file,
            rate_limit=options.rate_limit or "off",
            seed=options.seed,
        )
        print(
            f"\nsigning-proxy sandbox: proxy on {proxy.url}, offline Kalshi-like upstream on "
            f"{upstream.url}\n(every request is signed with a throwaway key and verified "
            f"upstream)\n\ntry:\n  curl -s {proxy.url}/trade-api/v2/portfolio/balance\n"
            f"  curl -s '{proxy.url}/trade-api/v2/markets?limit=2'\n\nCtrl-C to stop.\n",
            flush=True,
        )

    lifecycle = proxy_app[LIFECYCLE]
    hooks = ServeHooks(
        announce=announce, stopping=lifecycle.start_draining, cut=lifecycle.start_cutting
    )
    try:
        # The proxy drains first, the same way `run` does, while its upstream still answers.
        await serve(proxy, config.shutdown_timeout, hooks)
    finally:
        async with asyncio.timeout(_EXCHANGE_STOP_SECONDS):
            await upstream.runner.cleanup()


async def _start_exchange(app: web.Application, port: int) -> Served:
    """The exchange on 127.0.0.1:`port`; a port it cannot have is the flag's error."""
    try:
        return await start(app, "127.0.0.1", port)
    except ConfigError as exc:
        reason = str(exc).partition(": ")[2] or str(exc)  # without start()'s "listen.port"
        raise ConfigError(f"sandbox --exchange-port: {reason}") from None
