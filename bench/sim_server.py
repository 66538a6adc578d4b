"""The simulated SQS (``bench.simsqs.SimulatedSqs``) served over HTTP, in a process of its own.

For benchmarks whose workers run in several processes: they share one queue through it, and
its work is not billed to any of them. It speaks the AWS JSON 1.0 protocol boto3 uses for SQS
(``X-Amz-Target: AmazonSQS.ReceiveMessage``, the request's members as the operation's
keyword arguments), on 127.0.0.1 only. Message attributes must be strings (``BinaryValue`` is
not converted). Unlike moto's server, a call costs the same at any queue depth.

Usage::

    python -m bench.sim_server --port-file PATH   # writes the port once it listens
"""

from __future__ import annotations

import argparse
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, ParamValidationError

from bench.simsqs import SimulatedSqs

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3's connection pool expects
    sqs: SimulatedSqs

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        method = getattr(self.sqs, _CAMEL.sub("_", operation).lower(), None)
        status = 200
        payload: dict[str, Any] = {}
        if method is None:
            status, payload = 400, {"__type": "InvalidAction", "message": operation}
        else:
            try:
                payload = dict(method(**request))
                payload.pop("ResponseMetadata", None)
            except ClientError as err:
                error = err.response.get("Error", {})
                status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
                payload = {"__type": error.get("Code"), "message": error.get("Message")}
            except (ParamValidationError, TypeError) as err:
                status, payload = 400, {"__type": "InvalidParameterValue", "message": str(err)}
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # one line per call: too many
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sim_server")
    parser.add_argument("--port-file", required=True, help="where to write the port")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    _Handler.sqs = SimulatedSqs(latency_seconds=0, endpoint_url=f"http://127.0.0.1:{port}")
    Path(args.port_file).write_text(str(port))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
