"""``python -m bench.peers`` (``make bench-peers``): sqsx beside Celery, dramatiq, sqsx 0.7.0
and a minimal boto3 loop on one real local SQS server; prints the table and, unless
``--no-write``, refreshes the ``peers`` section of BENCHMARKS.md, bench/peers.json and
bench/peers.png (``--replot`` redraws those from bench/peers.json without running).

The peers' venvs are created in ``.venv-peers/`` on first use (a few minutes, PyPI).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from bench import report
from bench.peers import compare, servers
from bench.peers.contenders import CONTENDERS, ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--count", type=int, default=2000, help="tasks per run (default 2000)")
    parser.add_argument("--threads", type=int, default=10, help="threads (default 10)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    parser.add_argument(
        "--handler-ms", default="0,10", help="comma-separated handler times in ms (default 0,10)"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated runner keys: " + ", ".join(c.key for c in CONTENDERS),
    )
    parser.add_argument(
        "--server",
        choices=["localstack", "moto"],
        default=servers.default_kind(),
        help="the SQS server (default: LocalStack when .venv-localstack exists, else moto)",
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--replot", action="store_true")
    args = parser.parse_args(argv)
    path = Path(__file__).resolve().parents[1] / "peers.json"
    if args.replot:
        saved = json.loads(path.read_text())
        summaries = [compare.from_dict(item) for item in saved["summaries"]]
        _write(summaries, saved["where"], path)
        return 0
    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()
    summaries = compare.run_all(
        count=args.count,
        threads=args.threads,
        handler_ms=[float(ms) for ms in args.handler_ms.split(",")],
        rounds=args.rounds,
        only=[key for key in args.only.split(",") if key],
        server=args.server,
    )
    table = compare.markdown(summaries)
    where = (
        f"{args.count:,} tasks per run, {args.threads} threads, {args.rounds} interleaved "
        f"round(s), {args.server} in its own process. {report.machine(load_before)}"
    )
    print(f"\n{table}\n\n{where}")
    if not args.no_write:
        _write(summaries, where, path)
    return 0


def _write(summaries: list[compare.Summary], where: str, path: Path) -> None:
    results = {"where": where, "summaries": [compare.as_dict(s) for s in summaries]}
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    table = compare.markdown(summaries)
    report.write_section(ROOT / "BENCHMARKS.md", "peers", f"{table}\n\n{where}")
    compare.plot(summaries, path.with_suffix(".png"))


if __name__ == "__main__":
    raise SystemExit(main())
