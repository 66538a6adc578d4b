"""sqsx_lambda: run the handlers of a ``sqsx.Queue`` or ``RawQueue`` in AWS Lambda.

``LambdaHandler(queue)`` is the function's entrypoint: records run concurrently on a reused
thread pool through the same core as the polling worker, and each failed record is reported
in ``batchItemFailures`` with its own exponential backoff.

Importing this package loads neither Powertools nor the CLI: ``sqsx_lambda.powertools``
(a Powertools ``BatchProcessor``) and ``python -m sqsx_lambda invoke`` are separate modules.
"""

from sqsx_lambda.handler import BatchItemFailure, BatchResponse, LambdaHandler
from sqsx_lambda.records import EventError, RecordError
from sqsx_lambda.runner import Fate, RecordResult

__all__ = [
    "BatchItemFailure",
    "BatchResponse",
    "EventError",
    "Fate",
    "LambdaHandler",
    "RecordError",
    "RecordResult",
]
