"""Command line: parse the arguments and dispatch run, check, sandbox, init and the
operator's halt, resume, status and journal; exit 0, 1 when the proxy refused or could not be
reached, or 2 on a configuration error (one line on stderr)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from signing_proxy import __version__
from signing_proxy.config import Config, ListenConfig, Overrides, flag_keys, load_config
from signing_proxy.errors import ConfigError
from signing_proxy.kalshi.signer import Signer, load_signer
from signing_proxy.ops import admin_client, init, online_check
from signing_proxy.ops.logging import SecretRedactor, configure_logging
from signing_proxy.ops.run import run_proxy
from signing_proxy.ops.server import run_event_loop

EXIT_OK = 0
EXIT_FAILED = 1
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
    _add_run_flags(run)
    run.set_defaults(func=_run)

    check = commands.add_parser(
        "check",
        help="validate the configuration and key, then exit",
        description="Validate the configuration and key as `run` would, then exit; with "
        "--online also ask Kalshi whether it accepts the key.",
        epilog=online_check.EXIT_CODES_HELP,
    )
    _add_run_flags(check)
    check.add_argument(
        "--online",
        action="store_true",
        help="also make signed calls (exchange/status, portfolio/balance, account/limits): "
        "is the key accepted, which host answered, the clock offset, the rate-limit tier",
    )
    check.set_defaults(func=_check)

    sandbox = commands.add_parser(
        "sandbox", help="offline: a throwaway key, a local Kalshi-like upstream, the proxy"
    )
    sandbox.add_argument("--host", default=ListenConfig().host, help="address of the proxy")
    # Checked by the sandbox, so that a bad value is one line and exit 2.
    sandbox.add_argument("--port", default=ListenConfig().port, help="port of the proxy")
    sandbox.add_argument(
        "--rate-limit",
        metavar="TIER",
        help="answer 429 past Kalshi's rate limits of TIER (basic, advanced, premier, "
        "paragon, prime), as Kalshi does; off by default",
    )
    sandbox.add_argument(
        "--seed", metavar="N", help="seed the market makers and ids, so runs repeat"
    )
    sandbox.add_argument(
        "--exchange-port",
        metavar="P",
        help="port of the offline exchange on 127.0.0.1 (default: any free port)",
    )
    sandbox.set_defaults(func=_sandbox)
    _add_init_command(commands)
    _add_admin_commands(commands)
    return parser


def _add_init_command(commands: Any) -> None:
    """init: a commented starter config, and optionally a fresh key pair."""
    parser = commands.add_parser(
        "init", help="write a commented starter config (and optionally a new key pair)"
    )
    parser.add_argument(
        "path", nargs="?", default=init.DEFAULT_CONFIG, help=f"config file ({init.DEFAULT_CONFIG})"
    )
    parser.add_argument(
        "--new-key",
        action="store_true",
        help="also write a fresh RSA-2048 key pair, for Kalshi's upload-your-public-key flow",
    )
    parser.add_argument(
        "--key-file",
        metavar="FILE",
        help=f"where --new-key writes the private key ({init.DEFAULT_KEY} beside the config); "
        "the public key goes beside it as NAME.pub.pem",
    )
    parser.add_argument("--force", action="store_true", help="replace files that exist")
    parser.add_argument(
        "--print", action="store_true", help="print the starter config to stdout; write nothing"
    )
    parser.set_defaults(func=_init)


def _add_admin_commands(commands: Any) -> None:
    """halt, resume, status and journal: the operator's commands."""
    halt = commands.add_parser("halt", help="stop order entry on the running proxy")
    _add_admin_flags(halt)
    halt.add_argument("--cancel-orders", action="store_true", help="also cancel the resting orders")
    halt.add_argument("--client", metavar="NAME", help="halt one client (token name) only")
    halt.add_argument("--reason", metavar="TEXT", help="why (shown in status and refusals)")
    halt.set_defaults(func=_halt)
    resume = commands.add_parser("resume", help="lift the halt on the running proxy")
    _add_admin_flags(resume)
    resume.add_argument("--client", metavar="NAME", help="lift one client's halt only")
    resume.set_defaults(func=_resume)
    status = commands.add_parser("status", help="halts, clients and the journal of the proxy")
    _add_admin_flags(status)
    status.set_defaults(func=_status)
    journal = commands.add_parser("journal", help="print the order journal")
    _add_config_flag(journal)
    journal.add_argument("--since", metavar="T", help="from T: ISO time, or 15m, 2h, 1d back")
    journal.add_argument("--client", metavar="NAME", help="one client's calls only")
    journal.add_argument("--limit", type=int, default=1000, help="the newest N rows (1000)")
    journal.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    journal.set_defaults(func=_journal)


def _add_admin_flags(parser: argparse.ArgumentParser) -> None:
    _add_config_flag(parser)
    parser.add_argument(
        "--url", metavar="URL", help="the proxy's address (default: the config's listen)"
    )


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    """--config and the model's flags (--env, --upstream, --host, --port), as `run` takes them."""
    _add_config_flag(parser)
    for key in flag_keys():
        # The model parses and checks the value, so a bad one is one line and exit 2.
        parser.add_argument(f"--{key.setting.flag}", help=f"{key.setting.doc} ({key.dotted})")


def _add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="YAML configuration (default: $SIGNING_PROXY_CONFIG)"
    )


def _load(args: argparse.Namespace) -> tuple[Config, Signer]:
    # Commands with no flags but --config (journal, halt...): every flag is then None.
    flags = {
        str(key.setting.flag): getattr(args, str(key.setting.flag), None) for key in flag_keys()
    }
    overrides = Overrides(**flags)
    config = load_config(args.config, os.environ, overrides)
    return config, load_signer(config.credentials)


def _check(args: argparse.Namespace) -> int:
    config, signer = _load(args)
    report = online_check.offline_facts(config, signer)
    for warning in signer.warnings:
        print(f"signing-proxy: warning: {warning}", file=sys.stderr)
    if args.online:
        report = online_check.check_online(config, signer, report)
    print(report.render(), end="")
    if report.failure is not None:
        print(f"signing-proxy: {report.failure}", file=sys.stderr)
        return report.exit_code
    print("configuration OK" + (", key accepted by the upstream" if args.online else ""))
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    if args.print:
        if args.new_key or args.key_file or args.force:
            raise ConfigError("init: --print writes nothing; drop --new-key, --key-file, --force")
        sys.stdout.write(init.example_text())
        return EXIT_OK
    if args.key_file and not args.new_key:
        raise ConfigError("init: --key-file names where --new-key writes; add --new-key")
    config = Path(args.path).expanduser()
    request = init.InitRequest(
        config=config,
        new_key=args.new_key,
        key_file=Path(args.key_file).expanduser() if args.key_file else None,
        force=args.force,
    )
    for line in init.report(init.initialise(request), config):
        print(line)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    config, signer = _load(args)
    redactor = SecretRedactor(config.secret_values())
    configure_logging(config.logging, redactor)
    run_event_loop(run_proxy(config, signer, redactor, lambda: _load(args)))
    return EXIT_OK


def _admin(args: argparse.Namespace, method: str, path: str, body: Any = None) -> int:
    """One admin call to the running proxy; its JSON answer printed, exit 1 if it failed."""
    config = load_config(args.config, os.environ, Overrides())
    try:
        answer = admin_client.call(config, args.url, method, path, body)
    except admin_client.AdminCallFailed as exc:
        print(f"signing-proxy: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(answer, indent=2))
    return EXIT_OK


def _halt(args: argparse.Namespace) -> int:
    body = {"cancel_orders": args.cancel_orders, "client": args.client, "reason": args.reason}
    return _admin(args, "POST", "halt", body)


def _resume(args: argparse.Namespace) -> int:
    return _admin(args, "POST", "resume", {"client": args.client})


def _status(args: argparse.Namespace) -> int:
    return _admin(args, "GET", "status")


def _journal(args: argparse.Namespace) -> int:
    config = load_config(args.config, os.environ, Overrides())
    since = admin_client.since_value(args.since)
    rows = admin_client.journal_rows(config, since, args.client, max(1, args.limit))
    admin_client.print_rows(rows, args.json)
    return EXIT_OK


def _sandbox(args: argparse.Namespace) -> int:
    from signing_proxy.sandbox.runner import run_sandbox  # the sandbox is not needed by `run`

    return run_sandbox(
        args.host,
        args.port,
        rate_limit=args.rate_limit,
        seed=args.seed,
        exchange_port=args.exchange_port,
    )
