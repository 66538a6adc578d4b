"""What boto3's own client settings and the attributes asked for cost the caller's CPU.

``python -m bench.client_settings`` (part of ``make bench-peers``) measures, against one
moto server in this process, the calling thread's CPU per ReceiveMessage of ten and per
DeleteMessageBatch of ten (``bench.boto3_cost.measure``) for each variant below, in
interleaved rounds, and prints (and, unless ``--no-write``, writes to BENCHMARKS.md) the
median with its change against the default client asking for everything, as sqsx does.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from typing import Any

from bench import boto3_cost, report
from bench.peers.contenders import ROOT

_FEW = {
    "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
    "MessageAttributeNames": ["TaskName"],
}


@dataclass(frozen=True)
class Variant:
    name: str
    config: dict[str, Any]
    receive: dict[str, Any]


VARIANTS = (
    Variant("default `Config()`, every attribute asked (what sqsx does)", {}, boto3_cost.ASK_ALL),
    Variant("`parameter_validation=False`", {"parameter_validation": False}, boto3_cost.ASK_ALL),
    Variant(
        "`retries={'mode': 'standard'}`", {"retries": {"mode": "standard"}}, boto3_cost.ASK_ALL
    ),
    Variant(
        "`request_checksum_calculation` and `response_checksum_validation` `'when_required'`",
        {
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        },
        boto3_cost.ASK_ALL,
    ),
    Variant("ask only ApproximateReceiveCount and TaskName", {}, _FEW),
    Variant("ask for no attribute at all", {}, {}),
    Variant(
        "`parameter_validation=False` and only the two attributes",
        {"parameter_validation": False},
        _FEW,
    ),
)


def run(rounds: int = 3, calls: int = 40) -> list[tuple[Variant, float, float]]:
    """(variant, receive ms, delete ms): medians over ``rounds`` interleaved rounds."""
    from sqsx.local import LocalSqs

    samples: dict[str, list[boto3_cost.Boto3Cost]] = {v.name: [] for v in VARIANTS}
    with LocalSqs(port=0) as server:
        for _ in range(rounds):
            for variant in VARIANTS:
                cost = boto3_cost.measure(
                    calls,
                    config=variant.config,
                    receive=variant.receive,
                    endpoint_url=server.endpoint_url,
                )
                samples[variant.name].append(cost)
    return [
        (
            v,
            statistics.median(c.receive_ms for c in samples[v.name]),
            statistics.median(c.delete_ms for c in samples[v.name]),
        )
        for v in VARIANTS
    ]


def markdown(rows: list[tuple[Variant, float, float]]) -> str:
    _, base_receive, base_delete = rows[0]
    lines = [
        "| client setting | CPU ms per ReceiveMessage (10) | CPU ms per DeleteMessageBatch (10) |",
        "|---|---|---|",
    ]
    for variant, receive, delete in rows:
        lines.append(
            f"| {variant.name} | {receive:.2f} ({(receive / base_receive - 1) * 100:+.0f} %) "
            f"| {delete:.2f} ({(delete / base_delete - 1) * 100:+.0f} %) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="python -m bench.client_settings")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    table = markdown(run(args.rounds, args.calls))
    where = f"{args.rounds} interleaved rounds of {args.calls} calls each. {report.machine(load)}"
    print(f"{table}\n\n{where}")
    if not args.no_write:
        report.write_section(ROOT / "BENCHMARKS.md", "settings", f"{table}\n\n{where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
