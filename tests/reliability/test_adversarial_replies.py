"""Replies that are well-formed but wrong, on both engines: a value for another key, a meta
answer for a key never sent, a length no memcached can hold. Each is an
:class:`~layered_cache.UnexpectedReplyError` naming the server, at once (never a wait for
bytes that cannot come, never a value handed to the wrong key, never an exception from
outside the library).

The servers are fakes (a real memcached cannot be made to answer like this).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from layered_cache import UnexpectedReplyError
from tests.reliability.test_garbled import GarblingServer


class _MetaServer(GarblingServer):
    """Passes the meta probe (a ``get``, then ``mn``), then answers with ``garble``."""

    last = b""

    def answer(self, conn: socket.socket) -> None:
        # (A request arrives whole in one read on loopback: these are small.)
        if self.last.startswith(b"get "):
            conn.sendall(b"END\r\n")
        else:
            conn.sendall(b"MN\r\n" if self.last == b"mn\r\n" else self.garble)

    def _converse(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while (data := conn.recv(65536)) and not self.stopped.is_set():
                    self.last = data
                    self.answer(conn)
            except OSError:
                return


CASES: dict[str, tuple[type[GarblingServer], bytes, Callable[[Any], Any]]] = {
    "get: a value for another key": (
        GarblingServer,
        b"VALUE other 0 1\r\nx\r\nEND\r\n",
        lambda client: client.get("k"),
    ),
    "get_many: a value for a key not asked for": (
        GarblingServer,
        b"VALUE k 0 1\r\nx\r\nVALUE other 0 1\r\ny\r\nEND\r\n",
        lambda client: client.get_many(["k", "j"]),
    ),
    "get: a length over any memcached's limit": (
        GarblingServer,
        b"VALUE k 0 9999999999\r\n",
        lambda client: client.get("k"),
    ),
    "set_many (meta): a failure reported for a key never sent": (
        _MetaServer,
        b"NS kother\r\nMN\r\n",
        lambda client: client.set_many({"k": 1, "j": 2}),
    ),
    "set_many (meta): a failure reported without its key": (
        _MetaServer,
        b"NS\r\nMN\r\n",
        lambda client: client.set_many({"k": 1, "j": 2}),
    ),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request: pytest.FixtureRequest) -> Iterator[tuple[GarblingServer, Callable[..., Any]]]:
    server_class, reply, call = CASES[request.param]
    server = server_class(reply)
    yield server, call
    server.close()


def test_a_wrong_but_well_formed_reply_is_an_unexpected_reply_at_once(
    case: tuple[GarblingServer, Callable[..., Any]], make: Callable[..., Any]
) -> None:
    server, call = case
    client = make(server.address, timeout=None)  # no timeout to end a wait: none may happen
    started = time.monotonic()
    with pytest.raises(UnexpectedReplyError) as caught:
        call(client)
    assert time.monotonic() - started < 2
    assert caught.value.server == server.address
