"""A TCP proxy that adds a fixed delay to every server reply: an S3 far away, for benchmarks.

The sandbox's S3 server answers on loopback in well under a millisecond of network time,
where a real S3 endpoint takes some 10-30 ms per request. Timing many small objects against
loopback alone measures CPU, not the round trips a real store costs; this proxy puts the
round trips back. Each connection is relayed both ways; every chunk the server sends is
held ``delay`` seconds before it is forwarded (the connection's chunks stay in order and
one slow connection never holds another), so each request/response costs at least one
``delay``.

Run in the background of a benchmark: ``with latency_proxy(target_port, listen_port, 0.02):``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def release() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    sender = asyncio.create_task(release())
    try:
        while data := await reader.read(1 << 16):
            queue.put_nowait((loop.time() + delay, data))
    except OSError:
        pass
    queue.put_nowait((loop.time() + delay, b""))
    with contextlib.suppress(OSError):
        await sender


async def _serve(target: int, listen: int, delay: float, started: threading.Event) -> None:
    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w, 0.0), _pipe(server_r, client_w, delay))
        for w in (client_w, server_w):
            w.close()

    server = await asyncio.start_server(relay, "127.0.0.1", listen)
    started.set()
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def latency_proxy(target: int, listen: int, delay: float) -> Iterator[None]:
    """Relay ``127.0.0.1:listen`` to ``127.0.0.1:target`` with ``delay`` s on each reply,
    in a daemon thread, while the block runs."""
    started = threading.Event()
    loop = asyncio.new_event_loop()
    task_holder: list[asyncio.Task[None]] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        task_holder.append(loop.create_task(_serve(target, listen, delay, started)))
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task_holder[0])

    thread = threading.Thread(target=run, name="latency-proxy", daemon=True)
    thread.start()
    if not started.wait(10):
        raise SystemExit(f"the latency proxy could not listen on 127.0.0.1:{listen}")
    try:
        yield
    finally:
        loop.call_soon_threadsafe(task_holder[0].cancel)
        thread.join(10)
