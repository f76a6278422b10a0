"""A garbled reply is handled the same on every method: a ServerError naming the server, the
connection closed, the failure counted toward the server's health, and fail-silent mode
absorbing it exactly as it absorbs an outage.

The server here is a fake that answers every request with bytes no memcached would send
(a real server cannot be made to do that on demand).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from layered_cache import Client, ServerUnavailableError, UnexpectedReplyError
from tests.fake_servers import FakeServer
from tests.reliability.test_outages import KEY_CALLS, PROBING_CALLS, SERVER_CALLS

GARBLES = {
    "unknown line": b"HELLO THERE\r\n",
    "value longer than said": b"VALUE k 0 2\r\nabcdef\r\nEND\r\n",
    "no line end": b"\x00\xfe" * 5000,
}
#: What each call answers in fail-silent mode instead of raising.
QUIET_ANSWERS: dict[str, Any] = {
    "get": None,
    "get_many": {},
    "gets": (None, None),
    "gets_many": {},
    "set": False,
    "add": False,
    "replace": False,
    "append": False,
    "prepend": False,
    "cas": False,
    "delete": False,
    "delete_many": False,
    "incr": None,
    "decr": None,
    "touch": False,
    "set_many": ["k", "j"],
    "get_or_set": "v",
}


class GarblingServer(FakeServer):
    """Answers whatever arrives with ``garble``."""

    def __init__(self, garble: bytes) -> None:
        self.garble = garble
        super().__init__()

    def answer(self, conn: socket.socket) -> None:
        conn.sendall(self.garble)


@pytest.fixture(params=list(GARBLES), ids=list(GARBLES))
def garbler(request: pytest.FixtureRequest) -> Iterator[GarblingServer]:
    server = GarblingServer(GARBLES[request.param])
    yield server
    server.close()


ALL_CALLS: dict[str, Callable[[Client], Any]] = {**KEY_CALLS, **SERVER_CALLS, **PROBING_CALLS}


@pytest.mark.parametrize("name", list(ALL_CALLS))
def test_garbled_reply_raises_a_server_error_and_counts(
    name: str, garbler: GarblingServer, make: Callable[..., Any]
) -> None:
    client = make(garbler.address, timeout=1, retry_timeout=30)
    with pytest.raises(UnexpectedReplyError) as caught:
        ALL_CALLS[name](client)
    assert caught.value.server == garbler.address
    assert garbler.address in str(caught.value)
    # It counted toward the server's health like an outage: the next call fails fast.
    with pytest.raises(ServerUnavailableError):
        ALL_CALLS[name](client)
    client.close()


@pytest.mark.parametrize("name", list(ALL_CALLS))
def test_garbled_reply_is_absorbed_in_fail_silent_mode(
    name: str, garbler: GarblingServer, make: Callable[..., Any]
) -> None:
    client = make(
        garbler.address, timeout=1, retry_timeout=0, dead_timeout=0, ignore_exceptions=True
    )
    if name in SERVER_CALLS:
        # Administrative commands raise in fail-silent mode, for garbage as for outages.
        with pytest.raises(UnexpectedReplyError):
            ALL_CALLS[name](client)
        return
    for attempt in range(2):  # and again: the garbled connection was not kept
        assert ALL_CALLS[name](client) == QUIET_ANSWERS[name], f"attempt {attempt}"
    assert client.ignored_errors == 2
    client.close()


def test_a_garbled_connection_is_never_reused(
    garbler: GarblingServer, make: Callable[..., Any]
) -> None:
    client = make(
        garbler.address, timeout=1, retry_timeout=0, dead_timeout=0, ignore_exceptions=True
    )
    for _ in range(3):
        assert client.get("k") is None
    assert garbler.connections == 3
    client.close()
