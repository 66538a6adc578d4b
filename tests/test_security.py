"""Security review, enforced (RELIABILITY.md, "Security review").

1. Nothing on the wire is unpickled or evaluated: no pickle/marshal/shelve/yaml loaders and
   no eval/exec/compile in sqsx or sqsx_lambda; dynamic imports only where the operator
   names the module on a command line.
2. Message bodies and credentials are never logged above DEBUG.
3. Every listener binds 127.0.0.1.
4. Task names are looked up in the registry, never imported.
"""

from __future__ import annotations

import ast
import base64
import json
import logging
import pickle
import sys
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from conftest import Consumer, lambda_event, wait_until

from sqsx import BaseQueue, NoRetry, Queue, RawQueue, Retry
from sqsx.codec import encode_kwargs, task_attributes
from sqsx.dispatch import Verdict
from sqsx.local import LocalSqs

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sqsx", "sqsx_lambda")

#: Modules that turn bytes into live objects or code.
_UNSAFE_MODULES = frozenset(
    {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle"}
)
_UNSAFE_CALLS = frozenset({"eval", "exec", "compile", "__import__"})
_YAML_LOADERS = frozenset({"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load"})
#: The only modules that import by name at run time: the operator names the module on the
#: command line (``sqsx worker app:queue``, ``python -m sqsx_lambda app.handler``). Message
#: content never reaches them.
_OPERATOR_IMPORTS = frozenset({"sqsx/cli/target.py", "sqsx_lambda/invoke.py"})

SENTINEL = "SENTINEL-7f3a9c-BODY"
SECRET = "SENTINEL-5e1d0b-SECRET"


def _sources() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            yield relative, ast.parse(path.read_text(), filename=relative)


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _findings(relative: str, tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        where = f"{relative}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        found += [f"{where} imports {n}" for n in names if n.split(".")[0] in _UNSAFE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in _UNSAFE_CALLS or name.split(".")[-1] in {"eval", "exec"}:
            found.append(f"{where} calls {name}")
        if name.startswith("yaml.") and name.split(".")[-1] in _YAML_LOADERS:
            found.append(f"{where} calls {name}")
        dynamic = name in {"importlib.import_module", "import_module", "importlib.__import__"}
        if dynamic and relative not in _OPERATOR_IMPORTS:
            found.append(f"{where} imports by name ({name})")
    return found


def test_nothing_in_the_packages_unpickles_evaluates_or_imports_by_name() -> None:
    sources = list(_sources())
    assert len(sources) >= 10, "the scan found too few modules to be looking at the packages"
    findings = [f for relative, tree in sources for f in _findings(relative, tree)]
    assert findings == []


def test_the_scan_catches_what_it_forbids() -> None:
    # Given a module that does every forbidden thing, Then each one is found
    bad = ast.parse(
        "import pickle\nfrom marshal import loads\nimport yaml\nimport importlib\n"
        "eval('1')\nexec('x=1')\nyaml.load(s)\nimportlib.import_module(n)\n__import__(n)\n"
    )
    assert len(_findings("sqsx/bad.py", bad)) == 7


def test_a_pickle_on_the_wire_is_rejected_not_loaded(tmp_path: Path) -> None:
    # Given a body that would run code if it were unpickled
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Booby(str(marker)))
    queue = Queue(url="http://127.0.0.1:1/000000000000/q", sqs_client=_NoSqs())
    queue.add_task_handler("work", lambda context, **kwargs: None)
    for body in (
        base64.urlsafe_b64encode(payload).decode(),
        base64.urlsafe_b64encode(json.dumps({"kwargs": payload.decode("latin-1")}).encode()),
    ):
        # When it is processed
        outcome = queue.process(_raw(body if isinstance(body, str) else body.decode(), "work"))
        # Then it is unprocessable, and nothing ran
        assert outcome.verdict is Verdict.UNPROCESSABLE
    assert not marker.exists()


class _Booby:
    """Writes a file when unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


class _NoSqs:
    """A client for queues used only through ``process`` (which makes no SQS call)."""

    def send_message(self, **kwargs: Any) -> Any:
        raise AssertionError("no SQS call expected")

    receive_message = delete_message_batch = send_message
    send_message_batch = change_message_visibility_batch = get_queue_attributes = send_message


def _raw(body: str, task_name: str | None, n: int = 0) -> dict[str, Any]:
    message: dict[str, Any] = {
        "MessageId": f"m-{n}",
        "ReceiptHandle": f"r-{n}",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": "1"},
    }
    if task_name is not None:
        message["MessageAttributes"] = task_attributes(task_name)
    return message


# -- task names are looked up, never imported --------------------------------------------------


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """An importable module that leaves a file behind if anything imports it."""
    name = f"sqsx_canary_{uuid.uuid4().hex}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\ndef run(context, **kw): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def test_task_names_are_looked_up_never_imported(canary: tuple[str, Path]) -> None:
    # Given tasks named after importable things, with no handler registered under the names
    module, marker = canary
    queue = Queue(url="http://127.0.0.1:1/000000000000/q", sqs_client=_NoSqs())
    queue.add_task_handler("work", lambda context, **kwargs: None)
    names = [module, f"{module}.run", f"{module}:run", "os.system", "builtins.eval", "__import__"]
    for n, name in enumerate(names):
        # When each is processed
        outcome = queue.process(_raw(encode_kwargs({"command": "id"}), name, n))
        # Then it is an unknown task, and nothing was imported
        assert outcome.verdict is Verdict.UNPROCESSABLE
        assert "no handler registered" in outcome.reason
    assert not marker.exists()
    assert module not in sys.modules


# -- nothing sensitive is logged above DEBUG ---------------------------------------------------


def _leaks(records: list[logging.LogRecord], level: int) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = [(r.levelno, formatter.format(r)) for r in records]
    return [text for lvl, text in texts if lvl >= level and (SENTINEL in text or SECRET in text)]


def _poison_bodies() -> list[tuple[str, str | None]]:
    """Bodies carrying the sentinel, each malformed in its own way, with their task name."""
    b64 = base64.urlsafe_b64encode
    return [
        (SENTINEL, "work"),
        (b64(SENTINEL.encode()).decode(), "work"),
        (b64(json.dumps({"args": [SENTINEL]}).encode()).decode(), "work"),
        (b64(json.dumps({"kwargs": [SENTINEL]}).encode()).decode(), "work"),
        (b64(json.dumps([SENTINEL]).encode()).decode(), "work"),
        (encode_kwargs({"task_id": "x", "extra": SENTINEL}), "work"),
        (encode_kwargs({"task_id": [SENTINEL]}), "typed"),
        (encode_kwargs({"task_id": SENTINEL}), "nobody"),
        (encode_kwargs({"task_id": SENTINEL}), None),
    ]


def test_bodies_and_credentials_never_reach_logs_above_debug(
    endpoint_url: str,
    make_queue: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a client whose secret key is a sentinel, and messages whose bodies carry one:
    # tasks that succeed, retry, fail, raise NoRetry; malformed bodies of every kind; raw
    # messages; and poison deleted under poison_policy="delete"
    caplog.set_level(logging.DEBUG)
    client = _with_secret(endpoint_url)
    task_url, raw_url, delete_url = make_queue("sec"), make_queue("sec-raw"), make_queue("sec-del")
    queues = [
        Queue(url=task_url, sqs_client=client, min_backoff_seconds=0, max_backoff_seconds=0),
        Queue(url=delete_url, sqs_client=client, poison_policy="delete"),
    ]
    for queue in queues:
        _register_sentinel_handlers(queue)
    raw = RawQueue(url=raw_url, message_handler_function=_raw_handler, sqs_client=client)
    for queue in queues:
        for behaviour in ("ok", "retry", "fail", "no_retry"):
            queue.add_task("work", task_id=behaviour, secret=SENTINEL)
        for body, name in _poison_bodies():
            attributes = task_attributes(name) if name else {}
            client.send_message(QueueUrl=queue.url, MessageBody=body, MessageAttributes=attributes)
    raw.add_message(SENTINEL)
    raw.add_message(f"{SENTINEL} second")

    # When each queue is consumed until its messages were all seen at least once
    consumed: list[BaseQueue] = [*queues, raw]
    for each in consumed:
        consumer = Consumer(each, max_messages=10, max_threads=4)
        try:
            assert wait_until(partial(_all_seen, each), timeout=30)
        finally:
            consumer.stop()

    # Then the sentinel reached the logging system (at DEBUG, from botocore), but no record
    # at INFO or above carries it, nor the secret key
    assert _leaks(caplog.records, logging.DEBUG), "the test saw no DEBUG record at all"
    assert _leaks(caplog.records, logging.INFO) == []


def _with_secret(endpoint_url: str) -> Any:
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRET,
    )


def _all_seen(queue: BaseQueue) -> bool:
    expected = 2 if isinstance(queue, RawQueue) else 4 + len(_poison_bodies())
    return queue.stats().processed >= expected


def _register_sentinel_handlers(queue: Queue) -> None:
    def work(context: dict[str, Any], task_id: str, secret: str = "") -> None:
        if (
            task_id == "retry"
            and context["sqs_message"]["Attributes"]["ApproximateReceiveCount"] == "1"
        ):
            raise Retry(min_backoff_seconds=0)
        if task_id == "fail":
            raise RuntimeError("the handler failed")
        if task_id == "no_retry":
            raise NoRetry()

    def typed(context: dict[str, Any], task_id: str) -> None:
        raise AssertionError("never called: its kwargs do not validate")

    queue.add_task_handler("work", work)
    queue.add_task_handler("typed", typed)


def _raw_handler(queue_url: str, message: dict[str, Any]) -> None:
    if message["Body"].endswith("second"):
        raise RuntimeError("the raw handler failed")


def test_the_lambda_runtime_logs_no_body_above_debug(
    sqs_client: Any, make_queue: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given an event whose records carry the sentinel: valid, failing and malformed ones
    from sqsx_lambda import LambdaHandler
    from sqsx_lambda.invoke import LocalContext

    caplog.set_level(logging.DEBUG)
    url = make_queue("sec-lambda")
    queue = Queue(url=url, sqs_client=sqs_client)
    _register_sentinel_handlers(queue)
    for behaviour in ("ok", "retry", "fail", "no_retry"):
        queue.add_task("work", task_id=behaviour, secret=SENTINEL)
    for body, name in _poison_bodies():
        attributes = task_attributes(name) if name else {}
        sqs_client.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
    event = lambda_event(sqs_client, url, 4 + len(_poison_bodies()))
    event["Records"][0]["messageAttributes"] = {"TaskName": {"stringValue": SENTINEL}}

    # When the Lambda handler runs it
    handler = LambdaHandler(queue, max_threads=4)
    try:
        response = handler(event, LocalContext())
    finally:
        handler.close()

    # Then records failed as expected, and no line at INFO or above carries the sentinel
    assert len(response["batchItemFailures"]) >= len(_poison_bodies())
    assert _leaks(caplog.records, logging.INFO) == []


# -- listeners ---------------------------------------------------------------------------------


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of TCP sockets listening on ``port``, from /proc/net/tcp{,6}."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(_decode_address(address))
    return found


def _decode_address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    return ":".join(b"".join(words).hex()[i : i + 4] for i in range(0, 32, 4))


def test_the_embedded_sqs_listens_on_loopback_only() -> None:
    # Given a LocalSqs started the way the CLI and the tests start it
    with LocalSqs(port=0) as server:
        # Then the only socket listening on its port is bound to 127.0.0.1
        assert _listening_addresses(server.port) == ["127.0.0.1"]


def test_no_listener_in_the_packages_binds_a_wildcard_address() -> None:
    # Given every string literal in the packages, Then none is a wildcard bind address
    wildcards = {"0.0.0.0", "::", "0:0:0:0:0:0:0:0"}
    findings = [
        f"{relative}:{node.lineno}"
        for relative, tree in _sources()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in wildcards
    ]
    assert findings == []
