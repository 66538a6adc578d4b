"""The one table ``make bench`` prints, its targets and verdicts, the plot, BENCHMARKS.md."""

from __future__ import annotations

import datetime
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.coldstart import ImportResult
from bench.lambda_fanout import LambdaResult
from bench.polling import PollingResult

MAX_CALLS_PER_1000 = 210
#: threads -> the least share of the bound a 10 ms handler must keep.
_BOUND_GOALS = {1: 0.95, 10: 0.95, 32: 0.90}
MIN_ASYNC_RATIO = 0.80  # 1,000 sleeping coroutines
MAX_IMPORT_MS = 50.0
_OPS = {
    "ReceiveMessage": "R",
    "DeleteMessageBatch": "D",
    "ChangeMessageVisibilityBatch": "V",
    "GetQueueAttributes": "A",
}


@dataclass(frozen=True)
class Row:
    """One line of the table; ``target`` empty when no target applies."""

    scenario: str
    measured: str
    reference: str
    calls: str
    cpu: str
    integrity: str
    target: str
    verdict: str

    @property
    def met(self) -> bool | None:
        if not self.target:
            return None
        return self.verdict == "met"


HEADER = (
    "Scenario",
    "Measured",
    "Against",
    "SQS calls / 1k msgs",
    "Client CPU s / 1k",
    "Lost / dup",
    "Target",
    "Verdict",
)


def _verdict(checks: Sequence[tuple[bool, str]]) -> str:
    missed = [why for ok, why in checks if not ok]
    return "met" if not missed else "MISSED: " + "; ".join(missed)


def polling_row(result: PollingResult, boto3_ms_per_call: float | None = None) -> Row:
    """A polling result; ``boto3_ms_per_call`` adds boto3's own CPU per call, estimated."""
    scenario = result.scenario
    calls = result.calls_per_1000
    ordered = sorted(
        calls.items(), key=lambda item: list(_OPS).index(item[0]) if item[0] in _OPS else 9
    )
    spelled = " ".join(
        f"{_OPS.get(op, op)} {n:.0f}" if n >= 10 else f"{_OPS.get(op, op)} {n:.1f}"
        for op, n in ordered
    )
    cpu = f"{result.cpu_per_1000:.3f}"
    if boto3_ms_per_call is not None:
        extra = result.total_calls_per_1000 * boto3_ms_per_call / 1000
        cpu += f" (+{extra:.2f} boto3)"
    checks = [
        (
            result.total_calls_per_1000 <= MAX_CALLS_PER_1000,
            f"{result.total_calls_per_1000:.0f} calls/1k",
        )
    ]
    target = f"<= {MAX_CALLS_PER_1000} calls/1k"
    least = _BOUND_GOALS.get(scenario.threads) if scenario.handler_ms == 10 else None
    if scenario.coroutines:
        least = MIN_ASYNC_RATIO
    if least is not None:
        checks.append((result.ratio >= least, f"{result.ratio:.0%} of bound"))
        target = f">= {least:.0%} of bound; " + target
    checks.append((result.lost == 0 and result.duplicates == 0, "lost or duplicate messages"))
    checks.append((not result.error, f"run failed ({result.error})"))
    return Row(
        scenario=scenario.name,
        measured=f"{result.rate:,.0f} msg/s ({result.processed:,} msgs)",
        reference=f"{result.ratio:.0%} of {result.bound:,.0f}/s "
        f"({scenario.bound_kind_for(result.receivers)}"
        + (
            f", {result.receivers} receiver{'s' * (result.receivers != 1)})"
            if not scenario.handler_ms or scenario.coroutines
            else ")"
        ),
        calls=f"{result.total_calls_per_1000:.0f} ({spelled})",
        cpu=cpu,
        integrity=f"{result.lost} / {result.duplicates}"
        + (f" ({result.unacked:,} handled, not deleted)" if result.unacked else ""),
        target=target,
        verdict=_verdict(checks),
    )


#: (records, handler ms) -> the most sqsx's time may be of Powertools' in the same run:
#: no more for no-op handlers, 5x faster with 1 ms ones at 100 records, 9x with 100 ms
#: ones at 10 records.
_LAMBDA_GOALS = {(10, 0.0): 1.0, (100, 0.0): 1.0, (100, 1.0): 0.2, (10, 100.0): 1 / 9}


def lambda_rows(results: Sequence[LambdaResult]) -> list[Row]:
    powertools = {
        (r.scenario.records, r.scenario.handler_ms): r
        for r in results
        if r.scenario.runner == "powertools"
    }
    rows = []
    for result in results:
        s = result.scenario
        target, checks = "", []
        incumbent = powertools.get((s.records, s.handler_ms))
        reference = ""
        if s.runner == "sqsx" and incumbent is not None:
            ratio = result.ms_per_invocation / incumbent.ms_per_invocation
            reference = f"Powertools {incumbent.ms_per_invocation:,.2f} ms; sqsx/PT {ratio:.2f}"
            # the Lambda targets, at the default thread count (issue "Performance")
            goal = _LAMBDA_GOALS.get((s.records, s.handler_ms)) if not s.threads else None
            if goal is not None:
                target = f"sqsx/PT <= {goal:.2f}"
                checks = [(ratio <= goal, f"sqsx/PT {ratio:.2f}")]
        rows.append(
            Row(
                scenario=s.name,
                measured=f"{result.ms_per_invocation:,.2f} ms/inv, "
                f"{result.us_per_record:,.1f} us/record",
                reference=reference,
                calls="",
                cpu="",
                integrity=f"{result.failures} failed" if result.failures else "",
                target=target,
                verdict=_verdict(checks) if target else "",
            )
        )
    return rows


def import_rows(results: Sequence[ImportResult]) -> list[Row]:
    rows = []
    for result in results:
        target, verdict = "", ""
        if result.module == "sqsx_lambda":
            target = f"<= {MAX_IMPORT_MS:.0f} ms beyond boto3"
            verdict = _verdict([(result.ms <= MAX_IMPORT_MS, f"{result.ms:.1f} ms")])
        rows.append(
            Row(
                scenario=f"cold start: {result.name}",
                measured=f"{result.ms:.1f} ms (median of {len(result.runs)})",
                reference="",
                calls="",
                cpu="",
                integrity="",
                target=target,
                verdict=verdict,
            )
        )
    return rows


def markdown(rows: Sequence[Row]) -> str:
    """The table as GitHub markdown (also what the terminal shows)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        cells = (
            row.scenario,
            row.measured,
            row.reference,
            row.calls,
            row.cpu,
            row.integrity,
            row.target,
            row.verdict,
        )
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    judged = [row.met for row in rows if row.met is not None]
    lines.append("")
    lines.append(f"Targets: {sum(judged)} met, {len(judged) - sum(judged)} missed.")
    return "\n".join(lines)


def machine(load_before: tuple[float, float, float]) -> str:
    """Where and when the figures were taken."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load_after = os.getloadavg()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{now}; {cpu}, {os.cpu_count()} CPUs; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}. Load average (1 min) {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after."
    )


def plot(results: Sequence[PollingResult], path: Path) -> None:
    """Throughput against threads, ours beside the bound, one panel per handler time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = sorted({r.scenario.handler_ms for r in results}, reverse=True)
    figure, axes = plt.subplots(1, len(times), figsize=(5.5 * len(times), 4.2), squeeze=False)
    for axis, handler_ms in zip(axes[0], times, strict=True):
        mine = sorted(
            (r for r in results if r.scenario.handler_ms == handler_ms),
            key=lambda r: r.scenario.threads,
        )
        threads = [r.scenario.threads for r in mine]
        axis.plot(threads, [r.bound for r in mine], "k--", marker="o", label="bound")
        axis.plot(threads, [r.rate for r in mine], marker="s", label="sqsx")
        kind = mine[0].scenario.bound_kind if mine else ""
        axis.set_title(f"handler {handler_ms:g} ms (bound: {kind})")
        axis.set_xlabel("handler threads")
        axis.set_ylabel("messages per second")
        axis.set_xticks(threads)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("Polling worker on a simulated SQS (10 ms per call), max_messages=10")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_section(path: Path, name: str, body: str) -> None:
    """Replace what lies between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``."""
    text = path.read_text()
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{path} has no {start} ... {end} section")
    path.write_text(pattern.sub(lambda _: f"{start}\n{body}\n{end}", text))
