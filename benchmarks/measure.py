"""Timing one command for the benchmarks: wall time, peak RSS, its stdout.

Peak RSS comes from GNU ``time`` (Debian package ``time``), which forks the command itself:
``wait4`` here would also count the benchmark's own pages, because a child's peak RSS
includes what it shared with its parent between fork and exec (a benchmark holding a
400 MB dump made a 90 MB restore look like 475 MB).

Importing this module compiles datatier's bytecode once: ``pip install`` compiles it into
``__pycache__``, an editable install (``make venv``) does not, and with
``PYTHONDONTWRITEBYTECODE`` set every timed ``datatier`` run compiled its modules again
(~0.1 s of each backup's CPU on the 2M-row benchmark).

With ``BENCH_PYSPY=DIR`` every ``datatier`` command runs under ``py-spy record --idle``
(raw folded stacks, ``DIR/NN-<subcommand>.txt``): where a step's wall time goes, at the cost
of distorting its figures (profiling runs are for reading, not quoting).
"""

from __future__ import annotations

import compileall
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
compileall.compile_dir(ROOT / "datatier", quiet=1)
_profiles = itertools.count(1)


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_mb: float  # the largest single process of the command (GNU time's %M)
    out: str
    cpu_s: float = 0.0  # user + system CPU seconds of the command (GNU time's %U + %S)


def timed(argv: list[str] | str, *, shell: bool = False, env: dict[str, str] | None = None) -> Run:
    """Run ``argv`` (which must succeed) and measure it; stdout is captured, stderr dropped."""
    gnu_time = shutil.which("time")
    if gnu_time is None:
        raise SystemExit("benchmarks need GNU time (apt-get install time)")
    if isinstance(argv, str):
        command = ["/bin/sh", "-c", argv] if shell else [argv]
    else:
        command = list(argv)
    command = _profiled(command)
    with tempfile.NamedTemporaryFile("r", prefix="dt-rss-") as rss:
        started = time.monotonic()
        proc = subprocess.run(
            [gnu_time, "-f", "%M %U %S", "-o", rss.name, *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"benchmark step failed: {argv}")
        peak_kb, user, system = rss.read().split()[-3:]
    return Run(
        seconds,
        int(peak_kb) / 1024,
        _without_pyspy(proc.stdout.decode(errors="replace")),
        float(user) + float(system),
    )


def print_results(results: dict[str, float], ratios: list[tuple[str, str, str]]) -> None:
    """Every result as ``name: value``, then each ``(label, numerator, denominator)`` ratio
    (``not measured`` when a side is missing), then the peak RSS of backup and restore."""
    for key, value in results.items():
        print(f"{key}: {value:.2f}")
    for label, top, bottom in ratios:
        if top not in results or bottom not in results:
            print(f"{label}: not measured")
            continue
        print(f"{label}: {results[top] / results[bottom]:.2f}")
    print(f"backup_peak_rss_mb: {results['backup_rss']:.1f}")
    print(f"restore_peak_rss_mb: {results['restore_rss']:.1f}")


def _profiled(command: list[str]) -> list[str]:
    """``command`` under py-spy when ``BENCH_PYSPY`` names a directory and it runs datatier."""
    folder = os.environ.get("BENCH_PYSPY")
    if not folder or not command or not command[0].endswith("/datatier"):
        return command
    Path(folder).mkdir(parents=True, exist_ok=True)
    words = [w for w in command[1:] if not w.startswith("-")][:2]
    out = Path(folder) / f"{next(_profiles):02d}-{'-'.join(words) or 'datatier'}.txt"
    pyspy = ROOT / ".venv/bin/py-spy"
    return [
        str(pyspy),
        "record",
        "--idle",
        "--threads",
        "-f",
        "raw",
        "-r",
        "200",
        "-o",
        str(out),
        "--",
        *command,
    ]


def _without_pyspy(out: str) -> str:
    """``out`` without the lines py-spy adds to its command's stdout."""
    if not os.environ.get("BENCH_PYSPY"):
        return out
    lines = out.splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("py-spy> ") and line.strip())
