"""``python -m bench`` (``make bench``): run every scenario and print one table.

Options:
    --quick       smaller queues and fewer repeats (a smoke run, minutes -> seconds)
    --only NAMES  comma-separated subset of polling, async, lambda, coldstart, payloads,
                  processes, caps, queues (print only)
    --no-write    print only: leave BENCHMARKS.md, bench/*.json and the PNG alone
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    boto3_cost,
    caps,
    coldstart,
    lambda_fanout,
    payloads,
    polling,
    processes,
    queues,
    report,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_PARTS = ("polling", "async", "lambda", "coldstart", "payloads", "processes", "caps", "queues")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(_PARTS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    if parts - set(_PARTS):
        parser.error(f"--only: unknown {sorted(parts - set(_PARTS))}; choose from {_PARTS}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    load_before = os.getloadavg()
    rows: list[report.Row] = []
    results: dict[str, Any] = {"quick": args.quick}
    for part in _PARTS:
        if part in parts:
            rows += _RUNNERS[part](args.quick, results)

    where = report.machine(load_before)
    if "boto3_cpu_ms_per_call" in results:
        cost = results["boto3_cpu_ms_per_call"]
        where += (
            f" boto3's own CPU per call, measured against moto: ReceiveMessage "
            f"{cost['receive_ms']:.2f} ms, DeleteMessageBatch {cost['delete_ms']:.2f} ms."
        )
    results["machine"] = where
    table = report.markdown(rows)
    if args.quick:
        where += " Quick run: short windows, figures not comparable with the targets."
    print(f"\n{table}\n\n{where}")
    partial = parts != set(_PARTS)
    if not (args.no_write or args.quick or partial):  # the files hold complete runs only
        _write(table, where, results)
    return 0


def _polling(quick: bool, results: dict[str, Any]) -> list[report.Row]:
    _progress("boto3's own CPU per call (against moto)")
    cost = boto3_cost.measure(20 if quick else 60)
    results["boto3_cpu_ms_per_call"] = cost.as_dict()
    polled = []
    for scenario in polling.scenarios(quick):
        _progress(scenario.name)
        polled.append(polling.run(scenario))
    results["polling"] = [r.as_dict() for r in polled]
    return [report.polling_row(result, cost.per_call_ms) for result in polled]


def _lambda(quick: bool, results: dict[str, Any]) -> list[report.Row]:
    _progress("lambda scenarios")
    lambdas = lambda_fanout.run_all(quick)
    results["lambda"] = [r.as_dict() for r in lambdas]
    return report.lambda_rows(lambdas)


def _coldstart(quick: bool, results: dict[str, Any]) -> list[report.Row]:
    _progress("cold start")
    imports = coldstart.run_all(quick)
    results["coldstart"] = [r.as_dict() for r in imports]
    return report.import_rows(imports)


def _payloads(quick: bool, results: dict[str, Any]) -> list[report.Row]:
    _progress("large payloads through S3 (moto)")
    big = payloads.run_all(quick)
    results["payloads"] = [r.as_dict() for r in big]
    return payloads.rows(big)


def _async(quick: bool, results: dict[str, Any]) -> list[report.Row]:
    coroutines: list[polling.PollingResult] = []
    for scenario in polling.async_scenarios(quick):
        _progress(scenario.name)
        coroutines.append(polling.run(scenario))
    results["async"] = [r.as_dict() for r in coroutines]
    return [report.polling_row(result) for result in coroutines]


def _queues(quick: bool, results: dict[str, Any]) -> list[report.Row]:
    _progress("many queues, one worker: shares and a quiet queue's latency")
    shared = queues.run(queues.QueuesScenario(seconds=2.0 if quick else 4.0))
    results["queues"] = shared.as_dict()
    return [queues.row(shared)]


def _caps(quick: bool, results: dict[str, Any]) -> list[report.Row]:
    capped = []
    for scenario in caps.scenarios(quick):
        _progress(f"concurrency caps: {scenario.name}")
        capped.append(caps.run(scenario))
    results["caps"] = [result.as_dict() for result in capped]
    return [caps.row(result) for result in capped]


def _processes(quick: bool, results: dict[str, Any]) -> list[report.Row]:
    _progress("CPU-bound handlers: --processes 2 against --processes 1")
    scenario = processes.ProcessesScenario(tasks=400, repeats=1) if quick else None
    result = processes.run(scenario or processes.ProcessesScenario())
    results["processes"] = result.as_dict()
    return [processes.row(result)]


#: Each part of the benchmark: ``fn(quick, results) -> rows`` (adding its figures to
#: ``results``).
_RUNNERS: dict[str, Callable[[bool, dict[str, Any]], list[report.Row]]] = {
    "polling": _polling,
    "async": _async,
    "lambda": _lambda,
    "coldstart": _coldstart,
    "payloads": _payloads,
    "processes": _processes,
    "caps": _caps,
    "queues": _queues,
}


def _progress(what: str) -> None:
    print(f"... {what}", file=sys.stderr, flush=True)


def _write(table: str, where: str, results: dict[str, Any]) -> None:
    (HERE / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    report.write_section(ROOT / "BENCHMARKS.md", "results", f"{table}\n\n{where}")
    shipped = _load_polling(HERE / "results.json")
    if shipped:
        report.plot(shipped, HERE / "throughput.png")


def _load_polling(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [_Saved(item) for item in json.loads(path.read_text()).get("polling", [])]


class _Saved:
    """A polling result read back from JSON, with what the plot needs."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.scenario = polling.PollingScenario(**item["scenario"])
        self.rate = float(item["rate"])
        self.bound = float(item["bound"])


if __name__ == "__main__":
    raise SystemExit(main())
