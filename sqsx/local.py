"""An embedded SQS for local development and tests: moto's server on 127.0.0.1.

Needs the ``local`` extra (``pip install 'sqsx[local]'``). Only the CLI and tests import
this module; nothing in the runtimes does.

Three adjustments; the first two make programs written for ElasticMQ run unchanged:

- one set of queues serves every region: moto keeps queues per signing region, so every
  request (ElasticMQ users sign for ``elasticmq``, others for their ``AWS_REGION``) is
  served as ``us-east-1``, as ElasticMQ, which ignores the region, does;
- the account is ``000000000000``, so ``http://localhost:9324/000000000000/NAME`` URLs
  resolve;
- the changes to a queue's messages are made one at a time: moto serves each request on
  its own thread and scans and rewrites a queue's message list without a lock, so two
  concurrent ReceiveMessage calls could both return the same message, and a DeleteMessage
  could drop a message sent at the same moment. SQS keeps a received message from other
  consumers for its visibility timeout
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html);
  a long poll still waits outside the lock, so receivers do not queue behind each other.

Works with every moto 5 (``moto[server]>=5.0,<6``): it uses moto's WSGI application
(``DomainDispatcherApplication`` and ``create_backend_app``, in every 5.x) and moto's own
request handler where there is one (5.2.5 added ``MotoRequestHandler``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqsx.exceptions import SqsxError

__all__ = ["DEFAULT_ACCOUNT_ID", "DEFAULT_PORT", "LocalSqs", "LocalSqsUnavailable"]

#: ElasticMQ's port, which local SQS users already know.
DEFAULT_PORT = 9324
#: ElasticMQ's account id in queue URLs.
DEFAULT_ACCOUNT_ID = "000000000000"
_REGION = "us-east-1"
_SCOPE = re.compile(r"(Credential=[^/,\s]+/\d{8}/)([^/,\s]+)(/)")
_MIN_MOTO = (5, 0)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# moto's SQS backend methods that change a queue's messages; ReceiveMessage is wrapped apart
_CHANGES = (
    "send_message",
    "send_message_batch",
    "delete_message",
    "delete_message_batch",
    "change_message_visibility",
    "change_message_visibility_batch",
    "purge_queue",
)
_QUEUE_LOCK = threading.RLock()


class LocalSqsUnavailable(SqsxError, ImportError):
    """moto's server is not installed, or the installed moto is not one sqsx can run."""


class _OneRegion:
    """WSGI middleware: every request is served as signed for us-east-1; a fixed account."""

    def __init__(self, app: WsgiApp, account_id: str) -> None:
        self._app = app
        self._account_id = account_id

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        authorization = environ.get("HTTP_AUTHORIZATION")
        if authorization:
            environ["HTTP_AUTHORIZATION"] = _SCOPE.sub(rf"\g<1>{_REGION}\g<3>", authorization, 1)
        environ.setdefault("HTTP_X_MOTO_ACCOUNT_ID", self._account_id)
        return self._app(environ, start_response)


def _moto_server() -> tuple[WsgiApp, Callable[..., Any], Any]:
    """moto's WSGI application, werkzeug's ``make_server`` and the request handler to use.

    Raises:
        LocalSqsUnavailable: moto is missing, too old, or installed without ``[server]``;
            each says so, with the command that fixes it.
    """
    try:
        import moto
    except ImportError as err:
        raise LocalSqsUnavailable(
            "the embedded SQS needs moto, which is not installed: pip install 'sqsx[local]'"
        ) from err
    version = str(getattr(moto, "__version__", "unknown"))
    if _version_tuple(version) < _MIN_MOTO:
        raise LocalSqsUnavailable(
            f"moto {version} is too old for the embedded SQS, which needs moto 5 "
            "(moto[server]>=5.0,<6): pip install --upgrade 'sqsx[local]'"
        )
    try:
        from moto.moto_server import werkzeug_app
        from werkzeug.serving import make_server
    except ImportError as err:
        raise LocalSqsUnavailable(
            f"moto {version} is installed without its server ({err.name or err} is missing): "
            "pip install 'sqsx[local]' (it installs moto[server])"
        ) from err
    try:
        app = werkzeug_app.DomainDispatcherApplication(werkzeug_app.create_backend_app)
    except AttributeError as err:  # a moto whose server API moved (6 and later)
        raise LocalSqsUnavailable(
            f"moto {version} has no DomainDispatcherApplication/create_backend_app: the "
            "embedded SQS runs on moto 5 (pip install 'moto[server]>=5.0,<6')"
        ) from err
    _serialize_message_changes()
    # Without it (moto before 5.2.5) werkzeug's handler serves; it differs only for S3
    # metadata headers with underscores, which SQS does not use.
    return app, make_server, getattr(werkzeug_app, "MotoRequestHandler", None)


def _serialize_message_changes() -> None:
    """Make moto's changes to queue messages one at a time (once per process)."""
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, "_sqsx_serialized", False):
        return
    for name in _CHANGES:
        if hasattr(SQSBackend, name):
            setattr(SQSBackend, name, _locked(getattr(SQSBackend, name)))
    setattr(SQSBackend, "receive_message", _receive_locked(SQSBackend.receive_message))  # noqa: B010
    setattr(SQSBackend, "_sqsx_serialized", True)  # noqa: B010


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _QUEUE_LOCK:
            return method(*args, **kwargs)

    return call


def _receive_locked(receive: Callable[..., Any]) -> Callable[..., Any]:
    """ReceiveMessage as scans without waiting, each under the lock, with the long poll's
    waits between them outside it."""

    @functools.wraps(receive)
    def call(
        backend: Any, queue_name: str, count: int, wait_seconds: int, *args: Any, **kwargs: Any
    ) -> Any:
        deadline = time.monotonic() + (wait_seconds or 0)
        while True:
            with _QUEUE_LOCK:
                found = receive(backend, queue_name, count, 0, *args, **kwargs)
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            began = time.monotonic()
            wait = getattr(backend.get_queue(queue_name), "wait_for_messages", None)
            if wait is not None:
                wait(min(left, 1.0))
            if time.monotonic() - began < 0.005:
                # no wait_for_messages (moto before 5.1), or visible messages none of which
                # can be received (their FIFO group is in flight): pause, do not spin
                time.sleep(min(left, 0.02))

    return call


def _version_tuple(version: str) -> tuple[int, ...]:
    """``(5, 2)`` for ``"5.2.5"`` or ``"5.2.0.dev3"``; ``()`` when unreadable."""
    numbers = re.findall(r"\d+", version)[:2]
    return tuple(int(n) for n in numbers)


class LocalSqs:
    """moto's SQS server in a background thread, bound to 127.0.0.1.

    Args:
        port: TCP port (default 9324; 0 picks a free one).
        account_id: the account in queue URLs (default ``000000000000``).

    Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(self, port: int = DEFAULT_PORT, *, account_id: str = DEFAULT_ACCOUNT_ID) -> None:
        self._port = port
        self._account_id = account_id
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("LocalSqs is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def start(self) -> LocalSqs:
        """Bind 127.0.0.1 and serve in a daemon thread.

        Raises:
            LocalSqsUnavailable: moto is not installed, older than 5, or installed
                without its server; the message says which, and the fix.
            OSError: the port is taken (``errno.EADDRINUSE``).
        """
        moto_app, make_server, request_handler = _moto_server()
        # No access log per request, and no werkzeug lines before a port-taken error
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        app = _OneRegion(moto_app, self._account_id)
        try:
            # werkzeug prints its own lines about a taken port before exiting: ours suffices
            with contextlib.redirect_stderr(io.StringIO()):
                self._server = make_server(
                    "127.0.0.1", self._port, app, threaded=True, request_handler=request_handler
                )
        except SystemExit as err:  # werkzeug exits when the port is taken
            raise OSError(
                errno.EADDRINUSE, f"port {self._port} on 127.0.0.1 is already in use"
            ) from err
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sqsx-local-sqs", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalSqs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
