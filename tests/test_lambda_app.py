"""The example app, its sample events, the local invoker, the SAM template, and what
``import sqsx_lambda`` loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


@pytest.fixture(scope="module")
def example_queues(endpoint_url: str) -> dict[str, str]:
    """The example app's queues on the test's server, named as in the sample events."""
    from conftest import make_client

    client = make_client(endpoint_url)
    urls = {
        variable: client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        for variable, name, attributes in (
            ("TASKS_QUEUE_URL", "sqsx-example-tasks", {}),
            ("EVENTS_QUEUE_URL", "sqsx-example-events", {}),
            ("LEDGER_QUEUE_URL", "sqsx-example-ledger.fifo", {"FifoQueue": "true"}),
        )
    }
    return urls


def invoke(
    args: list[str], endpoint_url: str, queues: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        **queues,
    }
    return subprocess.run(
        [sys.executable, "-m", "sqsx_lambda", "invoke", *args, "--endpoint-url", endpoint_url],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


# Which records of each sample event the example handlers must report (by position).
SAMPLES = [
    # send_email, charge, charge <= 0 (NoRetry), busy (Retry), unreachable (error),
    # unknown task, undecodable body
    pytest.param("tasks-mixed.json", "handler", [3, 4, 5, 6], id="tasks-mixed"),
    # order_created, order_paid, unknown type (NoRetry), invalid JSON (error)
    pytest.param("raw-events.json", "raw_handler", [3], id="raw-events"),
    # acct-1 x3 succeed; frozen-7's first entry fails and holds back the two after it
    pytest.param("ledger-fifo.json", "fifo_handler", [1, 3, 5], id="ledger-fifo"),
    # good, null body, attribute that is not base64
    pytest.param("tasks-malformed-record.json", "handler", [1, 2], id="malformed-record"),
]


@pytest.mark.parametrize(("event_file", "entrypoint", "reported"), SAMPLES)
def test_each_sample_event_gets_the_documented_response(
    endpoint_url: str,
    example_queues: dict[str, str],
    event_file: str,
    entrypoint: str,
    reported: list[int],
) -> None:
    # Given a sample event and the example handler it is made for
    records = json.loads((EVENTS / event_file).read_text())["Records"]

    # When the local invoker runs it
    done = invoke(
        [f"events/{event_file}", "--handler", f"examples.lambda_app:{entrypoint}"],
        endpoint_url,
        example_queues,
    )

    # Then stdout is exactly the response, and the logs (on stderr) are Powertools JSON lines
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert response == {
        "batchItemFailures": [{"itemIdentifier": records[i]["messageId"]} for i in reported]
    }
    logs = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert logs and all("function_request_id" in line for line in logs)
    # (the sample receipt handles are not the server's: SQS refuses their visibility change,
    # which is logged with the message id and does not change the response)
    refused = [line for line in logs if "ChangeMessageVisibilityBatch failed" in line["message"]]
    assert {line["message"].split("message_id=")[1].split()[0] for line in refused} == {
        records[i]["messageId"] for i in reported
    }


def test_the_invoker_reports_a_bad_event_as_lambda_does(
    endpoint_url: str, example_queues: dict[str, str]
) -> None:
    done = invoke(
        ["-", "--handler", "examples.lambda_app:handler"],
        endpoint_url,
        example_queues,
        stdin=json.dumps({"detail-type": "Scheduled Event", "source": "aws.events"}),
    )
    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert error["errorType"] == "EventError"
    assert "no 'Records' list" in error["errorMessage"]


def test_the_invoker_timeout_drives_the_deadline_guard(
    endpoint_url: str, example_queues: dict[str, str]
) -> None:
    # Given a 500 ms timeout, below the example handler's 1000 ms deadline margin
    done = invoke(
        [
            "events/raw-events.json",
            "--handler",
            "examples.lambda_app:raw_handler",
            "--timeout-ms",
            "500",
        ],
        endpoint_url,
        example_queues,
    )
    # Then no record runs: all four are reported and released
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["batchItemFailures"]) == 4
    assert "4 records not run (not started: less than 1000 ms left)" in done.stderr


def test_importing_sqsx_lambda_loads_only_what_the_lambda_path_needs() -> None:
    code = (
        "import sys, sqsx_lambda; "
        "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'aws_lambda_powertools', 'moto', 'werkzeug', 'flask', 'rich', 'matplotlib', 'click'} "
        "or m in {'sqsx.local', 'sqsx.cli', 'sqsx_lambda.powertools', "
        "'sqsx_lambda.invoke', 'sqsx_lambda.logs'})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == []


def load_template() -> dict[str, Any]:
    from cfnlint.decode import decode

    template, errors = decode(str(ROOT / "template.yaml"))
    assert not errors and template is not None
    return dict(template)


def test_the_sam_template_follows_aws_guidance_for_sqs_and_lambda() -> None:
    template = load_template()
    resources = template["Resources"]
    function_timeout = template["Globals"]["Function"]["Timeout"]
    assert template["Globals"]["Function"]["Runtime"] in {"python3.12", "python3.13"}
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    assert len(functions) == 3
    for name, function in functions.items():
        (source,) = function["Properties"]["Events"].values()
        properties = source["Properties"]
        queue = resources[properties["Queue"]["Fn::GetAtt"][0]]["Properties"]
        # every queue: visibility >= 6x the function timeout, and a dead-letter queue
        assert queue["VisibilityTimeout"] >= 6 * function_timeout, name
        assert queue["RedrivePolicy"]["maxReceiveCount"] >= 1, name
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
        assert properties["ScalingConfig"]["MaximumConcurrency"] >= 2, name
        assert properties["BatchSize"] >= 1, name
        statements = [s for p in function["Properties"]["Policies"] for s in p["Statement"]]
        assert any("sqs:ChangeMessageVisibility" in s["Action"] for s in statements), name
        # the handler named in the template exists in the example module
        module, attribute = function["Properties"]["Handler"].split(".")
        assert f"\n{attribute} = LambdaHandler(" in (ROOT / "examples" / f"{module}.py").read_text()


def test_the_sam_template_passes_cfn_lint() -> None:
    linted = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "template.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
