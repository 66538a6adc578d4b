"""The visibility keeper's own rules (a recording client: the calls themselves are proven
against the local server in test_engine.py)."""

from __future__ import annotations

from typing import Any

from sqsx.backoff import MAX_VISIBILITY_TIMEOUT_SECONDS
from sqsx.message import Message
from sqsx.visibility import VisibilityKeeper


class Recorder:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def change_message_visibility_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.entries.extend(kwargs["Entries"])
        return {"Successful": [{"Id": e["Id"]} for e in kwargs["Entries"]], "Failed": []}


def _message(handle: str) -> Message:
    return Message(raw={}, message_id=handle, receipt_handle=handle, receive_count=1)


def test_a_backoff_never_reaches_past_twelve_hours_from_the_receive() -> None:
    # Given a message received almost 12 hours ago (moved back in time) and a fresh one
    client = Recorder()
    keeper = VisibilityKeeper(client, "http://127.0.0.1/q", visibility_timeout=30)  # type: ignore[arg-type]
    old, fresh = _message("old"), _message("fresh")
    keeper.hold(old)
    keeper.hold(fresh)
    keeper._leases["old"].first_received -= MAX_VISIBILITY_TIMEOUT_SECONDS - 600

    # When both are backed off by 900 s, and a release asks for 0
    keeper.change(old, 900)
    keeper.change(fresh, 900)
    keeper.change(_message("unheld"), 0)
    keeper.close(deadline=float("inf"))

    # Then the old one is capped below what is left of its 12 hours, the others are as asked
    timeouts = {e["ReceiptHandle"]: e["VisibilityTimeout"] for e in client.entries}
    assert 0 <= timeouts["old"] <= 600 - 60
    assert timeouts["fresh"] == 900
    assert timeouts["unheld"] == 0
