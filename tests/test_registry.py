"""The task-name -> handler registry: pure unit tests, no server."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sqsx.registry import HandlerRegistry


def first(context: Any) -> str:
    return "first"


def second(context: Any) -> str:
    return "second"


def test_register_get_replace_unregister() -> None:
    registry = HandlerRegistry()
    assert registry.get("t") is None

    registry.register("t", first)
    assert registry.get("t") is first

    registry.register("t", second)
    assert registry.get("t") is second

    assert registry.unregister("t") is True
    assert registry.get("t") is None
    assert registry.unregister("t") is False


def test_names_are_sorted() -> None:
    registry = HandlerRegistry()
    for name in ("b", "c", "a"):
        registry.register(name, first)
    assert registry.names() == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("name", "handler", "error"),
    [
        pytest.param("", first, ValueError, id="empty-name"),
        pytest.param(None, first, ValueError, id="name-not-str"),
        pytest.param("t", "not callable", TypeError, id="handler-not-callable"),
    ],
)
def test_register_refuses_bad_input(name: Any, handler: Any, error: type[Exception]) -> None:
    registry = HandlerRegistry()
    with pytest.raises(error):
        registry.register(name, handler)
    assert registry.names() == []


def test_concurrent_registration_loses_nothing_and_readers_see_whole_maps() -> None:
    # Given 8 writer threads registering 200 names each, and a reader looping meanwhile
    registry = HandlerRegistry()
    registry.register("always", first)
    start = threading.Barrier(9)
    writers_done = threading.Event()
    reader_errors: list[str] = []

    def write(worker: int) -> None:
        start.wait(10)
        for i in range(200):
            registry.register(f"w{worker}-{i}", second)

    def read() -> None:
        start.wait(10)
        previous = 0
        while not writers_done.is_set():
            names = registry.names()
            if registry.get("always") is not first:
                reader_errors.append("lost the first handler")
            if len(names) < previous:
                reader_errors.append(f"map shrank from {previous} to {len(names)}")
            previous = len(names)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    reader = threading.Thread(target=read)
    for thread in [*threads, reader]:
        thread.start()

    # When they all finish
    for thread in threads:
        thread.join(30)
    writers_done.set()
    reader.join(30)

    # Then every registration is there and the reader never saw a partial or shrinking map
    assert len(registry.names()) == 1 + 8 * 200
    assert all(registry.get(f"w{w}-{i}") is second for w in range(8) for i in range(200))
    assert reader_errors == []
