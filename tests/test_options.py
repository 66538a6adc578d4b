"""Configuration: the seed's signatures and defaults, and validation errors that name the
field and the bound. No server: validation happens before any SQS call (the hook checks)."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from sqsx import ConfigurationError, ConsumeOptions, Queue, RawQueue
from sqsx.options import QueueOptions

URL = "http://127.0.0.1:9/000000000000/options"


def handler(queue_url: str, sqs_message: Any) -> None:
    """A RawQueue handler."""


# -- the seed's signatures -----------------------------------------------------------------


def test_queue_takes_the_seeds_positional_arguments_and_defaults(offline_client: Any) -> None:
    queue = Queue(URL, offline_client)
    assert (queue.url, queue.sqs_client) == (URL, offline_client)
    assert (queue.min_backoff_seconds, queue.max_backoff_seconds) == (30, 900)
    assert queue.max_message_bytes == 1_048_576

    queue = Queue(URL, offline_client, 5, 50)
    assert (queue.min_backoff_seconds, queue.max_backoff_seconds) == (5, 50)


def test_raw_queue_takes_the_seeds_positional_arguments(offline_client: Any) -> None:
    queue = RawQueue(URL, handler, offline_client, 0, 43_200)
    assert (queue.min_backoff_seconds, queue.max_backoff_seconds) == (0, 43_200)
    queue = RawQueue(url=URL, message_handler_function=handler, sqs_client=offline_client)
    assert (queue.min_backoff_seconds, queue.max_backoff_seconds) == (30, 900)


def test_consume_defaults_are_the_seeds() -> None:
    options = ConsumeOptions()
    assert (
        options.max_messages,
        options.max_threads,
        options.wait_seconds,
        options.polling_wait_seconds,
        options.run_forever,
    ) == (1, 1, 10, 10, True)
    assert QueueOptions(url=URL).poison_policy == "retry"


@pytest.mark.parametrize(
    "client",
    [pytest.param(None, id="none"), pytest.param(object(), id="object")],
)
def test_a_non_client_is_refused(client: Any) -> None:
    with pytest.raises(TypeError, match="sqs_client"):
        Queue(URL, client)


def test_raw_queue_needs_a_callable_handler(offline_client: Any) -> None:
    with pytest.raises(TypeError, match="message_handler_function"):
        RawQueue(URL, "not callable", offline_client)  # type: ignore[arg-type]


# -- queue options -------------------------------------------------------------------------

QUEUE_ERRORS = [
    # keyword arguments -> texts the error must contain (the field, the bound)
    pytest.param({"url": "not a url"}, ["url", "valid URL"], id="url-not-a-url"),
    pytest.param({"url": "ftp://host/000000000000/q"}, ["url", "'http' or 'https'"], id="url-ftp"),
    pytest.param({"url": ""}, ["url"], id="url-empty"),
    pytest.param(
        {"min_backoff_seconds": -1},
        ["min_backoff_seconds", "greater than or equal to 0"],
        id="negative-min",
    ),
    pytest.param(
        {"max_backoff_seconds": -1},
        ["max_backoff_seconds", "greater than or equal to 0"],
        id="negative-max",
    ),
    pytest.param(
        {"min_backoff_seconds": 100, "max_backoff_seconds": 10},
        ["min_backoff_seconds (100) must not exceed max_backoff_seconds (10)"],
        id="min-above-max",
    ),
    pytest.param(
        {"max_backoff_seconds": 43_201},
        ["max_backoff_seconds", "less than or equal to 43200"],
        id="max-above-43200",
    ),
    pytest.param(
        {"min_backoff_seconds": 43_201, "max_backoff_seconds": 43_201},
        ["min_backoff_seconds", "less than or equal to 43200"],
        id="min-above-43200",
    ),
    pytest.param(
        {"max_message_bytes": 0},
        ["max_message_bytes", "greater than or equal to 1"],
        id="size-zero",
    ),
    pytest.param(
        {"max_message_bytes": 1_048_577},
        ["max_message_bytes", "less than or equal to 1048576"],
        id="size-above-1mib",
    ),
    pytest.param({"poison_policy": "drop"}, ["poison_policy", "'retry' or 'delete'"], id="poison"),
]


@pytest.mark.parametrize(("kwargs", "texts"), QUEUE_ERRORS)
@pytest.mark.parametrize("kind", [pytest.param("Queue"), pytest.param("RawQueue")])
def test_bad_queue_options_name_the_field_and_the_bound(
    offline_client: Any, kind: str, kwargs: dict[str, Any], texts: list[str]
) -> None:
    arguments = {"url": URL, "sqs_client": offline_client, **kwargs}
    if kind == "RawQueue":
        arguments["message_handler_function"] = handler
    cls = Queue if kind == "Queue" else RawQueue
    with pytest.raises(ConfigurationError) as info:
        cls(**arguments)
    assert isinstance(info.value, ValueError)  # as sqsx 0.7 callers catch it
    assert isinstance(info.value.__cause__, pydantic.ValidationError)
    message = str(info.value)
    for text in texts:
        assert text in message


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"min_backoff_seconds": 0, "max_backoff_seconds": 0}, id="zero-zero"),
        pytest.param({"min_backoff_seconds": 43_200, "max_backoff_seconds": 43_200}, id="cap"),
        pytest.param({"max_message_bytes": 1}, id="one-byte-limit"),
        pytest.param({"url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q"}, id="aws-url"),
        pytest.param({"url": "http://localhost:9324/000000000000/tests"}, id="elasticmq-url"),
    ],
)
def test_bounds_themselves_are_accepted(offline_client: Any, kwargs: dict[str, Any]) -> None:
    arguments = {"url": URL, "sqs_client": offline_client, **kwargs}
    queue = Queue(**arguments)
    for name, value in kwargs.items():
        assert getattr(queue, name) == value


# -- consume options -----------------------------------------------------------------------

CONSUME_ERRORS = [
    pytest.param({"max_messages": 0}, "greater than or equal to 1", id="max-messages-0"),
    pytest.param({"max_messages": 11}, "less than or equal to 10", id="max-messages-11"),
    pytest.param({"max_threads": 0}, "greater than or equal to 1", id="max-threads-0"),
    pytest.param({"wait_seconds": -1}, "greater than or equal to 0", id="wait-negative"),
    pytest.param({"polling_wait_seconds": 21}, "less than or equal to 20", id="polling-21"),
    pytest.param({"polling_wait_seconds": -1}, "greater than or equal to 0", id="polling-neg"),
    pytest.param({"visibility_timeout": 0}, "greater than or equal to 1", id="visibility-0"),
    pytest.param(
        {"visibility_timeout": 43_201}, "less than or equal to 43200", id="visibility-43201"
    ),
    pytest.param({"stop_timeout": -1}, "greater than or equal to 0", id="stop-timeout-neg"),
]


@pytest.mark.parametrize(("kwargs", "bound"), CONSUME_ERRORS)
def test_bad_consume_options_raise_before_any_sqs_call(
    offline_client: Any, kwargs: dict[str, Any], bound: str
) -> None:
    queue = Queue(URL, offline_client)
    with pytest.raises(ConfigurationError) as info:
        queue.consume_messages(enable_signal_to_exit_gracefully=False, **kwargs)
    [field] = kwargs
    assert field in str(info.value)
    assert bound in str(info.value)


def test_consume_options_are_frozen_and_closed() -> None:
    options = ConsumeOptions(max_messages=10)
    with pytest.raises(pydantic.ValidationError):
        options.max_messages = 5  # type: ignore[misc]
    with pytest.raises(ConfigurationError, match="maxmessages"):
        ConsumeOptions(maxmessages=10)  # type: ignore[call-arg]
