"""A real SQS server for the head-to-head, counting every SQS call it serves by operation.

``python -m bench.peers.server --port-file PATH`` runs moto's server in this process;
with ``--upstream URL`` it is instead a counting reverse proxy in front of another server
(LocalStack, in its own process). Either way it binds 127.0.0.1 on a free port, writes the
port to ``PATH`` once it listens, and serves until SIGTERM. ``GET /_bench/calls`` answers
the counts so far as JSON (that request is not counted). The operation is read
where the SDKs put it: the ``X-Amz-Target`` header of the JSON protocol
(``AmazonSQS.ReceiveMessage``, boto3 since 1.31) or the ``Action`` field of the query
protocol (in the URL or the form body), so any client is counted the same way.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import io
import json
import logging
import signal
import threading
import urllib.parse
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
            return str(target).rpartition(".")[2]
        action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
        if action:
            return str(action[0])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)  # moto reads the body again
        action = parse_qs(raw.decode("utf-8", "replace")).get("Action")
        return action[0] if action else "unknown"


class Proxy:
    """WSGI app forwarding each request to ``upstream`` over one keep-alive connection per
    thread, and its answer back unchanged."""

    _HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._local = threading.local()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        path = environ.get("PATH_INFO", "/")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key != "HTTP_CONNECTION"
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):  # a kept-alive connection the upstream closed: once more
            connection = self._connection(fresh=attempt == 2)
            try:
                connection.request(environ["REQUEST_METHOD"], path, body, headers)
                answer = connection.getresponse()
                payload = answer.read()
                break
            except (http.client.HTTPException, OSError):
                if attempt == 2:
                    raise
        start_response(
            f"{answer.status} {answer.reason}",
            [(k, v) for k, v in answer.getheaders() if k.lower() not in self._HOP_BY_HOP]
            + [("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _connection(self, *, fresh: bool) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
            connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
            self._local.connection = connection
        return connection


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True, type=Path)
    parser.add_argument("--upstream", help="count in front of this server instead of moto")
    args = parser.parse_args(argv)
    from werkzeug.serving import WSGIRequestHandler, make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per call
    handler: type[WSGIRequestHandler] = WSGIRequestHandler
    if args.upstream:
        app = CountingApp(Proxy(args.upstream))
    else:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        app = CountingApp(DomainDispatcherApplication(create_backend_app))
        handler = MotoRequestHandler
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    args.port_file.write_text(str(server.server_address[1]))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
