"""A queue's settings, checked without loading pydantic when they are plainly valid.

Importing and building pydantic models costs tens of milliseconds, paid on every Lambda
cold start. Values that pydantic would accept unchanged (exact ints within their bounds, a
plain http(s) URL, a known policy) are taken as they are; anything else goes through
``sqsx.options.QueueOptions``, so a bad value still raises ``ConfigurationError``
naming the field and the bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqsx.backoff import MAX_VISIBILITY_TIMEOUT_SECONDS
from sqsx.codec import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["QueueSettings", "queue_settings"]

_PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::(?P<port>[0-9]{1,5}))?(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?"
)
_POLICIES = ("retry", "delete")


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Validated queue settings (see ``BaseQueue`` for their meaning and units)."""

    url: str
    min_backoff_seconds: int
    max_backoff_seconds: int
    max_message_bytes: int
    poison_policy: str


def queue_settings(**values: Any) -> QueueSettings:
    """Validate ``values`` (the ``QueueSettings`` fields).

    Raises:
        ConfigurationError: a value is out of bounds; the error names it.
    """
    if _plainly_valid(values):
        return QueueSettings(**values)
    from sqsx.options import QueueOptions

    return QueueSettings(**QueueOptions(**values).model_dump())


def _plainly_valid(values: dict[str, Any]) -> bool:
    low, high = values.get("min_backoff_seconds"), values.get("max_backoff_seconds")
    size = values.get("max_message_bytes")
    if not all(type(v) is int for v in (low, high, size)):
        return False
    assert isinstance(low, int) and isinstance(high, int) and isinstance(size, int)
    if not 0 <= low <= high <= MAX_VISIBILITY_TIMEOUT_SECONDS:
        return False
    if not 1 <= size <= DEFAULT_MAX_MESSAGE_BYTES or values.get("poison_policy") not in _POLICIES:
        return False
    url = values.get("url")
    match = _PLAIN_URL.fullmatch(url) if isinstance(url, str) else None
    return match is not None and int(match.group("port") or 0) <= 65_535
