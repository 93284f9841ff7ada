"""`signing-proxy run`: serve the proxy, reload on SIGHUP, stop within shutdown_timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from signing_proxy.config import Config, check_bind, is_loopback_host, settings_needing_restart
from signing_proxy.errors import ConfigError
from signing_proxy.kalshi.signer import Signer
from signing_proxy.ops.logging import SecretRedactor, get_logger
from signing_proxy.ops.server import ServeHooks, serve, start
from signing_proxy.proxy.app import FORWARDER, GATE, LIFECYCLE, LIVE, METRICS, create_app
from signing_proxy.proxy.limits_source import learn_limits
from signing_proxy.proxy.live import make_snapshot

# Reads the configuration and the key again, as at start (raises ConfigError).
Loader = Callable[[], tuple[Config, Signer]]


async def run_proxy(config: Config, signer: Signer, redactor: SecretRedactor, load: Loader) -> None:
    """Serve the proxy until SIGTERM or SIGINT; SIGHUP reloads with `load`."""
    app = create_app(config, signer)
    served = await start(
        app,
        config.listen.host,
        config.listen.port,
        shutdown_timeout=config.shutdown_timeout,
        limits=config.limits,
    )
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[None]] = set()

    def on_sighup() -> None:
        task = loop.create_task(_reload(load, app, redactor, served.host))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    def announce() -> None:
        log = get_logger()
        log.info(
            "started",
            listen=served.url,
            upstream=config.upstream.rest_url,
            environment=config.environment,
            key_id=signer.key_id,
            fingerprint=signer.info.fingerprint,
        )
        _warn_about_key(signer)
        if config.access.allow_unauthenticated_remote and not is_loopback_host(config.listen.host):
            log.warning(
                "unauthenticated_remote_access",
                listen=served.url,
                message="anyone who can reach this address can trade with this key "
                "(access.allow_unauthenticated_remote is true)",
            )

    lifecycle = app[LIFECYCLE]
    hooks = ServeHooks(
        announce=announce,
        stopping=lifecycle.start_draining,
        cut=lifecycle.start_cutting,
        reload=on_sighup,
    )
    await serve(served, config.shutdown_timeout, hooks)


async def _reload(
    load: Loader, app: web.Application, redactor: SecretRedactor, bound_host: str
) -> None:
    """Re-read configuration and key; swap them in atomically, or keep the old on error."""
    log = get_logger()
    live = app[LIVE]
    try:
        # Reading files and parsing the key stay off the event loop.
        config, signer = await asyncio.to_thread(load)
        _check_bound_socket(bound_host, config)
    except ConfigError as exc:
        app[METRICS].reloads.labels(result="failed").inc()
        log.error("reload_failed", error=str(exc), kept_generation=live.generation)
        return
    old = live.current.config
    needs_restart = settings_needing_restart(old, config)
    if needs_restart:
        log.warning(
            "reload_needs_restart",
            settings=", ".join(needs_restart),
            message="these settings take effect at the next start",
        )
    # Redact the new secrets before any event could mention them.
    redactor.update((*config.secret_values(), *old.secret_values()))
    live.swap(make_snapshot(config, signer, live.current))
    app[GATE].configure(config.access.tokens)
    redactor.update(config.secret_values())
    # Kalshi's limits may have changed too (a tier is lowered after inactivity).
    await learn_limits(app[FORWARDER], live)
    app[METRICS].reloads.labels(result="ok").inc()
    log.info(
        "reloaded",
        generation=live.generation,
        key_id=signer.key_id,
        fingerprint=signer.info.fingerprint,
        upstream=config.upstream.rest_url,
    )
    _warn_about_key(signer)


def _warn_about_key(signer: Signer) -> None:
    """One warning event per likely mistake in the key (a non-UUID key id, a short key...)."""
    for warning in signer.warnings:
        get_logger().warning("key_warning", message=warning)


def _check_bound_socket(bound_host: str, config: Config) -> None:
    # The socket stays where it was bound at start (listen changes need a restart), so the
    # new access settings must protect that address, not the one the new file names.
    try:
        check_bind(bound_host, config.access)
    except ConfigError:
        raise ConfigError(
            f"access.tokens: the new configuration has none, but the proxy stays bound to "
            f"{bound_host} (not loopback) until a restart; keep an inbound token, or set "
            "access.allow_unauthenticated_remote: true on a private network"
        ) from None
