"""Wire values cut to a bounded length before they reach a log line or an error text.

A producer controls task names, kwarg names, attribute names and data types, each up to
SQS's 1 MiB message size. Quoting them in full would let one message write a megabyte
into the logs; ``clip`` keeps the first ``MAX_SHOWN_CHARS`` characters and says how many
it left out.
"""

from __future__ import annotations

__all__ = ["MAX_SHOWN_CHARS", "clip", "shown"]

#: Characters of a wire value kept in a log line or an error text (then a marker).
MAX_SHOWN_CHARS = 120


def clip(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` if it has at most ``limit`` characters, else its first ``limit`` ones
    followed by ``...[+N chars]``."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[+{len(text) - limit} chars]"


def shown(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """``repr(value)`` for a log line, at most ``limit`` characters of it (plus the
    quotes), then ``...[N chars]`` with the value's full length when it was cut. Escapes
    count: a name of control characters is cut sooner than one of letters."""
    if not isinstance(value, str):
        return clip(repr(value), limit)
    text = repr(value[:limit])
    if len(value) <= limit and len(text) <= limit + 2:
        return text
    return f"{text[: limit + 2]}...[{len(value)} chars]"
