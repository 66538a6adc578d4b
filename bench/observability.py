"""Observability overhead: metrics and tracing off vs on, interleaved in one run.

``python -m bench.observability`` (``--quick`` for a smoke run, ``--only polling|lambda``).
On the simulated SQS:

- the polling worker at 10 threads (10 ms and no-op handlers), without hooks and with
  ``PrometheusMetrics`` + ``Tracing`` (an OpenTelemetry SDK provider sampling every span,
  a ``BatchSpanProcessor`` and an exporter that drops what it gets), as a ratio of the
  scenario's bound;
- ``LambdaHandler`` on a 100-record no-op event whose records carry a ``traceparent``,
  inline and at 10 threads, without and with
  ``metrics=Metrics(...)`` (EMF, printed to /dev/null), ``tracing=True`` with the API's
  no-op provider and with the SDK, and both: CPU microseconds per record, and the difference.

Runs alternate off / on so that load from elsewhere on the machine hits both alike. The
simulator's client is not a botocore client, so ``instrument_client`` (one botocore event
handler per SQS call, about 0.1 call per message) is not part of the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import lambda_fanout, polling


def _tracer_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    return provider


def _hooks() -> list[Any]:
    from prometheus_client import CollectorRegistry

    from sqsx.metrics import PrometheusMetrics
    from sqsx.tracing import Tracing

    return [
        PrometheusMetrics(registry=CollectorRegistry()),
        Tracing(tracer_provider=_tracer_provider()),
    ]


def polling_overhead(quick: bool, repeats: int) -> list[dict[str, Any]]:
    """Rate / bound of the 10-thread worker, off and on, ``repeats`` interleaved runs each."""
    budget, depth = (3.0, 2_000) if quick else (10.0, 15_000)
    rows = []
    for handler_ms in (10.0, 0.0):
        scenario = polling.PollingScenario(
            threads=10, handler_ms=handler_ms, depth=depth, budget_seconds=budget
        )
        ratios: dict[str, list[float]] = {"off": [], "on": []}
        cpu: dict[str, list[float]] = {"off": [], "on": []}  # client CPU ms per message
        for _ in range(repeats):
            for mode in ("off", "on"):
                result = polling.run(scenario, hooks=_hooks() if mode == "on" else ())
                if result.error or result.lost or result.unacked:
                    raise RuntimeError(f"{scenario.name} {mode}: {result.as_dict()}")
                ratios[mode].append(result.ratio)
                cpu[mode].append(result.cpu_per_1000)
                _progress(f"{scenario.name} {mode}: {result.rate:,.0f} msg/s, {result.ratio:.1%}")
        off, on = statistics.median(ratios["off"]), statistics.median(ratios["on"])
        rows.append({"name": scenario.name, "off": off, "on": on, "kept": on / off,
                     "cpu_off": statistics.median(cpu["off"]),
                     "cpu_on": statistics.median(cpu["on"])})  # fmt: skip
    return rows


#: Lambda modes: what ``LambdaHandler`` is given.
LAMBDA_MODES = ("off", "emf", "tracing, no SDK", "tracing, SDK", "emf + tracing, SDK")


def _invoker(sqs: Any, url: str, threads: int, mode: str) -> Callable[[dict[str, Any]], Any]:
    from sqsx import Queue
    from sqsx_lambda import LambdaHandler

    queue = Queue(url=url, sqs_client=sqs)
    queue.add_task_handler(lambda_fanout.TASK, lambda context, n: None)
    options: dict[str, Any] = {}
    if "emf" in mode:
        from aws_lambda_powertools import Metrics

        options["metrics"] = Metrics(namespace="SqsxBench", service="bench")
    if "tracing" in mode:
        from sqsx.tracing import Tracing

        # without the SDK: the API's no-op provider (what an app without one gets)
        provider = _tracer_provider() if mode.endswith(", SDK") else None
        queue.add_hook(Tracing(tracer_provider=provider))
        options["tracing"] = True
    handler = LambdaHandler(queue, max_threads=threads, **options)
    return lambda event: handler(event, lambda_fanout._Context())


def lambda_overhead(quick: bool, repeats: int) -> list[dict[str, Any]]:
    """CPU microseconds per record of a 100-record no-op event in each mode (all threads of
    the process; the best of ``repeats`` medians, modes interleaved)."""
    import warnings

    from bench.simsqs import SimulatedSqs

    warnings.filterwarnings("ignore", message="No application metrics to publish")
    sqs = SimulatedSqs(latency_seconds=0)
    url = sqs.create_queue(QueueName="obs-bench", Attributes={"VisibilityTimeout": "900"})[
        "QueueUrl"
    ]
    event = traced(lambda_fanout.make_event(sqs, url, 100))
    invocations = 10 if quick else 60
    rows = []
    for threads in (1, 10):
        per_record: dict[str, list[float]] = {mode: [] for mode in LAMBDA_MODES}
        invokers = {mode: _invoker(sqs, url, threads, mode) for mode in LAMBDA_MODES}
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # EMF lines
            for invoke in invokers.values():
                invoke(event)  # warm-up
            for _ in range(repeats):
                for mode, invoke in invokers.items():
                    gc.collect()
                    timings = []
                    for _ in range(invocations):
                        started = time.process_time()  # CPU of every thread: less noisy
                        invoke(event)
                        timings.append(time.process_time() - started)
                    per_record[mode].append(statistics.median(timings) * 1e6 / 100)
        best = {mode: min(values) for mode, values in per_record.items()}
        for mode in LAMBDA_MODES:
            rows.append({"threads": threads, "mode": mode, "us": best[mode],
                         "added_us": best[mode] - best["off"]})  # fmt: skip
            _progress(f"lambda 100 rec, {threads} thr, {mode}: {best[mode]:.1f} us/record")
    return rows


def traced(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with a W3C ``traceparent`` on every record, as a traced producer sends, in
    the shape Lambda delivers a string attribute (empty ``stringListValues`` and
    ``binaryListValues`` included; https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html)."""
    records = []
    for n, record in enumerate(event["Records"]):
        value = f"00-{n + 1:032x}-{n + 1:016x}-01"
        traceparent = {"stringValue": value, "stringListValues": [], "binaryListValues": [],
                       "dataType": "String"}  # fmt: skip
        attributes = {**record.get("messageAttributes", {}), "traceparent": traceparent}
        records.append({**record, "messageAttributes": attributes})
    return {"Records": records}


#: hook_cost's rows: (name, runtime, hooks, inside a Lambda invocation span).
HOOK_SETS = (
    ("none", "lambda", "none", False),
    ("Tracing, no SDK: Lambda invocation span + links", "lambda", "api", True),
    ("Tracing, SDK: Lambda invocation span + links", "lambda", "sdk", True),
    ("Tracing, SDK, lambda_record_spans=True", "lambda", "sdk-records", True),
    ("Tracing, no SDK: a span per message (worker)", "worker", "api", False),
    ("Tracing, SDK: a span per message (worker)", "worker", "sdk", False),
    ("PrometheusMetrics (worker)", "worker", "prometheus", False),
)


def _hook_set(kind: str) -> list[Any]:
    from prometheus_client import CollectorRegistry

    from sqsx.metrics import PrometheusMetrics
    from sqsx.tracing import Tracing

    if kind == "none":
        return []
    if kind == "prometheus":
        return [PrometheusMetrics(registry=CollectorRegistry())]
    provider = None if kind == "api" else _tracer_provider()
    return [Tracing(tracer_provider=provider, lambda_record_spans=kind == "sdk-records")]


def hook_cost(quick: bool) -> list[dict[str, Any]]:
    """CPU microseconds one record costs in ``Dispatcher.process``, per hook set, in a tight
    loop in one thread over 100 traced records (best of 9 interleaved runs): the hooks' own cost
    without the thread pool's noise. Lambda rows run the 100 records inside one
    ``Tracing.invocation_span`` (its links and its span included, per record), as
    ``LambdaHandler(tracing=True)`` does. The EMF row is ``InvocationMetrics.record`` for a
    100-record invocation, divided by 100."""
    import timeit

    from sqsx import Queue
    from sqsx.hooks import HookChain
    from sqsx.message import Message
    from sqsx.tracing import Tracing
    from sqsx_lambda.records import read_record
    from sqsx_lambda.runner import Fate, RecordResult

    sqs = _simulator()
    url = sqs.create_queue(QueueName="hook-bench")["QueueUrl"]
    event = traced(lambda_fanout.make_event(sqs, url, 100))
    records = event["Records"]
    messages: list[Message] = [read_record(record) for record in records]
    queue = Queue(url=url, sqs_client=sqs)
    queue.add_task_handler(lambda_fanout.TASK, lambda context, n: None)
    number = 20 if quick else 100
    runs: dict[str, Callable[[], None]] = {}
    for name, runtime, kind, invocation in HOOK_SETS:
        hooks = _hook_set(kind)
        # as LambdaHandler(tracing=True) does: the invocation span accounts for the records,
        # which skip the hook, and their failures are put on it afterwards
        batch = invocation and not hooks[0].lambda_record_spans
        chain = HookChain([] if batch else hooks)

        def run(chain: HookChain = chain, runtime: Any = runtime, span: Any = None) -> None:
            for message in messages:
                outcome = queue.dispatcher.process(message, None, runtime=runtime, hooks=chain)
                if span is not None:  # what LambdaHandler does once the records are done
                    Tracing.record_failure(span, message, outcome)

        def one(
            hooks: list[Any] = hooks, run: Any = run, invocation: bool = invocation,
            batch: bool = batch,
        ) -> None:  # fmt: skip
            if batch:  # the span over the event's records, as LambdaHandler opens it
                with hooks[0].lambda_span(records, "hook-bench") as span:
                    run(span=span)
            elif invocation:
                with hooks[0].invocation_span(messages, "hook-bench"):
                    run()
            else:
                run()

        runs[name] = one
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(9):  # the sets interleaved, so that a burst of load hits them alike
        for name, timed in runs.items():
            taken = min(timeit.repeat(timed, timer=time.process_time, number=number, repeat=1))
            best[name] = min(best[name], taken)
    rows: list[dict[str, Any]] = [
        {"hooks": name, "us": taken / number / 100 * 1e6} for name, taken in best.items()
    ]
    outcome = queue.dispatcher.process(messages[0], None, runtime="lambda")
    results = [RecordResult(messages[0], Fate.DONE, outcome)] * 100
    emf = _emf_recorder()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        emf_best = min(timeit.repeat(lambda: emf.record(results, url), timer=time.process_time,
                                     number=number, repeat=7))  # fmt: skip
    rows.append(
        {"hooks": "EMF (per record of a 100-record batch)", "us": emf_best / number / 100 * 1e6}
    )
    base = rows[0]["us"]
    for row in rows:
        row["added_us"] = row["us"] if row["hooks"].startswith("EMF") else row["us"] - base
    for row in rows:
        _progress(f"hooks {row['hooks']}: {row['us']:.2f} us/record (+{row['added_us']:.2f})")
    return rows


def _simulator() -> Any:
    from bench.simsqs import SimulatedSqs

    return SimulatedSqs(latency_seconds=0)


def _emf_recorder() -> Any:
    from aws_lambda_powertools import Metrics

    from sqsx_lambda.metrics import InvocationMetrics

    return InvocationMetrics(Metrics(namespace="SqsxBench", service="bench"))


def markdown(
    polled: list[dict[str, Any]], lambdas: list[dict[str, Any]], hooks: list[dict[str, Any]]
) -> str:
    lines = [
        "| scenario | off | metrics + tracing on | kept | client CPU ms / msg, off / on |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['name']} | {r['off']:.1%} of bound | {r['on']:.1%} of bound | {r['kept']:.1%} "
        f"| {r['cpu_off']:.3f} / {r['cpu_on']:.3f} |"
        for r in polled
    ]
    lines += [
        "",
        "| Lambda, 100 records x 0 ms | threads | CPU us / record | added |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['mode']} | {r['threads']} | {r['us']:.1f} | {r['added_us']:+.1f} |" for r in lambdas
    ]
    lines += [
        "",
        "| one record through the core, with | CPU us / record | added |",
        "|---|---|---|",
    ]
    lines += [f"| {r['hooks']} | {r['us']:.2f} | +{r['added_us']:.2f} |" for r in hooks]
    return "\n".join(lines)


def _progress(what: str) -> None:
    print(f"... {what}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.observability")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["polling", "lambda", "hooks"], default=None)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    repeats = 1 if args.quick else 2
    only = args.only
    polled = polling_overhead(args.quick, repeats) if only in (None, "polling") else []
    lambdas = (
        lambda_overhead(args.quick, 1 if args.quick else 15) if only in (None, "lambda") else []
    )
    hooks = hook_cost(args.quick) if only in (None, "hooks") else []
    print(markdown(polled, lambdas, hooks))
    print(f"\nload average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
