"""deploy/: what the linters in ``make lint`` cannot check.

hadolint, kubernetes-validate and cfn-lint check each file against its own format. These
tests check the KEDA objects against the fields and values KEDA documents for its
``aws-sqs-queue`` trigger (no schema ships for them), and that the image, the Kubernetes
objects and the ECS template agree with each other and with the worker's command line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqsx.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"

# KEDA 2.15, the version keda.yaml targets: https://keda.sh/docs/2.15/scalers/aws-sqs/
# (trigger metadata) and https://keda.sh/docs/2.15/reference/scaledobject-spec/ (spec).
KEDA_SQS_METADATA = {
    "queueURL",
    "queueURLFromEnv",
    "queueLength",
    "activationQueueLength",
    "awsRegion",
    "awsEndpoint",
    "identityOwner",
    "scaleOnInFlight",
    "scaleOnDelayed",
}
KEDA_DEPRECATED = {"identityOwner"}  # "deprecated as of KEDA v2.13 and will be removed in v3"
KEDA_BOOLEANS = {"scaleOnInFlight", "scaleOnDelayed"}
KEDA_INTEGER_MINIMUMS = {"queueLength": 1, "activationQueueLength": 0}
KEDA_SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}

# The worker's stop sequence (sqsx/engine.py): running handlers get --stop-timeout, a long
# poll in flight is waited for up to --polling-wait + 5 s (at the same time), then acks and
# visibility changes get up to 10 s to flush.
RECEIVE_MARGIN_SECONDS = 5
FLUSH_SECONDS = 10


def _documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def _one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in documents if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _deployment() -> dict[str, Any]:
    return _one(_documents("kubernetes/deployment.yaml"), "Deployment")


def _container() -> dict[str, Any]:
    containers = _deployment()["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _ecs() -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    return dict(cfn_yaml.load(str(DEPLOY / "ecs" / "worker.yaml")))


def _ecs_container() -> dict[str, Any]:
    definitions = _ecs()["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert len(definitions) == 1
    return dict(definitions[0])


def _dockerfile(instruction: str) -> str:
    lines = [
        line.split(None, 1)[1].strip()
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.split(None, 1)[:1] == [instruction]
    ]
    assert lines, f"no {instruction} in the Dockerfile"
    return lines[-1]


def _worker_args(args: list[Any]) -> Any:
    """``args`` parsed by the real ``sqsx worker`` parser (exits on a bad option)."""
    return build_parser().parse_args(["worker", *[str(a) for a in args]])


def _grace_needed(args: Any) -> float:
    stop_timeout = args.stop_timeout
    assert stop_timeout is not None, "without --stop-timeout no grace period is long enough"
    return max(stop_timeout, args.polling_wait + RECEIVE_MARGIN_SECONDS) + FLUSH_SECONDS


# -- KEDA ------------------------------------------------------------------------------------


def test_the_keda_trigger_uses_only_documented_fields_with_documented_values() -> None:
    scaled = _one(_documents("kubernetes/keda.yaml"), "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert set(scaled["spec"]) <= KEDA_SCALED_OBJECT_SPEC, set(scaled["spec"])
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    metadata = trigger["metadata"]
    # KEDA's trigger metadata is a map of strings: an unquoted 5 or true is refused
    assert all(isinstance(value, str) for value in metadata.values()), metadata
    assert set(metadata) <= KEDA_SQS_METADATA, set(metadata) - KEDA_SQS_METADATA
    assert not set(metadata) & KEDA_DEPRECATED
    assert "queueURL" in metadata or "queueURLFromEnv" in metadata
    assert "awsRegion" in metadata
    for name, minimum in KEDA_INTEGER_MINIMUMS.items():
        if name in metadata:
            assert re.fullmatch(r"\d+", metadata[name]), (name, metadata[name])
            assert int(metadata[name]) >= minimum, (name, metadata[name])
    for name in KEDA_BOOLEANS & set(metadata):
        assert metadata[name] in ("true", "false"), (name, metadata[name])
    # the issue asks for scaleOnInFlight to be explicit, not left to KEDA's default
    assert "scaleOnInFlight" in metadata
    assert "queueLength" in metadata


def test_the_keda_objects_point_at_the_worker_and_its_queue() -> None:
    documents = _documents("kubernetes/keda.yaml")
    scaled = _one(documents, "ScaledObject")
    auth = _one(documents, "TriggerAuthentication")
    (trigger,) = scaled["spec"]["triggers"]
    deployment = _deployment()

    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["spec"]["podIdentity"]["provider"] == "aws"
    env = {item["name"]: item["value"] for item in _container()["env"]}
    assert trigger["metadata"]["queueURL"] == env["SQSX_QUEUE_URL"]
    region = re.match(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/", env["SQSX_QUEUE_URL"])
    assert region is not None
    assert trigger["metadata"]["awsRegion"] == region.group(1) == env["AWS_REGION"]
    spec = scaled["spec"]
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


# -- grace periods ---------------------------------------------------------------------------


def test_the_kubernetes_grace_period_covers_the_workers_stop() -> None:
    args = _worker_args(_container()["args"])
    grace = _deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    needed = _grace_needed(args)
    # Long enough for the whole stop sequence, and not so long that a scale-in waits for
    # nothing: "matched", within 10 s.
    assert needed <= grace <= needed + 10, (grace, needed)


def test_the_ecs_stop_timeout_covers_the_workers_stop() -> None:
    container = _ecs_container()
    args = _worker_args(container["Command"])
    needed = _grace_needed(args)
    assert needed <= container["StopTimeout"] <= min(needed + 10, 120), container["StopTimeout"]


def test_the_image_runs_sqsx_worker_in_exec_form_as_a_non_root_user() -> None:
    # exec form: the worker is PID 1 and receives SIGTERM itself, no shell in between
    assert json.loads(_dockerfile("ENTRYPOINT")) == ["sqsx", "worker"]
    _worker_args(json.loads(_dockerfile("CMD")))
    user = _dockerfile("USER")
    assert user.isdigit() and int(user) != 0, user
    assert _dockerfile("STOPSIGNAL") == "SIGTERM"
    pod = _deployment()["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == int(user)
    assert _ecs_container()["User"] == user


# -- ECS scaling -----------------------------------------------------------------------------


def test_the_ecs_service_tracks_visible_messages_per_running_task() -> None:
    resources = _ecs()["Resources"]
    policy = resources["BacklogPerTaskPolicy"]["Properties"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    metrics = policy["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"][
        "Metrics"
    ]
    by_name = {
        m["MetricStat"]["Metric"]["MetricName"]: m["Id"] for m in metrics if "MetricStat" in m
    }
    (returned,) = [m for m in metrics if m.get("ReturnData", True)]
    visible, tasks = by_name["ApproximateNumberOfMessagesVisible"], by_name["RunningTaskCount"]
    assert returned["Expression"].replace(" ", "") == f"{visible}/{tasks}"
    # at least one task, so the division is defined
    assert resources["ScalableTarget"]["Properties"]["MinCapacity"] == {"Ref": "MinTasks"}
    assert _ecs()["Parameters"]["MinTasks"]["MinValue"] >= 1


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda: _container()["args"], id="kubernetes"),
        pytest.param(lambda: _ecs_container()["Command"], id="ecs"),
        pytest.param(lambda: json.loads(_dockerfile("CMD")), id="dockerfile"),
    ],
)
def test_every_deployment_runs_the_same_worker_command(where: Any) -> None:
    reference = vars(_worker_args(_container()["args"]))
    parsed = vars(_worker_args(where()))
    for option in ("target", "processes", "threads", "stop_timeout"):
        assert parsed[option] == reference[option], option
