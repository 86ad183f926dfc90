"""Timing one command for the benchmarks: wall time, peak RSS, its stdout."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_mb: float  # wait4's ru_maxrss: the largest single process of the command
    out: str


def timed(argv: list[str] | str, *, shell: bool = False, env: dict[str, str] | None = None) -> Run:
    """Run ``argv`` (which must succeed) and measure it; stdout is captured, stderr dropped."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, shell=shell, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark step failed: {argv}")
    return Run(seconds, usage.ru_maxrss / 1024, out)
