"""Python load generator for bench/run.py, run as its own process; prints one JSON line.

http     keep-alive aiohttp client, fixed concurrency, for a duration (the fallback
         when wrk is not installed): a closed loop, each worker sends as soon as its
         previous answer arrived.
         With --rate R: paced, open loop. One keep-alive connection, request i is due at
         start + i/R whatever happened before; latency is measured from that scheduled
         time, so a slow answer also counts against the requests queued behind it
         (no coordinated omission). Service time (from the actual send) and send lag
         (actual send - scheduled) are reported too. Bounded by --duration (the
         schedule) and --max-requests, and stops sending at duration + 15 s.
oneshot  a new TCP connection per call (plus a full TLS handshake for https:// URLs,
         verified against --cafile, no session resumption), "Connection: close", the
         way curl or requests.get behave; raw asyncio streams, no client library
stream   one GET of a large body, read and discarded; bytes and MiB/s
idle     open N keep-alive connections, one request on each, then hold them idle;
         prints a READY line and waits for a line on stdin (or --hold seconds)
ws       one WebSocket session: p50/p99 round trip (ping-pong of one frame), echo
         frames/s with a bounded window of frames in flight, then server-push frames/s
         (the upstream sends a burst, like a market-data feed; the headline number)

Every loop is bounded by a duration and a count; every network wait has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from common import loop_factory
from fanout import run_fanout
from loadgen_http import run_http, run_http_paced, run_oneshot
from loadgen_streams import run_idle, run_stream, run_ws

# --- main -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command line of the load generator."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("http", "oneshot", "stream", "idle", "ws", "fanout"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument(
        "--rate",
        type=float,
        help="http: paced open loop at R requests/s on one keep-alive connection",
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="http --rate: unmeasured requests first"
    )
    parser.add_argument(
        "--samples", action="store_true", help="http --rate: print every latency too"
    )
    parser.add_argument("--cafile")
    parser.add_argument("--expect-bytes", type=int, default=0)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=30.0)
    parser.add_argument("--key-file")
    parser.add_argument("--key-id", default="")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--max-frames", type=int, default=5_000_000)
    parser.add_argument("--rtt-seconds", type=float, default=1.0)
    parser.add_argument("--echo-seconds", type=float, default=1.0)
    parser.add_argument("--feed-seconds", type=float, default=1.0)
    parser.add_argument("--rtt-count", type=int, default=5000)
    parser.add_argument("--feed-rate", type=int, default=1000, help="fanout: frames/s upstream")
    parser.add_argument("--feed-count", type=int, default=2000, help="fanout: frames upstream")
    parser.add_argument("--feed-delay-ms", type=int, default=1000, help="fanout: before the feed")
    parser.add_argument("--uvloop", action="store_true", help="use uvloop when installed")
    return parser


def main() -> int:
    """Run one mode and print its figures as one JSON line."""
    parser = build_parser()
    a = parser.parse_args()
    if a.rate is not None:
        if a.mode != "http":
            parser.error("--rate applies to the http mode only")
        if not 0 < a.rate <= 20_000 or not 0 < a.duration <= 600:
            parser.error("--rate must be in (0, 20000] and --duration in (0, 600]")
        result = run_http_paced(a)
        result["event_loop"] = "none (blocking client)"
        print(json.dumps(result), flush=True)
        return 0
    runner = {
        "http": run_http,
        "oneshot": run_oneshot,
        "stream": run_stream,
        "idle": run_idle,
        "ws": run_ws,
        "fanout": run_fanout,
    }[a.mode]
    factory = loop_factory(a.uvloop)
    with asyncio.Runner(loop_factory=factory) as r:
        result = r.run(runner(a))
    result["event_loop"] = "uvloop" if factory else "asyncio"
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
