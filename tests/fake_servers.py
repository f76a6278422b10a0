"""Fake memcached servers for what a real one cannot be made to do on demand.

:class:`FakeServer` listens on ``127.0.0.1:<free port>`` and hands every request to
:meth:`FakeServer.answer`; subclasses answer with garbage, trickle, and so on. Each
connection is served by a daemon thread; :meth:`FakeServer.close` stops it all.
"""

from __future__ import annotations

import socket
import threading


class FakeServer:
    """Accepts connections and answers every request with :meth:`answer`."""

    def __init__(self) -> None:
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    def answer(self, conn: socket.socket) -> None:
        """Reply to one request that arrived on ``conn`` (raise OSError to hang up)."""
        raise NotImplementedError

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._converse, args=(conn,), daemon=True).start()

    def _converse(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while conn.recv(65536) and not self.stopped.is_set():
                    self.answer(conn)
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self._listener.close()
        self._thread.join(timeout=5)
