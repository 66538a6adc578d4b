"""The SQS client configuration sqsx recommends: timeouts suited to long polling.

boto3 takes timeouts per client, not per call, so one client serves the long polls (up to
20 s of waiting) and the batch calls alike. ``client_config`` bounds every call; the
worker's stop does not wait for a call that outlives it (its calls run on daemon threads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config

__all__ = [
    "CLIENT_ATTEMPTS",
    "CONNECT_TIMEOUT_SECONDS",
    "READ_TIMEOUT_MARGIN_SECONDS",
    "client_config",
    "read_timeout_problem",
]

#: Connect timeout of ``client_config``, in seconds.
CONNECT_TIMEOUT_SECONDS = 5.0
#: ``client_config``'s read timeout exceeds the long poll by this many seconds.
READ_TIMEOUT_MARGIN_SECONDS = 10.0
#: Tries per call in ``client_config`` (botocore's "standard" retry mode).
CLIENT_ATTEMPTS = 3


def client_config(*, polling_wait_seconds: int = 20, max_pool_connections: int = 10) -> Config:
    """The ``botocore.config.Config`` sqsx recommends for its SQS client.

    A 5 s connect timeout, a read timeout of the long poll plus 10 s (30 s for the default
    20 s poll: a ReceiveMessage must be allowed to wait ``WaitTimeSeconds``; botocore's own
    default is 60 s), and 3 tries per call in botocore's "standard" retry mode. boto3 takes
    timeouts per client, not per call, so one client serves long polls and batch calls
    alike; the worker's stop does not wait for a call that hangs (see the README).

    Args:
        polling_wait_seconds: the longest ``WaitTimeSeconds`` the client will use (0 to 20).
        max_pool_connections: connections kept open (at least the calls made at once).
    """
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=polling_wait_seconds + READ_TIMEOUT_MARGIN_SECONDS,
        retries={"mode": "standard", "total_max_attempts": CLIENT_ATTEMPTS},
        max_pool_connections=max_pool_connections,
    )


def read_timeout_problem(client: Any, polling_wait_seconds: int) -> str | None:
    """Why ``client``'s read timeout cannot serve a long poll of ``polling_wait_seconds``
    (it must be longer), or ``None`` when it can or is unknown."""
    timeout = getattr(getattr(getattr(client, "meta", None), "config", None), "read_timeout", None)
    if not isinstance(timeout, int | float) or timeout > polling_wait_seconds:
        return None
    return (
        f"the SQS client's read_timeout ({timeout}s) is not longer than the long poll "
        f"({polling_wait_seconds}s): every empty receive times out; use "
        "sqsx.timeouts.client_config() or a read_timeout above WaitTimeSeconds"
    )
