"""Structured logs through a Powertools ``Logger``, imported only when one is given.

sqsx logs with the standard library (``sqsx.*`` and ``sqsx_lambda.*`` loggers). Given a
Powertools ``Logger``, those loggers are pointed at its handler, so every line comes out as
one JSON object with the Lambda context keys Powertools adds (``function_request_id``,
``function_name``, ``cold_start``...) and, while a record runs, ``message_id`` (plus
``message_group_id`` on FIFO queues) on the lines of the thread running it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqsx.dispatch import Outcome
from sqsx.hooks import Hook, Processing

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

__all__ = ["StructuredLogs"]

_LOGGERS = ("sqsx", "sqsx_lambda")
_Fn = TypeVar("_Fn", bound=Callable[..., Any])


class StructuredLogs:
    """Routes sqsx's loggers through ``logger`` and adds per-invocation and per-record keys.

    Args:
        logger: the function's Powertools ``Logger``; its level applies to sqsx's loggers.
    """

    def __init__(self, logger: Logger) -> None:
        from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

        for name in _LOGGERS:
            logging.getLogger(name)  # registered, so that the copy below finds it
        copy_config_to_registered_loggers(source_logger=logger, include=set(_LOGGERS))
        self._logger = logger

    def invocation(self, entrypoint: _Fn) -> _Fn:
        """``entrypoint`` with the Lambda context keys added to every line it logs."""
        wrapped: _Fn = self._logger.inject_lambda_context(entrypoint)
        return wrapped

    def record_hook(self) -> Hook:
        """A core hook that adds ``message_id`` (and ``message_group_id``) to the lines of
        the thread running a record, while it runs."""
        return _RecordKeys(self._logger)


class _RecordKeys(Hook):
    def __init__(self, logger: Logger) -> None:
        self._logger = logger

    def before_process(self, processing: Processing) -> None:
        message = processing.message
        keys: dict[str, object] = {"message_id": message.message_id}
        if message.group_id is not None:
            keys["message_group_id"] = message.group_id
        self._logger.thread_safe_append_keys(**keys)
        processing.state[self] = list(keys)

    def after_process(self, processing: Processing, outcome: Outcome) -> None:
        keys = processing.state.pop(self, None)
        if keys:
            self._logger.thread_safe_remove_keys(keys)
