"""Structured logs: one JSON object per line, with the message's keys on per-message lines.

``sqsx worker --log-format json`` installs ``JsonFormatter`` on its stderr handler and adds
``LogScope`` to the queue's hooks. Every line is an object with ``time`` (UTC, ISO 8601),
``level``, ``logger`` and ``message`` (plus ``exception`` with the traceback when there is
one). Lines about one message also carry ``message_id``, ``task`` and ``queue_url``: taken
from the line itself (sqsx writes them as ``key=value``, which covers lines logged outside
a handler thread, such as a failed delete), else from the message whose handler the
logging thread is running (set by ``LogScope``, so the handler's own lines carry them too).

Nothing else is added: no body, no attribute, no credential (sqsx never logs those above
DEBUG).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
from typing import Any

from sqsx.dispatch import Outcome
from sqsx.hooks import Hook, Processing

__all__ = ["JsonFormatter", "LineLogger", "LogScope"]

_KEY_VALUE = re.compile(r"\b(message_id|task|queue_url)=([^\s,]+)")
_scope: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "sqsx_log_scope", default=None
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docs for the keys)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        scope = _scope.get()
        if scope:
            line.update(scope)
        for key, value in _KEY_VALUE.findall(message):  # the line's own values win
            line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


class LogScope(Hook):
    """Sets ``message_id``, ``task`` and ``queue_url`` for the lines logged by the thread
    running a message's handler, while it runs."""

    def before_process(self, processing: Processing) -> None:
        token = _scope.set(
            {
                "message_id": processing.message.message_id,
                "task": processing.task,
                "queue_url": processing.queue_url,
            }
        )
        processing.state[self] = token

    def after_process(self, processing: Processing, outcome: Outcome) -> None:
        token = processing.state.pop(self, None)
        if token is not None:
            _scope.reset(token)


class LineLogger:
    """A text stream whose lines become INFO records of ``logger`` (for the CLI's progress
    lines, so that a JSON log stays one object per line)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self._logger.info("%s", line)
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered."""

    def isatty(self) -> bool:
        return False


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"
