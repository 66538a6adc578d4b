"""Who runs in the head-to-head, from which venv, and how each venv is made.

The peers' venvs live in ``.venv-peers/NAME`` (ignored by git) and are created by the
benchmark on first use, with pinned versions, so ``make test`` never installs them. A
venv is reused while its ``ready`` stamp names the same requirements.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNERS = Path(__file__).resolve().parent / "runners"
VENVS = ROOT / ".venv-peers"


@dataclass(frozen=True)
class Contender:
    """One consumer: its runner script and the requirements of its venv.

    ``requirements`` empty means this checkout's own ``.venv`` (``sys.executable``);
    ``fills_itself`` False means the queue is filled by the sqsx runner (same wire format).
    """

    name: str
    runner: str
    requirements: tuple[str, ...] = ()
    fills_itself: bool = True

    def python(self) -> Path:
        if not self.requirements:
            return Path(sys.executable)
        return VENVS / self.key / "bin" / "python"

    @property
    def key(self) -> str:
        return self.runner.removeprefix("run_").removesuffix(".py")

    def script(self) -> Path:
        return RUNNERS / self.runner


CONTENDERS = (
    Contender("sqsx (this checkout)", "run_sqsx.py"),
    Contender("minimal boto3 loop", "run_boto3_loop.py", fills_itself=False),
    Contender("sqsx 0.7.0 (PyPI)", "run_sqsx070.py", ("sqsx==0.7.0",)),
    Contender("Celery + SQS transport", "run_celery.py", ("celery[sqs]==5.7.0",)),
    Contender(
        "dramatiq + dramatiq-sqs", "run_dramatiq.py", ("dramatiq==2.2.1", "dramatiq-sqs==0.4.4")
    ),
)


def ensure_venv(contender: Contender) -> Path:
    """The contender's python, creating or refreshing its venv when needed."""
    python = contender.python()
    if not contender.requirements:
        return python
    env = VENVS / contender.key
    stamp = env / "ready"
    wanted = "\n".join(contender.requirements)
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    VENVS.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True, timeout=300)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *contender.requirements,
        ],
        check=True,
        timeout=900,
    )
    stamp.write_text(wanted)
    return python
