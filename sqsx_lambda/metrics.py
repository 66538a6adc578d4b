"""CloudWatch metrics in Embedded Metric Format, through a Powertools ``Metrics``.

Imported only when ``LambdaHandler(queue, metrics=Metrics(...))`` is given one. Per
invocation it records, in the ``Metrics``' namespace and with its dimensions (``service``
and any default dimensions) plus ``queue`` (the queue's name):

- ``RecordsReceived``: records in the event;
- ``RecordsDeleted``: records not reported (Lambda deletes them: success, ``NoRetry``, or
  unprocessable under ``poison_policy="delete"``);
- ``RecordsRetried``: records whose handler failed or raised ``Retry`` (reported, backed off);
- ``RecordsUnprocessable``: records no handler could take;
- ``RecordsSkipped``: records not started (deadline near, or a FIFO group held back);
- ``RecordsAbandoned``: records still running at the deadline;
- ``HandlerDuration``: each handler's run time, in milliseconds; for a batch of more than
  ten records, ten evenly spaced order statistics of them (the fastest and the slowest
  included), which keeps the cost per record low (Powertools re-formats a metric's whole
  value list on every value added).

The counts are flushed once, as one EMF document printed on stdout, at the end of the
invocation. A failure to record or to flush is logged and never reaches the response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sqsx.dispatch import Outcome, Verdict
from sqsx_lambda.runner import Fate, RecordResult

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

__all__ = ["InvocationMetrics"]

logger = logging.getLogger(__name__)

#: ``HandlerDuration`` values recorded per invocation at most.
_MAX_DURATIONS = 10


class InvocationMetrics:
    """Records one invocation's record fates into a Powertools ``Metrics`` and flushes it.

    Args:
        metrics: the function's ``aws_lambda_powertools.Metrics`` (namespace and service
            set, by argument or by ``POWERTOOLS_METRICS_NAMESPACE`` / ``POWERTOOLS_SERVICE_NAME``).
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def record(self, results: Sequence[RecordResult], queue_url: str) -> None:
        """Add the counts and durations of ``results`` and flush; never raises."""
        self._emit(lambda: _tally(results), queue_url)

    def record_deleted(self, outcomes: Sequence[Outcome], queue_url: str) -> None:
        """``record`` of an invocation whose every record ran and was deleted (the inline
        pass's ``InlineRun``), read from its outcomes: no ``RecordResult`` is built."""
        self._emit(lambda: _tally_deleted(outcomes), queue_url)

    def _emit(
        self, tally: Callable[[], tuple[dict[str, int], list[float]]], queue_url: str
    ) -> None:
        try:
            from aws_lambda_powertools.metrics import MetricUnit

            counts, durations = tally()
            metrics = self._metrics
            metrics.add_dimension(name="queue", value=queue_url.rstrip("/").rsplit("/", 1)[-1])
            for name, count in counts.items():
                metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
            for value in _spread(durations):
                metrics.add_metric(
                    name="HandlerDuration", unit=MetricUnit.Milliseconds, value=value
                )
        except Exception:  # a metrics failure must not fail the batch
            logger.error("could not record metrics queue_url=%s", queue_url, exc_info=True)
        try:
            self._metrics.flush_metrics()
        except Exception:
            logger.error("could not flush metrics queue_url=%s", queue_url, exc_info=True)


def _counts(received: int, deleted: int) -> dict[str, int]:
    return {
        "RecordsReceived": received,
        "RecordsDeleted": deleted,
        "RecordsRetried": 0,
        "RecordsUnprocessable": 0,
        "RecordsSkipped": 0,
        "RecordsAbandoned": 0,
    }


def _tally(results: Sequence[RecordResult]) -> tuple[dict[str, int], list[float]]:
    counts = _counts(len(results), 0)
    durations: list[float] = []
    for result in results:
        if not result.reported:
            counts["RecordsDeleted"] += 1
        if result.fate is Fate.SKIPPED:
            counts["RecordsSkipped"] += 1
        elif result.fate is Fate.ABANDONED:
            counts["RecordsAbandoned"] += 1
        outcome = result.outcome
        if outcome is None:
            continue
        if outcome.verdict is Verdict.RETRIED:
            counts["RecordsRetried"] += 1
        elif outcome.verdict is Verdict.UNPROCESSABLE:
            counts["RecordsUnprocessable"] += 1
            continue  # no handler ran
        durations.append(outcome.handler_seconds * 1000)
    return counts, durations


def _tally_deleted(outcomes: Sequence[Outcome]) -> tuple[dict[str, int], list[float]]:
    counts = _counts(len(outcomes), len(outcomes))
    unprocessable = Verdict.UNPROCESSABLE
    durations = [o.handler_seconds * 1000 for o in outcomes if o.verdict is not unprocessable]
    counts["RecordsUnprocessable"] = len(outcomes) - len(durations)
    return counts, durations


def _spread(values: list[float]) -> list[float]:
    """``values``, or for more than ``_MAX_DURATIONS`` of them that many evenly spaced order
    statistics (the smallest and the largest included)."""
    if len(values) <= _MAX_DURATIONS:
        return values
    ordered = sorted(values)
    last = len(ordered) - 1
    return [ordered[round(i * last / (_MAX_DURATIONS - 1))] for i in range(_MAX_DURATIONS)]
