"""Run a Lambda handler on a sample event without Lambda or Docker.

``python -m sqsx_lambda invoke events/FILE.json --handler module:attr`` imports the
handler, calls it with the event and a Lambda-like context whose remaining time counts down
from ``--timeout-ms``, and prints the response JSON on stdout. Everything the function
prints or logs goes to stderr, as ``sam local invoke`` keeps logs apart from the response.
A handler that raises prints Lambda's error shape (``errorMessage``, ``errorType``) and
exits with status 1.

``--endpoint-url`` points boto3's SQS clients at a local server (``sqsx local``, or any
SQS-compatible endpoint) through ``AWS_ENDPOINT_URL_SQS``; it is set before the handler's
module is imported, so clients created at import time use it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LocalContext", "invoke", "load_handler", "main"]

#: The function timeout of the example app (template.yaml), in milliseconds.
DEFAULT_TIMEOUT_MS = 30_000


@dataclass
class LocalContext:
    """A stand-in for the Lambda context object, with the attributes Lambda's has.

    Args:
        timeout_ms: the function timeout; ``get_remaining_time_in_millis`` counts down from
            it, starting when the context is created (default 30000 ms).
        function_name: ``function_name`` (default ``sqsx-local``).
        memory_limit_in_mb: ``memory_limit_in_mb`` (default 128).
    """

    timeout_ms: int = DEFAULT_TIMEOUT_MS
    function_name: str = "sqsx-local"
    memory_limit_in_mb: int = 128
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_ms / 1000

    @property
    def invoked_function_arn(self) -> str:
        """``arn:aws:lambda:us-east-1:000000000000:function:NAME`` (a local placeholder)."""
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        """``/aws/lambda/NAME``."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """A stream name in Lambda's format."""
        return f"{time.strftime('%Y/%m/%d')}/[{self.function_version}]local"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the timeout (0 once it has passed)."""
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def load_handler(spec: str) -> Callable[..., Any]:
    """Import ``module:attr`` (``attr`` may be dotted) and return the callable.

    Raises:
        ValueError: ``spec`` is not ``module:attr``, or the attribute is not callable.
        ImportError: the module cannot be imported.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"--handler must look like module:attr, got {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as err:
            raise ValueError(f"{module_name} has no attribute {attribute!r}") from err
    if not callable(target):
        raise ValueError(f"{spec} is a {type(target).__name__}, not a callable")
    return target  # type: ignore[no-any-return]


def invoke(handler: Callable[..., Any], event: Any, context: Any = None) -> Any:
    """Call ``handler(event, context)`` as Lambda would (a fresh ``LocalContext`` by default)."""
    return handler(event, LocalContext() if context is None else context)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sqsx_lambda invoke ...``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m sqsx_lambda")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("invoke", help="run a handler on an event file, print the response")
    run.add_argument("event", help="event JSON file ('-' reads stdin)")
    run.add_argument("--handler", required=True, help="module:attr of the handler")
    run.add_argument("--endpoint-url", help="SQS endpoint for boto3 (e.g. http://127.0.0.1:9324)")
    run.add_argument(
        "--timeout-ms",
        type=int,
        default=DEFAULT_TIMEOUT_MS,
        help=f"function timeout in milliseconds (default {DEFAULT_TIMEOUT_MS})",
    )
    run.add_argument("--log-level", default="INFO", help="level of the root logger (default INFO)")
    args = parser.parse_args(argv)

    try:
        event = _read_event(args.event)
    except (OSError, ValueError) as err:
        parser.error(f"cannot read the event: {err}")
    _use_region(event)
    if args.endpoint_url:
        _use_endpoint(args.endpoint_url)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # the function's output is logs, as in Lambda
        response, status = _run(args.handler, event, args.timeout_ms)
    print(json.dumps(response, indent=2, default=str), file=stdout)
    return status


def _run(spec: str, event: Any, timeout_ms: int) -> tuple[Any, int]:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    handler: Any = None
    try:
        handler = load_handler(spec)
        return invoke(handler, event, LocalContext(timeout_ms=timeout_ms)), 0
    except Exception as err:  # reported the way Lambda reports a failed invocation
        logging.getLogger(__name__).exception("the invocation failed")
        return {"errorMessage": str(err), "errorType": type(err).__name__}, 1
    finally:
        close = getattr(handler, "close", None)
        if callable(close):
            close()


def _read_event(path: str) -> Any:
    if path == "-":
        return json.load(sys.stdin)
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _use_region(event: Any) -> None:
    """Lambda always sets ``AWS_REGION`` and ``AWS_DEFAULT_REGION``; where neither is set,
    use the region of the event's first record (``awsRegion``), else ``us-east-1``."""
    if os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
        return
    region = "us-east-1"
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list) and records and isinstance(records[0], dict):
        region = str(records[0].get("awsRegion") or region)
    os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region


def _use_endpoint(url: str) -> None:
    """Point boto3's SQS clients at ``url``; a local server needs some credentials, so
    placeholders are set where none are in the environment."""
    os.environ["AWS_ENDPOINT_URL_SQS"] = url
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        os.environ["AWS_ACCESS_KEY_ID"] = "local"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "local"
