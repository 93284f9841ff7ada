#!/usr/bin/env python3
"""signing-proxy benchmark harness (issue 7): one command, one table.

    /work/venv/bin/python bench/run.py [--quick] [--save [PATH]]

Starts local upstreams (bench/upstream.py), the proxy (`signing-proxy run` with a throwaway
0600 key whose public half the upstreams verify), and a load generator (wrk, installed from
Debian's packages when missing, else bench/loadgen.py), measures each scenario, and prints
one table with PASS/FAIL lines for the targets of issues 7 and 15. Results go to
bench/results/latest.json (and --save PATH), a chart to bench/results/latest.png when
matplotlib is importable. See bench/README.md.

Only 127.0.0.1 is ever contacted. Every child process is stopped on exit.
"""

from __future__ import annotations

import argparse
import sys

from common import RESULTS
from harness import run
from processes import handle_signals, raise_nofile_limit, stop_all
from report import chart, render, save


def build_parser() -> argparse.ArgumentParser:
    """The command line of the harness."""
    parser = argparse.ArgumentParser(description="signing-proxy benchmark harness (issue 7)")
    parser.add_argument("--quick", action="store_true", help="about 2 s per scenario")
    parser.add_argument("--duration", type=float, help="seconds per scenario (default 5, quick 2)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="keep-alive load generator (auto: wrk, installed when missing; else python)",
    )
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 16, 64],
        help="keep-alive concurrencies (default 1,16,64)",
    )
    parser.add_argument(
        "--paced-rate",
        type=float,
        default=100.0,
        help="req/s of the open-loop c=1 latency scenarios (default 100)",
    )
    parser.add_argument(
        "--paced-rounds",
        type=int,
        default=5,
        help="the paced POST rows that are compared (direct, anchors, proxies) run in turn, "
        "this many rounds of --duration/N s each, their samples merged (default 5)",
    )
    parser.add_argument(
        "--verify-every",
        type=int,
        default=1,
        help="the fast upstream verifies 1 signed request in N (1 = all, 0 = none)",
    )
    parser.add_argument("--stream-mib", type=int, default=200)
    parser.add_argument("--idle-connections", type=int, default=1000)
    parser.add_argument(
        "--proxy-log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    parser.add_argument(
        "--no-uvloop",
        action="store_true",
        help="run the upstreams and the Python load generator on asyncio's loop",
    )
    parser.add_argument(
        "--only",
        help="comma list of groups: keepalive,paced,gateway,stream,idle,ws,oneshot,sandbox "
        "(all by default), fanout",
    )
    parser.add_argument(
        "--save",
        nargs="?",
        const="",
        metavar="PATH",
        help="also write the JSON here (default bench/results/YYYY-MM-DD.json)",
    )
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--keep-tmp", action="store_true", help="keep keys and logs for a look")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The arguments, checked, with the duration per scenario filled in."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    if args.duration <= 0 or args.duration > 120:
        parser.error("--duration must be in (0, 120]")
    if not 1 <= args.paced_rounds <= 50:
        parser.error("--paced-rounds must be in [1, 50]")
    if not 1 <= args.paced_rate <= 5000:
        parser.error("--paced-rate must be in [1, 5000]")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, save the results and the chart."""
    args = parse_args(argv)
    handle_signals()
    raise_nofile_limit(args.idle_connections * 2 + 256)

    try:
        report = run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; child processes stopped", file=sys.stderr)
        return 130
    finally:
        stop_all()
    latest, saved = save(report, args.save)
    print()
    print(render(report))
    print()
    print(f"results: {latest}" + (f" and {saved}" if saved else ""))
    if not args.no_chart:
        print(chart(report, RESULTS / "latest.png"))
        if saved:
            chart(report, saved.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
