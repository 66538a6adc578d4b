"""moto's SQS server in its own process, counting every SQS call it serves by operation.

``python -m bench.peers.server --port-file PATH`` binds 127.0.0.1 on a free port, writes
the port to ``PATH`` once it listens, and serves until SIGTERM. ``GET /_bench/calls``
answers the counts so far as JSON (that request is not counted). The operation is read
where the SDKs put it: the ``X-Amz-Target`` header of the JSON protocol
(``AmazonSQS.ReceiveMessage``, boto3 since 1.31) or the ``Action`` field of the query
protocol (in the URL or the form body), so any client is counted the same way.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
CALLS_PATH = "/_bench/calls"


class CountingApp:
    """WSGI middleware: count each request's SQS operation, then hand it to ``app``."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == CALLS_PATH:
            with self._lock:
                body = json.dumps(dict(self.counts)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        operation = self._operation(environ)
        with self._lock:
            self.counts[operation] += 1
        return self._app(environ, start_response)

    @staticmethod
    def _operation(environ: dict[str, Any]) -> str:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            return str(target.rpartition(".")[2])
        action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
        if action:
            return action[0]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)  # moto reads the body again
        action = parse_qs(raw.decode("utf-8", "replace")).get("Action")
        return action[0] if action else "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True, type=Path)
    args = parser.parse_args(argv)
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per call
    app = CountingApp(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    args.port_file.write_text(str(server.server_address[1]))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
