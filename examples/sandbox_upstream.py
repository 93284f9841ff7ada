"""Serve signing-proxy's offline Kalshi-like upstream alone, for a container beside the proxy.

`signing-proxy sandbox` runs the proxy and this upstream in one process with a throwaway
key. In docker compose they are two services instead: this one verifies signatures
with the PUBLIC key only, and the proxy (SIGNING_PROXY_UPSTREAM=http://sandbox:8081)
holds the private key.

    python3 sandbox_upstream.py [--host 0.0.0.0] [--port 8081]
        [--key-id ID (default $KALSHI_API_KEY_ID)]
        [--public-key-file PEM (default $SANDBOX_PUBLIC_KEY_FILE or
                                /run/secrets/kalshi_public_key)]

It prints "sandbox upstream listening on http://HOST:PORT" once it accepts connections
(PORT is the real one when --port 0) and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from signing_proxy.sandbox import create_sandbox_app

DEFAULT_PUBLIC_KEY_FILE = "/run/secrets/kalshi_public_key"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with defaults from the environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--key-id", default=os.environ.get("KALSHI_API_KEY_ID"))
    parser.add_argument(
        "--public-key-file",
        default=os.environ.get("SANDBOX_PUBLIC_KEY_FILE") or DEFAULT_PUBLIC_KEY_FILE,
    )
    args = parser.parse_args(argv)
    if not args.key_id:
        parser.error("give --key-id or set KALSHI_API_KEY_ID")
    return args


def load_public_key(path: str) -> RSAPublicKey:
    """The RSA public key in the PEM file at `path`."""
    key = load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, RSAPublicKey):
        raise SystemExit(f"{path}: not an RSA public key")
    return key


async def serve(host: str, port: int, key_id: str, public_key: RSAPublicKey) -> None:
    """Serve the sandbox until SIGTERM or SIGINT."""
    runner = web.AppRunner(create_sandbox_app({key_id: public_key}), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        print(f"sandbox upstream listening on http://{bound_host}:{bound_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    try:
        public_key = load_public_key(args.public_key_file)
    except (OSError, ValueError) as exc:
        print(f"sandbox_upstream: {args.public_key_file}: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(args.host, args.port, args.key_id, public_key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
