"""The visibility changes of an invocation's records: a retried record gets its backoff, a
skipped one is hidden or released, ten to a ChangeMessageVisibilityBatch per queue, through
the worker's helper (``sqsx.sqs.change_visibility_now``), within the invocation's time."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqsx.clip import clip
from sqsx.sqs import BatchEntry, capped_visibility, change_visibility_now
from sqsx_lambda.batch import RecordResult

__all__ = ["change_visibility"]

# Visibility changes are logged as the handler's lines, whichever module writes them.
logger = logging.getLogger("sqsx_lambda.handler")

# SQS refuses a visibility reaching past 12 h from the receive; the event source mapping
# received these records up to a 5-minute batching window plus a 15-minute invocation ago.
_LONGEST_HOLD_SECONDS = 20 * 60


def change_visibility(
    client: Any,
    results: Sequence[RecordResult],
    urls: Sequence[str],
    context: Any,
    margin_ms: int,
) -> None:
    """Hide or release the records that need it, ten to a ChangeMessageVisibilityBatch
    per queue, retried (throttling, 5xx, network) while the invocation has time."""
    entries: dict[str, list[BatchEntry]] = defaultdict(list)
    for result, url in zip(results, urls, strict=True):
        seconds = result.visibility_timeout
        if seconds is None:
            continue
        message = result.message
        if not message.receipt_handle:
            logger.warning(
                "no receipt handle: visibility not changed message_id=%s queue_url=%s",
                message.message_id,
                url,
            )
            continue
        seconds = capped_visibility(seconds, _LONGEST_HOLD_SECONDS)
        entries[url].append(BatchEntry(message.message_id, message.receipt_handle, seconds))
    if not entries:
        return
    deadline = _visibility_deadline(context, margin_ms)
    for url, batch in entries.items():
        try:
            refused = change_visibility_now(client, url, batch, deadline=deadline)
        except Exception:  # the response must still go out: the records stay reported
            logger.exception(
                "ChangeMessageVisibilityBatch raised; these records keep the queue's "
                "visibility timeout message_ids=%s queue_url=%s",
                ",".join(entry.message_id for entry in batch),
                url,
            )
            continue
        for failure in refused:
            logger.error(
                "ChangeMessageVisibilityBatch failed: %s (%s); the record keeps the queue's "
                "visibility timeout message_id=%s queue_url=%s",
                failure.code,
                clip(failure.detail, 200),
                failure.entry.message_id,
                url,
            )


def _visibility_deadline(context: Any, margin_ms: int) -> float | None:
    """When the visibility retries must stop: half the deadline margin before the end
    of the invocation (``None`` without a Lambda context)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    left_ms = max(int(remaining()) - margin_ms / 2, 0)
    return time.monotonic() + left_ms / 1000
