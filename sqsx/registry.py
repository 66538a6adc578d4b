"""The thread-safe map from task name to handler."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from sqsx.exceptions import ConfigurationError
from sqsx.signature import check_task_handler

__all__ = ["HandlerRegistry", "TaskHandler"]

#: A task handler: ``fn(context, **kwargs)``.
TaskHandler = Callable[..., Any]


class HandlerRegistry:
    """Task name -> handler. Reads take no lock; writes replace the whole map.

    Consumer threads read on every message; registration is rare. Copy-on-write lets a
    handler be added or removed while messages are being consumed, and a reader always
    sees a complete map.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: Mapping[str, TaskHandler] = MappingProxyType({})

    def register(self, task_name: str, handler: TaskHandler) -> None:
        """Route ``task_name`` to ``handler``, replacing any earlier handler.

        Raises:
            ValueError: ``task_name`` is not a non-empty string.
            HandlerSignatureError: (a ``TypeError``) ``handler`` cannot be called
                ``fn(context, **kwargs)``; the message names it and says why.
        """
        if not isinstance(task_name, str) or not task_name:
            raise ConfigurationError(f"task_name must be a non-empty string, got {task_name!r}")
        check_task_handler(task_name, handler)
        with self._lock:
            self._handlers = MappingProxyType({**self._handlers, task_name: handler})

    def unregister(self, task_name: str) -> bool:
        """Forget ``task_name``'s handler; ``False`` when none was registered."""
        with self._lock:
            if task_name not in self._handlers:
                return False
            handlers = dict(self._handlers)
            del handlers[task_name]
            self._handlers = MappingProxyType(handlers)
            return True

    def get(self, task_name: str) -> TaskHandler | None:
        """The handler for ``task_name``, or ``None``."""
        return self._handlers.get(task_name)

    def names(self) -> list[str]:
        """The registered task names, sorted."""
        return sorted(self._handlers)
