"""``python -m bench`` (``make bench``): run every scenario and print one table.

Options:
    --quick       smaller queues and fewer repeats (a smoke run, minutes -> seconds)
    --only NAMES  comma-separated subset of polling, async, lambda, coldstart, payloads,
                  processes (print only)
    --no-write    print only: leave BENCHMARKS.md, bench/*.json and the PNG alone
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from bench import boto3_cost, coldstart, lambda_fanout, payloads, polling, processes, report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_PARTS = ("polling", "async", "lambda", "coldstart", "payloads", "processes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(_PARTS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    load_before = os.getloadavg()
    rows: list[report.Row] = []
    results: dict[str, Any] = {"quick": args.quick}
    polled: list[polling.PollingResult] = []
    if "polling" in parts:
        _progress("boto3's own CPU per call (against moto)")
        cost = boto3_cost.measure(20 if args.quick else 60)
        results["boto3_cpu_ms_per_call"] = cost.as_dict()
        for scenario in polling.scenarios(args.quick):
            _progress(scenario.name)
            result = polling.run(scenario)
            polled.append(result)
            rows.append(report.polling_row(result, cost.per_call_ms))
        results["polling"] = [r.as_dict() for r in polled]
    if "async" in parts:
        coroutines: list[polling.PollingResult] = []
        for scenario in polling.async_scenarios(args.quick):
            _progress(scenario.name)
            coroutines.append(polling.run(scenario))
            rows.append(report.polling_row(coroutines[-1]))
        results["async"] = [r.as_dict() for r in coroutines]
    if "lambda" in parts:
        _progress("lambda scenarios")
        lambdas = lambda_fanout.run_all(args.quick)
        rows += report.lambda_rows(lambdas)
        results["lambda"] = [r.as_dict() for r in lambdas]
    if "coldstart" in parts:
        _progress("cold start")
        imports = coldstart.run_all(args.quick)
        rows += report.import_rows(imports)
        results["coldstart"] = [r.as_dict() for r in imports]

    if "payloads" in parts:
        _progress("large payloads through S3 (moto)")
        big = payloads.run_all(args.quick)
        rows += payloads.rows(big)
        results["payloads"] = [r.as_dict() for r in big]
    if "processes" in parts:
        rows.append(_processes(args.quick, results))

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


def _processes(quick: bool, results: dict[str, Any]) -> report.Row:
    _progress("CPU-bound handlers: --processes 2 against --processes 1")
    scenario = processes.ProcessesScenario(tasks=400, repeats=1) if quick else None
    result = processes.run(scenario or processes.ProcessesScenario())
    results["processes"] = result.as_dict()
    return processes.row(result)


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
