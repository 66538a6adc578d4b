"""The caps benchmark's own parts (``bench.caps``): the mix it queues and what its gauge
counts. The figures themselves are judged in BENCHMARKS.md, never here."""

from __future__ import annotations

from bench.caps import CapsScenario, _fill, _Gauge, scenarios
from bench.simsqs import SimulatedSqs


def _task_names(sqs: SimulatedSqs, url: str) -> list[str]:
    names: list[str] = []
    for _ in range(100):  # bounded: 20 messages at most here
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return names
        names += [m["MessageAttributes"]["TaskName"]["StringValue"] for m in got]
    raise AssertionError("the queue never ran dry")


def test_the_mix_puts_the_capped_head_first_then_one_in_every_n() -> None:
    sqs = SimulatedSqs(latency_seconds=0)
    url = sqs.create_queue(QueueName="mix")["QueueUrl"]
    scenario = CapsScenario("t", depth=12, capped_every=4, capped_head=3)
    _fill(sqs, url, scenario, beside=True)
    assert _task_names(sqs, url) == ["capped"] * 3 + ["free", "free", "free", "capped"] * 3

    alone = sqs.create_queue(QueueName="alone")["QueueUrl"]
    _fill(sqs, alone, scenario, beside=False)
    assert _task_names(sqs, alone) == ["free"] * 12


def test_the_gauge_keeps_the_peak_and_counts_finishes_in_the_window() -> None:
    gauge = _Gauge()
    gauge.enter()
    gauge.enter()
    gauge.leave()
    gauge.enter()
    assert (gauge.now, gauge.peak) == (2, 2)
    gauge.finished["free"] += [1.0, 1.5, 2.0, 3.5]
    assert gauge.rate("free", 1.0, 3.0) == 1.5  # 1.0, 1.5 and 2.0 in [1, 3 s): 3 in 2 s


def test_no_mix_can_run_its_queue_dry_within_the_window() -> None:
    # at the bound (every thread on the free task), the run must still end with free
    # messages queued, or the rate measured would be the queue's depth
    for scenario in [*scenarios(), *scenarios(quick=True)]:
        bound = scenario.threads / (scenario.free_ms / 1000)
        assert bound * (scenario.warmup_seconds + scenario.window_seconds) < scenario.depth
        assert 0 < scenario.thread_share < 1
