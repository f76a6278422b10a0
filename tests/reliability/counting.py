"""Counting what this process holds open: its sockets to given ports (``/proc/self/fd``).

Used by the tests that promise bounded connections and no leaked sockets; it counts
sockets from their creation to their close, whatever their TCP state, so a socket the
server closed but the client never did (a leak in the making) still counts.
"""

from __future__ import annotations

import os
import socket
import threading

__all__ = ["SocketSampler", "client_sockets"]


def client_sockets(ports: list[int]) -> dict[int, int]:
    """How many connected sockets this process holds open to each of ``ports``.

    Every open descriptor that is a socket is asked for its peer (on a duplicate of the
    descriptor, closed at once): a socket counts from its connection to its close,
    whatever its TCP state, so one the server closed but the client did not still counts.
    (A socket still connecting has no peer yet and does not count.)
    """
    counts = dict.fromkeys(ports, 0)
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:["):
                continue
            copy = socket.socket(fileno=os.dup(int(fd)))
        except OSError:
            continue  # closed meanwhile
        with copy:
            try:
                peer = copy.getpeername()
            except OSError:
                continue  # listening, or not connected (yet)
        if isinstance(peer, tuple) and peer[1] in counts:
            counts[peer[1]] += 1
    return counts


class SocketSampler(threading.Thread):
    """Samples :func:`client_sockets` every few milliseconds; keeps the peak per server."""

    def __init__(self, ports: list[int], interval: float = 0.005) -> None:
        super().__init__(name="socket-sampler", daemon=True)
        self.ports = ports
        self.interval = interval
        self.peak = 0
        #: The peak of each port.
        self.peaks = dict.fromkeys(ports, 0)
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            counts = client_sockets(self.ports)
            for port, count in counts.items():
                self.peaks[port] = max(self.peaks[port], count)
            self.peak = max(self.peaks.values())
            self.samples += 1
