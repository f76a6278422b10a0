"""No response desynchronisation: a reply that comes late or cut short is never read by the
next call.  The proxy makes the server's reply arrive after the client gave up (or end in the
middle); the next call on the same client must get its own answer or an error, never the
previous call's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import CacheConnectionError, CacheTimeoutError, Client
from tests.faults import FaultProxy
from tests.servers import MemcachedProcess

TIMEOUT = 0.2
HELD = 5.0  # the proxy holds the late reply far longer than the client waits

VALUES = {"a": "value-of-a", "b": "value-of-b", "c": "value-of-c"}

#: The call that times out.  Each one's late reply is something a reused connection
#: would hand to the next call: a VALUE, an END (a miss), STORED, a number.
FIRST_CALLS: dict[str, Callable[[Client], Any]] = {
    "get-hit": lambda client: client.get("a"),
    "get-miss": lambda client: client.get("missing"),
    "get_many": lambda client: client.get_many(["a", "missing"]),
    "set": lambda client: client.set("a", VALUES["a"]),
    "incr": lambda client: client.incr("n", 1),
}

#: The next call, and the only answer it may give besides raising.
NEXT_CALLS: dict[str, tuple[Callable[[Client], Any], Any]] = {
    "get": (lambda client: client.get("b"), VALUES["b"]),
    "get_many": (lambda client: client.get_many(["b", "c"]), {"b": VALUES["b"], "c": VALUES["c"]}),
    "set-then-get": (lambda client: (client.set("d", "D"), client.get("d")), (True, "D")),
    "incr": (lambda client: client.incr("m", 1), 101),
}


def _prepared_client(proxy: FaultProxy, client_factory: Callable[..., Client]) -> Client:
    # retry_timeout=0: the next call really goes to the server instead of failing fast,
    # which is what gives a reused connection the chance to read the late reply.
    client = client_factory(proxy.address, timeout=TIMEOUT, retry_timeout=0)
    assert client.set_many({**VALUES, "n": 10, "m": 100}) == []
    return client


@pytest.mark.parametrize("next_name", list(NEXT_CALLS))
@pytest.mark.parametrize("first_name", list(FIRST_CALLS))
def test_late_reply_is_never_read_by_the_next_call(
    first_name: str,
    next_name: str,
    proxy: FaultProxy,
    memcached: MemcachedProcess,
    client_factory: Callable[..., Client],
) -> None:
    client = _prepared_client(proxy, client_factory)
    proxy.delay(HELD)
    started = time.monotonic()
    with pytest.raises(CacheTimeoutError):
        FIRST_CALLS[first_name](client)
    opened = proxy.connections
    assert time.monotonic() - started < TIMEOUT + 1.0
    # The late reply now reaches the client side of the timed-out connection, if it is open.
    proxy.restore()
    time.sleep(0.05)
    call, expected = NEXT_CALLS[next_name]
    assert call(client) == expected
    # The late command itself was executed exactly once by the server, never repeated.
    with Client(memcached.address) as direct:
        assert direct.get("n") == (11 if first_name == "incr" else 10)
    assert proxy.connections > opened  # the timed-out connection was replaced


def test_late_reply_is_not_read_by_another_thread(
    proxy: FaultProxy, client_factory: Callable[..., Client]
) -> None:
    client = _prepared_client(proxy, client_factory)
    proxy.delay(HELD)
    with pytest.raises(CacheTimeoutError):
        client.get("missing")
    proxy.restore()
    time.sleep(0.05)
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(client.get("b")))
    thread.start()
    thread.join(timeout=5)
    assert seen == [VALUES["b"]]


BIG = bytes(range(256)) * 2400  # 600 kB: several chunks, cut well inside the value


@pytest.mark.parametrize("fresh", [False, True], ids=["pooled", "new-connection"])
@pytest.mark.parametrize("how", ["get", "get_many", "gets"])
def test_cut_in_a_large_value_is_never_returned(
    how: str,
    fresh: bool,
    proxy: FaultProxy,
    client_factory: Callable[..., Client],
) -> None:
    client = client_factory(proxy.address, timeout=1.0, retry_timeout=0)
    assert client.set("big", BIG)
    assert client.set("small", "small")
    if fresh:
        client.close()  # the cut connection is then the call's own, new one
    proxy.cut_mid_response(after=100_000)
    read = {
        "get": lambda: client.get("big"),
        "get_many": lambda: client.get_many(["big", "small"]).get("big"),
        "gets": lambda: client.gets("big")[0],
    }[how]
    try:
        value = read()
    except CacheConnectionError:
        pass
    else:
        # A pooled connection that closes under a read is replaced and the read retried.
        assert value == BIG
    assert proxy.cuts == 1
    assert client.get("small") == "small"
    assert client.get("big") == BIG


#: Non-idempotent calls: (call, the key it changes, what that key holds after it ran once).
NON_IDEMPOTENT: dict[str, tuple[Callable[[Client], Any], str, Any]] = {
    "incr": (lambda client: client.incr("n", 1), "n", 11),
    "decr": (lambda client: client.decr("n", 1), "n", 9),
    "add": (lambda client: client.add("fresh", "x"), "fresh", "x"),
    "append": (lambda client: client.append("s", "+"), "s", "abc+"),
    "prepend": (lambda client: client.prepend("s", "+"), "s", "+abc"),
    "replace": (lambda client: client.replace("s", "new"), "s", "new"),
}


@pytest.mark.parametrize("name", list(NON_IDEMPOTENT))
def test_cut_reply_of_a_non_idempotent_command_raises_and_is_not_repeated(
    name: str,
    proxy: FaultProxy,
    memcached: MemcachedProcess,
    client_factory: Callable[..., Client],
) -> None:
    client = client_factory(proxy.address, timeout=1.0, retry_timeout=0)
    assert client.set_many({"n": 10, "s": "abc"}) == []
    call, key, stored_after = NON_IDEMPOTENT[name]
    proxy.cut_mid_response()  # the server executes it; its reply is cut in half
    with pytest.raises(CacheConnectionError):
        call(client)  # never a silent retry: it would count twice, or answer "not stored"
    assert proxy.cuts == 1
    with Client(memcached.address) as direct:
        assert direct.get(key) == stored_after


def test_cut_reply_of_cas_raises_and_is_not_repeated(
    proxy: FaultProxy, memcached: MemcachedProcess, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(proxy.address, timeout=1.0, retry_timeout=0)
    assert client.set("k", "v1")
    _, token = client.gets("k")
    proxy.cut_mid_response()
    # A retry would answer EXISTS (False): "someone else wrote" when it was us.
    with pytest.raises(CacheConnectionError):
        client.cas("k", "v2", token)
    with Client(memcached.address) as direct:
        assert direct.get("k") == "v2"


def test_cut_reply_of_delete_leaves_the_key_gone(
    proxy: FaultProxy, memcached: MemcachedProcess, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(proxy.address, timeout=1.0, retry_timeout=0)
    assert client.set("k", "v")
    proxy.cut_mid_response()
    # Never sent again (a resend would find the key gone and answer False): the call
    # raises, since it cannot know, and the key is gone (see test_delete_truth.py).
    with pytest.raises(CacheConnectionError):
        client.delete("k")
    with Client(memcached.address) as direct:
        assert direct.get("k") is None
