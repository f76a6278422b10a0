"""Counting what this process holds open: its sockets to given ports, from ``/proc``.

Used by the tests that promise bounded connections and no leaked sockets; it counts
sockets from their creation to their close, whatever their TCP state, so a socket the
server closed but the client never did (a leak in the making) still counts.
"""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = ["SocketSampler", "client_sockets"]


def _socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    return inodes


def client_sockets(ports: list[int]) -> dict[int, int]:
    """How many sockets this process holds open to each of ``ports`` on 127.0.0.1 (``/proc``).

    A socket counts from its creation to its close, whatever its TCP state: one the
    server closed but the client did not (a leak in the making) still counts.
    """
    mine = _socket_inodes()
    counts = dict.fromkeys(ports, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                port = int(fields[2].rsplit(":", 1)[1], 16)
                if port in counts and fields[9] in mine:
                    counts[port] += 1
    return counts


class SocketSampler(threading.Thread):
    """Samples :func:`client_sockets` every few milliseconds; keeps the peak per server."""

    def __init__(self, ports: list[int], interval: float = 0.005) -> None:
        super().__init__(name="socket-sampler", daemon=True)
        self.ports = ports
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            counts = client_sockets(self.ports)
            self.peak = max(self.peak, *counts.values())
            self.samples += 1
