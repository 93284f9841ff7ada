"""Command line: run, check, sandbox; exit 0 on a normal stop, 2 on a configuration error."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from aiohttp import web

from signing_proxy import __version__
from signing_proxy.config import (
    Config,
    Overrides,
    check_bind,
    is_loopback_host,
    load_config,
    settings_needing_restart,
)
from signing_proxy.errors import ConfigError
from signing_proxy.kalshi.signer import Signer, load_signer
from signing_proxy.ops.logging import SecretRedactor, configure_logging, get_logger
from signing_proxy.ops.server import (
    ServeHooks,
    run_event_loop,
    serve,
    start,
)
from signing_proxy.proxy.app import LIFECYCLE, LIVE, METRICS, create_app
from signing_proxy.proxy.live import make_snapshot

EXIT_OK = 0
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `signing-proxy` command."""
    args = _parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"signing-proxy: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signing-proxy",
        description="Local reverse proxy that signs Kalshi Trade API v2 requests.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="sign and forward requests")
    _add_config_flag(run)
    run.add_argument("--host", help="address to listen on (listen.host)")
    run.add_argument("--port", type=int, help="port to listen on (listen.port)")
    run.add_argument("--env", choices=("demo", "production"), help="Kalshi environment")
    run.add_argument("--upstream", help="upstream REST URL (upstream.rest_url)")
    run.set_defaults(func=_run)

    check = commands.add_parser("check", help="validate the configuration and key, then exit")
    _add_config_flag(check)
    check.set_defaults(func=_check)

    sandbox = commands.add_parser(
        "sandbox", help="offline: a throwaway key, a local Kalshi-like upstream, the proxy"
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address of the proxy")
    sandbox.add_argument("--port", type=int, default=8080, help="port of the proxy")
    sandbox.set_defaults(func=_sandbox)
    return parser


def _add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="YAML configuration (default: $SIGNING_PROXY_CONFIG)"
    )


def _load(args: argparse.Namespace) -> tuple[Config, Signer]:
    overrides = Overrides(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        environment=getattr(args, "env", None),
        upstream=getattr(args, "upstream", None),
    )
    config = load_config(args.config, os.environ, overrides)
    return config, load_signer(config.credentials)


def _check(args: argparse.Namespace) -> int:
    config, signer = _load(args)
    info = signer.info
    print(f"key:         {info.key_type} {info.key_size} bits")
    print(f"fingerprint: {info.fingerprint}")
    print(f"key id:      {signer.key_id}")
    print(f"environment: {config.environment}")
    print(f"rest url:    {config.upstream.rest_url}")
    print(f"ws url:      {config.upstream.ws_url}")
    print(f"listen:      {config.listen.host}:{config.listen.port}")
    print("configuration OK")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    config, signer = _load(args)
    redactor = SecretRedactor(config.secret_values())
    configure_logging(config.logging, redactor)
    run_event_loop(_serve(args, config, signer, redactor))
    return EXIT_OK


async def _serve(
    args: argparse.Namespace, config: Config, signer: Signer, redactor: SecretRedactor
) -> None:
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
        task = loop.create_task(_reload(args, app, redactor, served.host))
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
    args: argparse.Namespace, app: web.Application, redactor: SecretRedactor, bound_host: str
) -> None:
    """Re-read configuration and key; swap them in atomically, or keep the old on error."""
    log = get_logger()
    live = app[LIVE]
    try:
        # Reading files and parsing the key stay off the event loop.
        config, signer = await asyncio.to_thread(_load, args)
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
    redactor.update(config.secret_values())
    app[METRICS].reloads.labels(result="ok").inc()
    log.info(
        "reloaded",
        generation=live.generation,
        key_id=signer.key_id,
        fingerprint=signer.info.fingerprint,
        upstream=config.upstream.rest_url,
    )


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


def _sandbox(args: argparse.Namespace) -> int:
    from signing_proxy.sandbox.runner import run_sandbox  # the sandbox is not needed by `run`

    return run_sandbox(args.host, args.port)
