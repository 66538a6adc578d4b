"""Handlers are checked when registered: one that can never be called the way sqsx calls it
is refused with a ``TypeError`` naming it, instead of failing every message later."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from sqsx import Queue, RawQueue
from sqsx.exceptions import HandlerSignatureError, SqsxError
from sqsx.signature import check_raw_handler, check_task_handler


def with_context(context, a, b=1): ...  # type: ignore[no-untyped-def]
def context_only(context): ...  # type: ignore[no-untyped-def]
def keyword_only(context, *, a): ...  # type: ignore[no-untyped-def]
def star_args(*args, **kwargs): ...  # type: ignore[no-untyped-def]
async def coroutine(context, a): ...  # type: ignore[no-untyped-def]
def only_kwargs(**kwargs): ...  # type: ignore[no-untyped-def]
def nothing(): ...  # type: ignore[no-untyped-def]
def keyword_context(*, context, a): ...  # type: ignore[no-untyped-def]
def positional_only(context, a, /): ...  # type: ignore[no-untyped-def]
def raw(queue_url, sqs_message): ...  # type: ignore[no-untyped-def]
async def raw_coroutine(queue_url, sqs_message): ...  # type: ignore[no-untyped-def]
def raw_one(queue_url): ...  # type: ignore[no-untyped-def]
def raw_three(queue_url, sqs_message, extra): ...  # type: ignore[no-untyped-def]


class CallableTask:
    def __call__(self, context: Any, n: int) -> None: ...


GOOD_TASK_HANDLERS = [
    pytest.param(with_context, id="context-and-kwargs"),
    pytest.param(context_only, id="context-only"),
    pytest.param(keyword_only, id="keyword-only-kwargs"),
    pytest.param(star_args, id="star-args"),
    pytest.param(coroutine, id="async-def"),
    pytest.param(CallableTask(), id="callable-object"),
    pytest.param(functools.partial(with_context, b=2), id="partial"),
    pytest.param(lambda context, **kwargs: None, id="lambda"),
    pytest.param(print, id="builtin"),
]

BAD_TASK_HANDLERS = [
    pytest.param(only_kwargs, "no positional parameter to receive the context", id="only-kwargs"),
    pytest.param(nothing, "no positional parameter to receive the context", id="no-parameters"),
    pytest.param(
        keyword_context, "no positional parameter to receive the context", id="keyword-context"
    ),
    pytest.param(positional_only, "parameter 'a' is positional-only", id="positional-only"),
]


@pytest.mark.parametrize("handler", GOOD_TASK_HANDLERS)
def test_task_handlers_that_fit_are_accepted(handler: Any) -> None:
    check_task_handler("t", handler)


@pytest.mark.parametrize(("handler", "problem"), BAD_TASK_HANDLERS)
def test_task_handlers_that_cannot_fit_are_refused(handler: Any, problem: str) -> None:
    with pytest.raises(HandlerSignatureError, match=problem) as caught:
        check_task_handler("t", handler)
    message = str(caught.value)
    assert "task 't'" in message
    assert f"test_handler_checks.{handler.__name__} (" in message  # which function
    assert f"test_handler_checks.py:{handler.__code__.co_firstlineno}" in message  # and where
    assert "fn(context, **kwargs)" in message


@pytest.mark.parametrize("handler", [raw, raw_coroutine, star_args, print])
def test_raw_handlers_that_fit_are_accepted(handler: Any) -> None:
    check_raw_handler(handler)


@pytest.mark.parametrize(
    ("handler", "problem"),
    [
        pytest.param(raw_one, "too many positional arguments", id="one-parameter"),
        pytest.param(raw_three, "missing a required argument: 'extra'", id="three-parameters"),
        pytest.param(only_kwargs, "too many positional arguments", id="only-kwargs"),
        pytest.param("not a function", "must be callable, got str", id="not-callable"),
    ],
)
def test_raw_handlers_that_cannot_fit_are_refused(handler: Any, problem: str) -> None:
    with pytest.raises(HandlerSignatureError, match=problem):
        check_raw_handler(handler)


def test_the_error_is_a_type_error_and_an_sqsx_error() -> None:
    assert issubclass(HandlerSignatureError, TypeError)
    assert issubclass(HandlerSignatureError, SqsxError)


def test_queue_refuses_at_registration_and_keeps_the_earlier_handler(sqs_client: Any) -> None:
    # Given a queue with a good handler for "t"
    queue = Queue(url="http://127.0.0.1:1/000000000000/q", sqs_client=sqs_client)
    queue.add_task_handler("t", context_only)

    # When a handler without a context parameter is registered for "t" and "u"
    with pytest.raises(TypeError, match=r"task 't'.*no positional parameter"):
        queue.add_task_handler("t", only_kwargs)
    with pytest.raises(HandlerSignatureError):
        queue.add_task_handler("u", lambda: None)

    # Then nothing changed
    assert queue.task_names == ["t"]
    assert queue.dispatcher.registry.get("t") is context_only  # type: ignore[attr-defined]


def test_raw_queue_refuses_a_handler_that_cannot_take_two_arguments(sqs_client: Any) -> None:
    url = "http://127.0.0.1:1/000000000000/q"
    with pytest.raises(TypeError, match=r"raw_one .*fn\(queue_url, sqs_message\)"):
        RawQueue(url, raw_one, sqs_client)
    assert RawQueue(url, raw_coroutine, sqs_client).url == url
