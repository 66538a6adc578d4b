"""Observability overhead: metrics and tracing off vs on, interleaved in one run.

``python -m bench.observability`` (``--quick`` for a smoke run). On the simulated SQS:

- the polling worker at 10 threads (10 ms and no-op handlers), without hooks and with
  ``PrometheusMetrics`` + ``Tracing`` (an OpenTelemetry SDK provider sampling every span,
  a ``BatchSpanProcessor`` and an exporter that drops what it gets), as a ratio of the
  scenario's bound;
- ``LambdaHandler`` on a 100-record no-op event, inline and at 10 threads, without and with
  ``metrics=Metrics(...)`` (EMF, printed to /dev/null) + ``tracing=True``: microseconds
  per record, and the difference.

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
        for _ in range(repeats):
            for mode in ("off", "on"):
                result = polling.run(scenario, hooks=_hooks() if mode == "on" else ())
                if result.error or result.lost or result.unacked:
                    raise RuntimeError(f"{scenario.name} {mode}: {result.as_dict()}")
                ratios[mode].append(result.ratio)
                _progress(f"{scenario.name} {mode}: {result.rate:,.0f} msg/s, {result.ratio:.1%}")
        off, on = statistics.median(ratios["off"]), statistics.median(ratios["on"])
        rows.append({"name": scenario.name, "off": off, "on": on, "kept": on / off})
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
    """Microseconds per record of a 100-record no-op event in each mode (the best of
    ``repeats`` medians, modes interleaved)."""
    import warnings

    from sqsx.testing import SimulatedSqs

    warnings.filterwarnings("ignore", message="No application metrics to publish")
    sqs = SimulatedSqs(latency_seconds=0)
    url = sqs.create_queue(QueueName="obs-bench", Attributes={"VisibilityTimeout": "900"})[
        "QueueUrl"
    ]
    event = lambda_fanout.make_event(sqs, url, 100)
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
                        started = time.perf_counter()
                        invoke(event)
                        timings.append(time.perf_counter() - started)
                    per_record[mode].append(statistics.median(timings) * 1e6 / 100)
        best = {mode: min(values) for mode, values in per_record.items()}
        for mode in LAMBDA_MODES:
            rows.append({"threads": threads, "mode": mode, "us": best[mode],
                         "added_us": best[mode] - best["off"]})  # fmt: skip
            _progress(f"lambda 100 rec, {threads} thr, {mode}: {best[mode]:.1f} us/record")
    return rows


def markdown(polled: list[dict[str, Any]], lambdas: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | off | metrics + tracing on | kept |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['name']} | {r['off']:.1%} of bound | {r['on']:.1%} of bound | {r['kept']:.1%} |"
        for r in polled
    ]
    lines += [
        "",
        "| Lambda, 100 records x 0 ms | threads | us / record | added |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['mode']} | {r['threads']} | {r['us']:.1f} | {r['added_us']:+.1f} |" for r in lambdas
    ]
    return "\n".join(lines)


def _progress(what: str) -> None:
    print(f"... {what}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.observability")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    repeats = 1 if args.quick else 2
    polled = polling_overhead(args.quick, repeats)
    lambdas = lambda_overhead(args.quick, 3 if not args.quick else 1)
    print(markdown(polled, lambdas))
    print(f"\nload average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
