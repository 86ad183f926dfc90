"""The S3 server a benchmark's datatier runs talk to: the sandbox's moto, or gofakes3, with
or without a round trip's delay in front.

moto (the sandbox's S3 server, the one the tests use for its fidelity: storage classes,
restores from Glacier, tags) is a Python server: each request costs it some 3-4 ms of CPU
on the same two cores as datatier and MariaDB, which no real S3 does. gofakes3
(``--s3 gofakes3``, built by ``make bench-tools`` into ``.bin/``) is a Go in-memory S3
server whose requests cost a tenth of that: the figures then show datatier's own cost.
``--s3-latency-ms`` adds a proxy holding each reply (:mod:`benchmarks.latency_proxy`), for
the round trips a real S3 costs. Both only change datatier's view: a config copy next to the
sandbox's names the endpoint; the baselines that upload (``aws s3 cp``) read the same copy.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.latency_proxy import latency_proxy
from datatier.config import load

ROOT = Path(__file__).resolve().parents[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--s3",
        choices=("moto", "gofakes3"),
        default="moto",
        help="the S3 server datatier uses (gofakes3: `make bench-tools` first)",
    )
    parser.add_argument(
        "--s3-latency-ms",
        type=float,
        default=0.0,
        help="hold each S3 reply this long (a proxy): a store far away",
    )


def _gofakes3() -> str:
    found = ROOT / ".bin" / "gofakes3"
    if found.exists():
        return str(found)
    on_path = shutil.which("gofakes3")
    if on_path is None:
        raise SystemExit("--s3 gofakes3 needs .bin/gofakes3: run `make bench-tools` (Go 1.21+)")
    return on_path


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gofakes3 exited with {proc.returncode} (port {port} taken?)")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"gofakes3 did not listen on 127.0.0.1:{port}")


@contextlib.contextmanager
def benchmark_s3(config_path: Path, port: int, server: str, latency_ms: float) -> Iterator[Path]:
    """Yield the config datatier's runs use: ``config_path`` itself for plain moto; else a
    copy whose ``[s3] endpoint_url`` is gofakes3 on ``port`` and/or the proxy on ``port+1``."""
    if server == "moto" and not latency_ms:
        yield config_path
        return
    config = load(str(config_path), environ={}).config
    endpoint = config.s3.endpoint_url or ""
    target = int(endpoint.rsplit(":", 1)[1])
    with contextlib.ExitStack() as stack:
        if server == "gofakes3":
            bucket = config.backup.default_store.removeprefix("s3://").split("/")[0]
            argv = [_gofakes3(), "-backend", "memory", "-host", f"127.0.0.1:{port}"]
            proc = subprocess.Popen(
                [*argv, "-initialbucket", bucket],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(proc.wait, 10)
            stack.callback(proc.terminate)
            _wait_listening(port, proc)
            target = port
        url = f"http://127.0.0.1:{target}"
        if latency_ms:
            stack.enter_context(latency_proxy(target, port + 1, latency_ms / 1000))
            url = f"http://127.0.0.1:{port + 1}"
        copy = config_path.with_name("datatier-bench-s3.toml")
        copy.write_text(config_path.read_text().replace(endpoint, url))
        yield copy
