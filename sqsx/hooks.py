"""The core's hook surface: cross-cutting work that both runtimes get without writing it twice.

A ``Hook`` sees every message the core processes and every message it sends, in either
runtime. Subclass it and override what you need; every method has a no-op default:

- ``resolve_message(message)``: a codec step, before the body is decoded (fetch an S3
  payload, say). Raise ``UnprocessableMessageError`` for a message that can never be
  read, any other ``Exception`` for a passing failure (the message is retried).
- ``before_process(processing)`` / ``after_process(processing, outcome)``: around the
  handler, in the thread that runs it; ``after_process`` runs in reverse hook order and
  sees the fate the core decided (metrics, tracing, log scopes, time limits).
- ``before_send(outgoing)``: on every send path, before the size check; returns the
  message to send (add a ``traceparent`` attribute, offload a large body).
- ``after_delete(message, queue_url)``: once the message is known to be deleted (the
  worker: SQS confirmed the delete; Lambda: the record was not reported, so Lambda
  deletes it).

A hook that raises in ``before_process``, ``after_process`` or ``after_delete`` is logged
with its traceback and changes nothing about the message's fate. Hooks are explicit: given
to a queue (``Queue(..., hooks=[...])``) or added by a runtime for one run; there is no
global registry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqsx.exceptions import WrongTypeError
from sqsx.message import Message

if TYPE_CHECKING:
    from sqsx.dispatch import Outcome
    from sqsx.sending import OutgoingMessage

__all__ = ["Hook", "HookChain", "Processing", "Runtime"]

logger = logging.getLogger(__name__)

#: Which runtime is processing: the polling worker or ``sqsx_lambda``.
Runtime = Literal["worker", "lambda"]


@dataclass(slots=True)
class Processing:
    """One message on its way through the core, as hooks see it.

    Attributes:
        message: the received message (after ``resolve_message``).
        queue_url: the queue it came from.
        runtime: ``"worker"`` or ``"lambda"``.
        task: the task name once known; ``"<raw>"`` for a ``RawQueue``; ``"-"`` when the
            message could not be read.
        lambda_context: the Lambda context, or ``None`` in the worker.
        time_limit: seconds the handler may run (``None``: no limit).
        state: scratch space for hooks, one entry per hook that needs one (a span, a timer).
    """

    message: Message
    queue_url: str
    runtime: Runtime
    task: str = "-"
    lambda_context: Any = None
    time_limit: float | None = None
    state: dict[object, Any] = field(default_factory=dict)


class Hook:
    """Base class for hooks: override the methods you need (see the module docs)."""

    def resolve_message(self, message: Message) -> Message:
        """The message to decode in place of ``message`` (default: itself)."""
        return message

    def before_process(self, processing: Processing) -> None:
        """Called before the handler runs (or before the message is judged unreadable)."""

    def after_process(self, processing: Processing, outcome: Outcome) -> None:
        """Called once the message's ``Outcome`` is decided, in the same thread."""

    def before_send(self, outgoing: OutgoingMessage) -> OutgoingMessage:
        """The message to send in place of ``outgoing`` (default: itself)."""
        return outgoing

    def after_delete(self, message: Message, queue_url: str) -> None:
        """Called once ``message`` is deleted from ``queue_url``."""


class HookChain:
    """An ordered, immutable set of hooks, called safely.

    Args:
        hooks: the hooks, in the order their ``before_*`` methods run.
    """

    __slots__ = (
        "_after",
        "_before",
        "_deleted",
        "_resolvers",
        "_senders",
        "hooks",
        "observes",
        "resolves",
        "watches_deletes",
    )

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self.hooks: tuple[Hook, ...] = tuple(hooks)
        for hook in self.hooks:
            if not isinstance(hook, Hook):
                raise WrongTypeError(f"{hook!r} is not a sqsx.hooks.Hook")
        # Only hooks that override a method are called for it: the hot path stays short.
        self._resolvers = _overriding(self.hooks, "resolve_message")
        self._before = _overriding(self.hooks, "before_process")
        self._after = tuple(reversed(_overriding(self.hooks, "after_process")))
        self._senders = _overriding(self.hooks, "before_send")
        self._deleted = _overriding(self.hooks, "after_delete")
        # Read for every message: plain attributes rather than properties.
        #: True when some hook resolves messages before decoding.
        self.resolves = bool(self._resolvers)
        #: True when some hook runs around processing.
        self.observes = bool(self._before or self._after)
        #: True when some hook wants to hear of deleted messages.
        self.watches_deletes = bool(self._deleted)

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def plus(self, *hooks: Hook) -> HookChain:
        """This chain with ``hooks`` added at the end."""
        return HookChain((*self.hooks, *hooks))

    def resolve(self, message: Message) -> Message:
        """Run ``resolve_message`` through every hook; its errors propagate (the core maps
        them to a fate)."""
        for hook in self._resolvers:
            message = hook.resolve_message(message)
        return message

    def before(self, processing: Processing) -> None:
        for hook in self._before:
            try:
                hook.before_process(processing)
            except Exception:
                _log_failure(hook, "before_process", processing.message, processing.queue_url)

    def after(self, processing: Processing, outcome: Outcome) -> None:
        for hook in self._after:
            try:
                hook.after_process(processing, outcome)
            except Exception:
                _log_failure(hook, "after_process", processing.message, processing.queue_url)

    def send(self, outgoing: OutgoingMessage) -> OutgoingMessage:
        """Run ``before_send`` through every hook; its errors propagate to the sender."""
        for hook in self._senders:
            outgoing = hook.before_send(outgoing)
        return outgoing

    def deleted(self, messages: Sequence[Message], queue_url: str) -> None:
        for message in messages:
            for hook in self._deleted:
                try:
                    hook.after_delete(message, queue_url)
                except Exception:
                    _log_failure(hook, "after_delete", message, queue_url)


def _overriding(hooks: Sequence[Hook], name: str) -> tuple[Hook, ...]:
    default = getattr(Hook, name)
    return tuple(hook for hook in hooks if getattr(type(hook), name, default) is not default)


def _log_failure(hook: Hook, method: str, message: Message, queue_url: str) -> None:
    logger.error(
        "hook %s.%s raised; the message's fate is unchanged message_id=%s queue_url=%s",
        type(hook).__name__,
        method,
        message.message_id,
        queue_url,
        exc_info=True,
    )
