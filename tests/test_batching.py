"""BatchFlusher's schedule, with a scripted ``send`` (the calls themselves are proven against
the server in tests/test_engine.py and tests/fault/test_fault_entries.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import pytest
from conftest import wait_until

from sqsx.batching import MAX_ATTEMPTS, BatchFlusher
from sqsx.sqs import BatchEntry, EntryFailure

URL = "http://127.0.0.1/q"


class ScriptedSqs:
    """Records each call's entries (with the time) and refuses entries per ``refuse``."""

    def __init__(self, refuse: Callable[[BatchEntry], EntryFailure | None] = lambda e: None):
        self.calls: list[tuple[float, list[str]]] = []
        self._refuse = refuse
        self._lock = threading.Lock()

    def send(self, entries: Sequence[BatchEntry]) -> list[EntryFailure]:
        with self._lock:
            self.calls.append((time.monotonic(), [e.message_id for e in entries]))
        return [f for f in map(self._refuse, entries) if f is not None]

    def sent_at(self, message_id: str) -> list[float]:
        with self._lock:
            return [at for at, ids in self.calls if message_id in ids]


def _refuse(message_id: str, code: str, *, sender_fault: bool = False) -> Callable[..., object]:
    def refuse(entry: BatchEntry) -> EntryFailure | None:
        if entry.message_id != message_id:
            return None
        return EntryFailure(entry, code, "scripted", sender_fault)

    return refuse


def _ticking(flusher: BatchFlusher, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        while not stop.wait(0.01):
            flusher.tick()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_an_entry_waiting_for_its_retry_never_delays_a_first_attempt() -> None:
    # Given an entry SQS refuses every time (InternalError), retried with growing delays
    sqs = ScriptedSqs(_refuse("bad", "InternalError"))  # type: ignore[arg-type]
    flusher = BatchFlusher("DeleteMessageBatch", sqs.send, URL, max_delay=0.05, workers=1)
    stop = threading.Event()
    _ticking(flusher, stop)
    try:
        flusher.add(BatchEntry("bad", "h-bad"))
        assert wait_until(lambda: len(sqs.sent_at("bad")) >= 4, timeout=10)

        # When other entries are added while it waits for its next, longer, retry
        added = {}
        for i in range(5):
            added[f"ok{i}"] = time.monotonic()
            flusher.add(BatchEntry(f"ok{i}", f"h-ok{i}"))
            time.sleep(0.1)
        assert wait_until(lambda: all(sqs.sent_at(m) for m in added), timeout=10)
    finally:
        stop.set()
        flusher.close(time.monotonic() + 1)

    # Then each was sent within its own max_delay (plus a tick), not after the retry
    waits = [sqs.sent_at(m)[0] - at for m, at in added.items()]
    assert max(waits) < 0.5, waits
    assert all(len(sqs.sent_at(m)) == 1 for m in added)


@pytest.mark.parametrize(
    ("code", "sender_fault"),
    [
        pytest.param("ReceiptHandleIsInvalid", True, id="invalid-handle"),
        pytest.param("ReceiptHandleIsInvalid", False, id="invalid-handle-no-sender-flag"),
        pytest.param("MessageNotInflight", True, id="not-in-flight"),
    ],
)
def test_a_stale_receipt_handle_is_dropped_at_once_with_one_line(
    code: str, sender_fault: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Given SQS refusing one entry because its receipt handle is no longer valid
    sqs = ScriptedSqs(_refuse("stale", code, sender_fault=sender_fault))  # type: ignore[arg-type]
    flusher = BatchFlusher("DeleteMessageBatch", sqs.send, URL, max_delay=0.0, workers=1)

    # When it is sent with another, and the flusher closes
    with caplog.at_level(logging.INFO, logger="sqsx.batching"):
        flusher.add(BatchEntry("stale", "h1"))
        flusher.add(BatchEntry("fine", "h2"))
        flusher.tick()
        assert flusher.close(time.monotonic() + 5) == 0

    # Then it was sent once, never retried, and one line names it and the code
    assert len(sqs.sent_at("stale")) == 1
    lines = [r for r in caplog.records if "stale" in r.getMessage()]
    assert len(lines) == 1
    assert code in lines[0].getMessage() and "dropped" in lines[0].getMessage()
    assert lines[0].levelno == logging.WARNING


def test_a_refused_entry_is_given_up_after_max_attempts_with_an_error(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an entry SQS refuses every time, and retry delays shortened for the test
    monkeypatch.setattr("sqsx.batching.retry_delay", lambda failures: 0.01)
    sqs = ScriptedSqs(_refuse("bad", "InternalError"))  # type: ignore[arg-type]
    flusher = BatchFlusher("DeleteMessageBatch", sqs.send, URL, max_delay=0.0, workers=1)
    stop = threading.Event()
    _ticking(flusher, stop)

    # When it has been tried as often as the flusher allows
    with caplog.at_level(logging.ERROR, logger="sqsx.batching"):
        flusher.add(BatchEntry("bad", "h1"))
        assert wait_until(lambda: flusher.pending() == 0, timeout=10)
        stop.set()
        flusher.close(time.monotonic() + 1)

    # Then it was sent exactly MAX_ATTEMPTS times, and one ERROR line says it gave up
    assert len(sqs.sent_at("bad")) == MAX_ATTEMPTS
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert gave_up == [
        f"DeleteMessageBatch gave up after {MAX_ATTEMPTS} attempts (InternalError) "
        f"message_id=bad queue_url={URL}"
    ]


def test_close_returns_by_its_deadline_when_a_call_never_returns() -> None:
    # Given a send that blocks until released (an endpoint that never answers)
    release = threading.Event()

    def hung(entries: Sequence[BatchEntry]) -> list[EntryFailure]:
        release.wait(30)
        return []

    flusher = BatchFlusher("DeleteMessageBatch", hung, URL, max_delay=0.0, workers=2)
    for i in range(3):
        flusher.add(BatchEntry(f"m{i}", f"h{i}"))
    flusher.tick()

    # When it is closed with a 0.3 s deadline
    started = time.monotonic()
    unconfirmed = flusher.close(started + 0.3)
    took = time.monotonic() - started
    release.set()

    # Then it returns on time, counting the three entries SQS never confirmed, and the
    # thread stuck in the call is a daemon (the interpreter does not wait for it at exit)
    assert took < 1.0
    assert unconfirmed == 3
    stuck = [t for t in threading.enumerate() if t.name.startswith("sqsx-DeleteMessageBatch")]
    assert stuck and all(t.daemon for t in stuck)


def test_close_stops_waiting_at_once_when_aborted() -> None:
    # Given a send that never returns and a flusher closing with a long deadline
    release = threading.Event()
    flusher = BatchFlusher(
        "ChangeMessageVisibilityBatch",
        lambda entries: [] if release.wait(30) else [],  # noqa: RUF034 - blocks, then []
        URL,
        max_delay=0.0,
        workers=1,
    )
    flusher.add(BatchEntry("m", "h", 0))
    flusher.tick()
    abort = threading.Event()
    threading.Timer(0.2, abort.set).start()

    # When the abort event is set (a second stop request)
    started = time.monotonic()
    unconfirmed = flusher.close(started + 20, abort)
    release.set()

    # Then close returns right after it
    assert time.monotonic() - started < 1.0
    assert unconfirmed == 1
