"""An embedded SQS for local development and tests: moto's server on 127.0.0.1.

Needs the ``local`` extra (``pip install 'sqsx[local]'``). Only the CLI and tests import
this module; nothing in the runtimes does.

Two adjustments make programs written for ElasticMQ run unchanged:

- requests signed for a region moto does not know (ElasticMQ users sign for
  ``elasticmq``) are served as ``us-east-1``;
- the account is ``000000000000``, so ``http://localhost:9324/000000000000/NAME`` URLs
  resolve.
"""

from __future__ import annotations

import errno
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["DEFAULT_ACCOUNT_ID", "DEFAULT_PORT", "LocalSqs", "LocalSqsUnavailable"]

#: ElasticMQ's port, which local SQS users already know.
DEFAULT_PORT = 9324
#: ElasticMQ's account id in queue URLs.
DEFAULT_ACCOUNT_ID = "000000000000"
_FALLBACK_REGION = "us-east-1"
_SCOPE = re.compile(r"(Credential=[^/,\s]+/\d{8}/)([^/,\s]+)(/)")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LocalSqsUnavailable(ImportError):
    """moto's server is not installed."""


class _RegionAndAccount:
    """WSGI middleware: unknown signing regions become us-east-1; a fixed account id."""

    def __init__(self, app: WsgiApp, regions: frozenset[str], account_id: str) -> None:
        self._app = app
        self._regions = regions
        self._account_id = account_id

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        authorization = environ.get("HTTP_AUTHORIZATION")
        if authorization:
            environ["HTTP_AUTHORIZATION"] = _SCOPE.sub(self._known_region, authorization, 1)
        environ.setdefault("HTTP_X_MOTO_ACCOUNT_ID", self._account_id)
        return self._app(environ, start_response)

    def _known_region(self, match: re.Match[str]) -> str:
        region = match.group(2)
        if region not in self._regions:
            region = _FALLBACK_REGION
        return f"{match.group(1)}{region}{match.group(3)}"


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
            LocalSqsUnavailable: moto's server is not installed.
            OSError: the port is taken (``errno.EADDRINUSE``).
        """
        try:
            import boto3
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )
            from werkzeug.serving import make_server
        except ImportError as err:
            raise LocalSqsUnavailable(
                "the embedded SQS needs moto's server: pip install 'sqsx[local]'"
            ) from err
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
        regions = frozenset(boto3.session.Session().get_available_regions("sqs"))
        app = _RegionAndAccount(
            DomainDispatcherApplication(create_backend_app), regions, self._account_id
        )
        try:
            self._server = make_server(
                "127.0.0.1", self._port, app, threaded=True, request_handler=MotoRequestHandler
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
