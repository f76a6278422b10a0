"""``timeout`` bounds a whole exchange: a reply trickling in byte by byte cannot stretch a call.

The server is a fake that answers a ``get`` with a valid 3 kB value, one byte every 5 ms
(15 s in all): every single read completes well within the timeout, only the whole does
not. A real server cannot be made to do that on demand.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from layered_cache import CacheTimeoutError
from tests.fake_servers import FakeServer

VALUE = b"v" * 3000
REPLY = b"VALUE k 0 %d\r\n%s\r\nEND\r\n" % (len(VALUE), VALUE)


class TricklingServer(FakeServer):
    """Answers every request with :data:`REPLY`, one byte at a time."""

    def __init__(self, pause: float = 0.005) -> None:
        self.pause = pause
        super().__init__()

    def answer(self, conn: socket.socket) -> None:
        for index in range(len(REPLY)):
            if self.stopped.is_set():
                return
            conn.sendall(REPLY[index : index + 1])
            time.sleep(self.pause)


@pytest.fixture
def trickler() -> Iterator[TricklingServer]:
    server = TricklingServer()
    yield server
    server.close()


def test_a_trickled_reply_fails_after_about_timeout(
    trickler: TricklingServer, make: Callable[..., Any]
) -> None:
    client = make(trickler.address, timeout=0.5, retry_timeout=0, dead_timeout=0)
    for _ in range(2):  # and the trickling connection is not reused
        started = time.monotonic()
        with pytest.raises(CacheTimeoutError, match="did not answer within"):
            client.get("k")
        assert 0.4 < time.monotonic() - started < 1.2


def test_a_slow_but_whole_reply_within_timeout_is_read(make: Callable[..., Any]) -> None:
    server = TricklingServer(pause=0.0)
    try:
        client = make(server.address, timeout=5)
        assert client.get("k") == VALUE
    finally:
        server.close()
