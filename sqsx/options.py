"""Validated configuration of a queue and of one ``consume_messages`` run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from sqsx.backoff import MAX_VISIBILITY_TIMEOUT_SECONDS
from sqsx.codec import DEFAULT_MAX_MESSAGE_BYTES
from sqsx.exceptions import ConfigurationError
from sqsx.lanes import DEFAULT_MAX_COROUTINES, MAX_COROUTINES_LIMIT

__all__ = ["ConsumeOptions", "QueueOptions"]

_URL = TypeAdapter(AnyHttpUrl)


class _Checked(BaseModel):
    """A model whose bad values raise ``ConfigurationError`` (a ``ValueError``) naming each
    field and the bound it broke, with pydantic's ``ValidationError`` as its cause."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise ConfigurationError(_describe(err)) from err


def _describe(err: ValidationError) -> str:
    parts = []
    for error in err.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(options)"
        parts.append(f"{field}: {error['msg']} (got {error.get('input')!r:.80})")
    return "invalid option: " + "; ".join(parts)


class QueueOptions(_Checked):
    """A queue's settings; a bad value raises ``ConfigurationError`` naming the field and
    the bound it broke."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    min_backoff_seconds: int = Field(30, ge=0, le=MAX_VISIBILITY_TIMEOUT_SECONDS)
    max_backoff_seconds: int = Field(900, ge=0, le=MAX_VISIBILITY_TIMEOUT_SECONDS)
    max_message_bytes: int = Field(DEFAULT_MAX_MESSAGE_BYTES, ge=1, le=DEFAULT_MAX_MESSAGE_BYTES)
    poison_policy: Literal["retry", "delete"] = "retry"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        _URL.validate_python(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> QueueOptions:
        if self.min_backoff_seconds > self.max_backoff_seconds:
            raise ValueError(
                f"min_backoff_seconds ({self.min_backoff_seconds}) must not exceed "
                f"max_backoff_seconds ({self.max_backoff_seconds})"
            )
        return self


class ConsumeOptions(_Checked):
    """Options of one consuming run; ``Queue.consume_messages`` documents the first seven.

    Attributes:
        receivers: threads that call ReceiveMessage (default: 1 with one handler thread,
            else ``ceil(2 * max_threads / max_messages)``, at most 8). Only the first
            long-polls an idle queue; the others join in while messages flow.
        ack_delay_seconds: how long a finished message may wait for nine others before its
            DeleteMessageBatch goes out (default 0.2 s).
        drain: stop once the queue has no visible, in-flight or delayed message and this
            worker holds none (what ``sqsx worker --drain`` uses).
        max_messages_total: stop receiving after this many messages (each receive asks for
            no more than are left), then stop once they are done (``--max-messages-total``).
        exit_when_idle_seconds: stop once no message was received or held for this many
            seconds (``--exit-when-idle``).
        max_async: coroutines of ``async def`` handlers running at once (1 to 10,000,
            default 100; ``--max-async``). They hold no handler thread and no room: the
            worker holds up to ``max_threads + max_async + (receivers + 1) * max_messages``
            messages while they run.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_messages: int = Field(1, ge=1, le=10)
    max_threads: int = Field(1, ge=1, le=1024)
    wait_seconds: float = Field(10, ge=0)
    polling_wait_seconds: int = Field(10, ge=0, le=20)
    run_forever: bool = True
    visibility_timeout: int | None = Field(None, ge=1, le=MAX_VISIBILITY_TIMEOUT_SECONDS)
    stop_timeout: float | None = Field(None, ge=0)
    receivers: int | None = Field(None, ge=1, le=16)
    ack_delay_seconds: float = Field(0.2, ge=0, le=10)
    drain: bool = False
    max_messages_total: int | None = Field(None, ge=1)
    exit_when_idle_seconds: float | None = Field(None, gt=0)
    max_async: int = Field(DEFAULT_MAX_COROUTINES, ge=1, le=MAX_COROUTINES_LIMIT)
