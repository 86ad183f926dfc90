"""A local HTTP server that records what is POSTed to it: the test double of a chat or
paging webhook (no such service can be reached from here; this one is real HTTP on
127.0.0.1). ``replies`` scripts its answers: a status code, or ``("sleep", seconds)`` to
hang before answering 200; once the script runs out it answers 200."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Sink(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, replies: list[Any]) -> None:
        self.replies = list(replies)
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook/s3cr3t-token"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r["json"] for r in self.received]


class _Handler(BaseHTTPRequestHandler):
    server: Sink

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            reply = self.server.replies.pop(0) if self.server.replies else 200
            self.server.received.append(
                {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "json": json.loads(body),
                }
            )
        if isinstance(reply, tuple):
            time.sleep(reply[1])
            reply = 200
        self.send_response(reply)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextmanager
def sink(ports: Iterator[int], replies: list[Any] | None = None) -> Iterator[Sink]:
    """A running :class:`Sink` on the first free port of ``ports``."""
    server = None
    for port in ports:
        try:
            server = Sink(port, replies or [])
            break
        except OSError:
            continue
    assert server is not None, "no free port for the webhook sink"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
