"""Cold start: what importing sqsx and sqsx_lambda adds to a process that has boto3.

Each figure is the median over fresh interpreters of ``python -X importtime -c "import
boto3; import X"``: the cumulative microseconds Python reports for the top-level ``X``,
which leaves out every module boto3 had already loaded. One discarded run first compiles
the bytecode caches, as a deployed package ships them (pip writes them at install): into a
directory of their own (``-X pycache_prefix``), and with ``PYTHONDONTWRITEBYTECODE`` left
out of the children's environment, which would otherwise have every run compile every
module of a source checkout again.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\S.*)$")


@dataclass(frozen=True)
class ImportResult:
    """Median import time of ``module`` after ``after`` (nothing when empty), in ms."""

    module: str
    after: str
    ms: float
    runs: list[float]

    @property
    def name(self) -> str:
        return f"import {self.module}" + (f" beyond {self.after}" if self.after else "")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "module": self.module, "after": self.after, "ms": self.ms}


def import_ms(module: str, after: str = "", cache_dir: str | None = None) -> float:
    """One fresh interpreter's cumulative import time of ``module``, in milliseconds (its
    bytecode caches in ``cache_dir`` when given)."""
    code = (f"import {after}; " if after else "") + f"import {module}"
    caches = ["-X", f"pycache_prefix={cache_dir}"] if cache_dir else []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", *caches, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for line in completed.stderr.splitlines():
        match = _LINE.match(line)
        if match and match.group(3) == module:  # top level: no indentation
            return int(match.group(2)) / 1000
    raise RuntimeError(f"no import time reported for {module}:\n{completed.stderr[-2000:]}")


def measure(module: str, after: str = "", runs: int = 7) -> ImportResult:
    """Median of ``runs`` fresh interpreters (after one warm-up that writes the caches)."""
    with tempfile.TemporaryDirectory(prefix="sqsx-coldstart-") as cache_dir:
        import_ms(module, after, cache_dir)
        samples = [import_ms(module, after, cache_dir) for _ in range(runs)]
    return ImportResult(module, after, statistics.median(samples), samples)


def run_all(quick: bool = False) -> list[ImportResult]:
    """boto3 alone, sqsx beyond boto3, sqsx_lambda beyond boto3 (it includes sqsx)."""
    runs = 3 if quick else 7
    return [
        measure("boto3", runs=runs),
        measure("sqsx", "boto3", runs=runs),
        measure("sqsx_lambda", "boto3", runs=runs),
    ]
