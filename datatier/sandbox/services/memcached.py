"""memcached, from Debian's package."""

from __future__ import annotations

import socket

from datatier.sandbox.services.base import SandboxService

# As long as the MariaDB probe waits: a loaded machine holds an answer back for some hundreds
# of ms (0.25 s seen at load 14 on 2 cores), and with 0.5 s `status` could call a healthy
# memcached unresponsive.
PROBE_TIMEOUT = 2.0


def _stats(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> dict[str, str]:
    """memcached's ``stats`` as a dict (empty on any failure)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"stats\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return {}
    stats = {}
    for line in data.decode(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats


class MemcachedService(SandboxService):
    """A 64 MB memcached on loopback, TCP only."""

    kind = "memcached"
    program = "memcached"
    memory_mb = 64

    def args(self) -> list[str]:
        return [
            "-u", "root", "-l", self.host, "-p", str(self.port),
            "-U", "0", "-m", str(self.memory_mb), "-c", "1024",
        ]  # fmt: skip

    def ready(self) -> bool:
        return "version" in _stats(self.host, self.port)

    def details(self) -> dict[str, object]:
        stats = _stats(self.host, self.port)
        return {"version": stats.get("version"), "items": stats.get("curr_items")}
