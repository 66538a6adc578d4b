"""The fate table: what each way a message can end becomes, with its one log line.

The dispatcher (``sqsx.dispatch``) runs a message and finds out what happened; this module
turns that into an ``Outcome`` (delete, or retry after N seconds) and logs it, once, the
same way in both runtimes. Lines go to the ``sqsx.dispatch`` logger.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

from sqsx.backoff import BackoffPolicy
from sqsx.clip import clip
from sqsx.exceptions import NoRetry, Retry, UnprocessableMessageError
from sqsx.message import Message
from sqsx.outcome import Outcome, Verdict

__all__ = ["Fates", "PoisonPolicy"]

logger = logging.getLogger("sqsx.dispatch")

#: What to do with a message that can never succeed (undecodable, unknown task, bad kwargs):
#: ``"retry"`` backs it off until the redrive policy dead-letters it; ``"delete"`` drops it
#: at once with an ERROR line.
PoisonPolicy = Literal["retry", "delete"]


class Fates:
    """A queue's fate table.

    Args:
        queue_url: for log lines.
        backoff: the queue's backoff policy.
        poison_policy: fate of messages that can never succeed.
    """

    def __init__(self, queue_url: str, backoff: BackoffPolicy, poison_policy: PoisonPolicy) -> None:
        self.queue_url = queue_url
        self.backoff = backoff
        self.poison_policy = poison_policy

    def handled(
        self, message: Message, label: str, err: BaseException | None, elapsed: float
    ) -> Outcome:
        """The outcome of a handler that returned (``err`` is ``None``) or raised ``err``."""
        if err is None:
            return Outcome.succeeded(elapsed)
        if isinstance(err, NoRetry):
            logger.info(
                "NoRetry raised, deleting message_id=%s task=%s queue_url=%s",
                message.message_id,
                label,
                self.queue_url,
            )
            return Outcome(Verdict.NO_RETRY, None, "NoRetry raised", elapsed)
        if isinstance(err, Retry):
            policy = self.backoff.overridden(err.min_backoff_seconds, err.max_backoff_seconds)
            delay = policy.delay(message.receive_count)
            logger.info(
                "Retry raised, retrying in %ss message_id=%s task=%s receive_count=%s queue_url=%s",
                delay,
                message.message_id,
                label,
                message.receive_count,
                self.queue_url,
            )
            return Outcome(Verdict.RETRIED, delay, "Retry raised", elapsed)
        # SystemExit, KeyboardInterrupt...: never the worker's to act on
        level = logging.WARNING if isinstance(err, Exception) else logging.ERROR
        return self._failed(message, label, err, elapsed, level)

    def timed_out(
        self,
        message: Message,
        label: str,
        limit: float,
        elapsed: float = 0.0,
        *,
        late: bool = False,
    ) -> Outcome:
        """The outcome of a handler that ran past its time limit (and its log line)."""
        delay = self.backoff.delay(message.receive_count)
        if not late:
            logger.warning(
                "handler ran past its time limit of %gs, retrying in %ss message_id=%s "
                "task=%s receive_count=%s queue_url=%s",
                limit,
                delay,
                message.message_id,
                label,
                message.receive_count,
                self.queue_url,
            )
        reason = f"ran past its time limit of {limit:g}s"
        return Outcome(Verdict.TIMED_OUT, delay, reason, elapsed or limit, late=late)

    def cancelled(self, message: Message, label: str, *, started: bool) -> Outcome:
        """The outcome of a coroutine the runtime cancelled before it finished (the stop
        deadline, a second stop request, Lambda's deadline guard), or never started (the
        runtime was stopping): visible again at once, since its handler did not finish."""
        reason = "cancelled by the runtime" if started else "not started: the runtime is stopping"
        logger.info(  # the runtime logs one WARNING for them all
            "coroutine %s, retried at once message_id=%s task=%s queue_url=%s",
            reason,
            message.message_id,
            label,
            self.queue_url,
        )
        return Outcome(Verdict.RETRIED, 0, reason)

    def _failed(
        self, message: Message, label: str, err: BaseException, elapsed: float, level: int
    ) -> Outcome:
        delay = self.backoff.delay(message.receive_count)
        kind = type(err).__name__
        hint = "" if level < logging.ERROR else " (a BaseException: it does not stop the worker)"
        logger.log(
            level,
            "handler raised %s%s, retrying in %ss message_id=%s task=%s receive_count=%s "
            "queue_url=%s",
            kind,
            hint,
            delay,
            message.message_id,
            label,
            message.receive_count,
            self.queue_url,
            exc_info=err,
        )
        return Outcome(Verdict.RETRIED, delay, f"handler raised {kind}", elapsed, error=err)

    def unreadable(self, message: Message, err: Exception) -> Outcome:
        """The outcome of a message that failed before its handler: unprocessable, or a
        passing failure (a hook could not fetch its payload, say) retried with backoff."""
        if isinstance(err, UnprocessableMessageError):
            return self.unprocessable(message, err)
        delay = self.backoff.delay(message.receive_count)
        logger.warning(
            "could not prepare the message (%s), retrying in %ss message_id=%s task=%s "
            "receive_count=%s queue_url=%s",
            type(err).__name__,
            delay,
            message.message_id,
            _task_name_or_dash(message),
            message.receive_count,
            self.queue_url,
            exc_info=True,
        )
        return Outcome(Verdict.RETRIED, delay, f"preparing raised {type(err).__name__}", error=err)

    def unprocessable(self, message: Message, err: UnprocessableMessageError) -> Outcome:
        """The outcome of a message no handler can take, per ``poison_policy`` (and its log
        line); runtimes call it for messages they cannot even read."""
        reason = f"{type(err).__name__}: {err}"
        task = _task_name_or_dash(message)
        if self.poison_policy == "delete":
            logger.error(
                "unprocessable message deleted (poison_policy=delete) message_id=%s task=%s "
                "reason=%s queue_url=%s",
                message.message_id,
                task,
                reason,
                self.queue_url,
            )
            return Outcome(Verdict.UNPROCESSABLE, None, reason)
        delay = self.backoff.delay(message.receive_count)
        logger.warning(
            "unprocessable message, retrying in %ss until the redrive policy dead-letters it "
            "message_id=%s task=%s reason=%s receive_count=%s queue_url=%s",
            delay,
            message.message_id,
            task,
            reason,
            message.receive_count,
            self.queue_url,
        )
        return Outcome(Verdict.UNPROCESSABLE, delay, reason)


def _task_name_or_dash(message: Message) -> str:
    """The TaskName attribute for log lines, whatever shape it came in; ``-`` if none."""
    attribute = (message.raw.get("MessageAttributes") or {}).get("TaskName")
    value = attribute.get("StringValue") if isinstance(attribute, Mapping) else None
    return clip(value) if isinstance(value, str) and value else "-"
