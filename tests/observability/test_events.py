"""Events on both engines, against real memcached: one per server exchange, never a key."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import AuthenticationError, Client, ConfigurationError
from layered_cache.auth import AsciiAuth
from layered_cache.observability import (
    HERD_LEASE_WAITED,
    HERD_LEASE_WON,
    HERD_STALE_SERVED,
    ConnectEvent,
    HandshakeEvent,
    HerdEvent,
    LoggingListener,
    OperationEvent,
    ServerDownEvent,
    ServerUpEvent,
    StaleConnectionEvent,
    WriteFailureEvent,
)
from tests.servers import MemcachedProcess


class Recorder:
    """A listener that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if type(event) is kind]

    def ops(self) -> list[OperationEvent]:
        return self.of(OperationEvent)

    def clear(self) -> None:
        self.events.clear()


def test_one_event_per_exchange_with_the_public_methods_name(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    seen = Recorder()
    client = make(memcached.address, listeners=[seen])
    client.set("a", 1)
    client.get("a")
    client.get("missing")
    client.get_many(["a", "b", "c"])
    client.delete("a")
    client.incr("n", 1, initial=5)
    client.add("x", 1)
    client.touch("x", 10)
    client.set_many({"p": 1, "q": 2})
    client.delete_many(["p", "q"])
    client.stats()
    ops = [(e.operation, e.keys, e.hits, e.misses, e.error) for e in seen.ops()]
    assert ops == [
        ("set", 1, 0, 0, None),
        ("get", 1, 1, 0, None),
        ("get", 1, 0, 1, None),
        ("get_many", 3, 1, 2, None),
        ("delete", 1, 0, 0, None),
        # incr with initial: first the meta probe (once per server, no keys), then ma:
        ("incr", 0, 0, 0, None),
        ("incr", 1, 0, 0, None),  # ma (meta) or incr: one exchange; then the add/ms
        *[("incr", 1, 0, 0, None)] * (len([e for e in seen.ops() if e.operation == "incr"]) - 2),
        ("add", 1, 0, 0, None),
        ("touch", 1, 0, 0, None),
        ("set_many", 2, 0, 0, None),
        ("delete_many", 2, 0, 0, None),
        ("stats", 0, 0, 0, None),
    ]
    for event in seen.ops():
        assert event.server == memcached.address
        assert 0 < event.duration < 5
        assert event.key_names is None
        assert "a" not in repr(event) or "'a'" not in repr(event)


def test_a_batch_over_three_servers_gives_three_events(
    three_memcached: list[MemcachedProcess], make: Callable[..., Any]
) -> None:
    seen = Recorder()
    client = make([server.address for server in three_memcached], listeners=[seen])
    keys = [f"key-{i}" for i in range(30)]
    client.set_many(dict.fromkeys(keys, 1))
    seen.clear()
    assert len(client.get_many([*keys, "nope-1", "nope-2"])) == 30
    events = seen.ops()
    assert sorted(e.server for e in events) == sorted(s.address for s in three_memcached)
    assert {e.operation for e in events} == {"get_many"}
    assert sum(e.hits for e in events) == 30
    assert sum(e.misses for e in events) == 2
    assert sum(e.keys for e in events) == 32


def test_keys_only_with_include_keys(memcached: MemcachedProcess, make: Callable[..., Any]) -> None:
    seen = Recorder()
    client = make(memcached.address, listeners=[seen], include_keys=True)
    client.set("session:abc", 1)
    client.get_many(["session:abc", "other"])
    names = [e.key_names for e in seen.ops()]
    assert names == [("session:abc",), ("session:abc", "other")]
    assert "session:abc" not in repr(seen.ops())


def test_get_or_set_events_lease_won_then_hit(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    seen = Recorder()
    client = make(memcached.address, listeners=[seen])
    assert client.get_or_set("herd-key", lambda: 42) == 42
    assert [e.kind for e in seen.of(HerdEvent)] == [HERD_LEASE_WON]
    assert all(e.operation == "get_or_set" for e in seen.ops())
    # First the client asks the server (once) whether it speaks meta: an exchange of no keys.
    probe, first = seen.ops()[:2]
    assert (probe.server, probe.keys, probe.hits, probe.misses) == (memcached.address, 0, 0, 0)
    assert probe.error is None
    assert probe.duration > 0
    assert (first.keys, first.hits, first.misses) == (1, 0, 1)
    seen.clear()
    assert client.get_or_set("herd-key", lambda: 0) == 42
    assert [(e.operation, e.hits, e.misses) for e in seen.ops()] == [("get_or_set", 1, 0)]
    assert seen.of(HerdEvent) == []


def test_herd_waiter_and_stale_value(memcached: MemcachedProcess) -> None:
    seen = Recorder()
    client = Client(memcached.address, listeners=[seen])
    started = threading.Event()

    def slow() -> int:
        started.set()
        time.sleep(0.2)
        return 7

    winner = threading.Thread(target=client.get_or_set, args=("waited-key", slow))
    winner.start()
    started.wait(5)
    assert client.get_or_set("waited-key", lambda: 0) == 7
    winner.join()
    kinds = [e.kind for e in seen.of(HerdEvent)]
    assert kinds.count(HERD_LEASE_WON) == 1
    waited = [e for e in seen.of(HerdEvent) if e.kind == HERD_LEASE_WAITED]
    assert len(waited) == 1
    assert waited[0].waited >= 0.05
    seen.clear()
    client.mark_stale("waited-key")
    client.get_or_set("waited-key", lambda: 8)  # wins the refresh
    assert client.get_or_set("waited-key", lambda: 9) == 8
    client.close()


def test_stale_served_while_another_refreshes(memcached: MemcachedProcess) -> None:
    seen = Recorder()
    client = Client(memcached.address, listeners=[seen])
    client.get_or_set("stale-key", lambda: 1)
    client.mark_stale("stale-key")
    started, release = threading.Event(), threading.Event()

    def refresh() -> int:
        started.set()
        release.wait(5)
        return 2

    refresher = threading.Thread(target=client.get_or_set, args=("stale-key", refresh))
    refresher.start()
    started.wait(5)
    seen.clear()
    assert client.get_or_set("stale-key", lambda: 3) == 1
    release.set()
    refresher.join()
    assert [e.kind for e in seen.of(HerdEvent)] == [HERD_STALE_SERVED]
    client.close()


def test_connect_and_handshake_events_name_the_user_never_the_password(
    ascii_auth_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    seen = Recorder()
    user, password = ascii_auth_memcached.username, ascii_auth_memcached.password
    assert user
    assert password
    client = make(ascii_auth_memcached.address, auth=AsciiAuth(user, password), listeners=[seen])
    client.set("k", 1)
    connects = seen.of(ConnectEvent)
    assert len(connects) == 1
    assert connects[0].error is None
    assert seen.of(HandshakeEvent) == [
        HandshakeEvent(ascii_auth_memcached.address, "AsciiAuth", user, ok=True)
    ]
    bad = Recorder()
    refused = make(
        ascii_auth_memcached.address, auth=AsciiAuth(user, "wrong-secret"), listeners=[bad]
    )
    with pytest.raises(AuthenticationError):
        refused.get("k")
    (handshake,) = bad.of(HandshakeEvent)
    assert not handshake.ok
    assert handshake.error == "AuthenticationError"
    assert password not in repr(bad.events)
    assert "wrong-secret" not in repr(bad.events)


def test_down_up_stale_and_write_failure_with_a_stopped_server(
    fresh_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    seen = Recorder()
    failed_writes: list[WriteFailureEvent] = []
    client = make(
        fresh_memcached.address,
        listeners=[seen],
        ignore_exceptions=True,
        retry_attempts=2,
        retry_timeout=0,
        dead_timeout=0,
        timeout=0.3,
        on_write_failure=failed_writes.append,
    )
    assert client.set("user:1", "old") is True
    fresh_memcached.pause()  # SIGSTOP: it keeps its data, and answers nothing
    assert client.set("user:1", "new") is False
    assert client.delete("user:2") is False
    assert client.get("user:1") is None  # reads fail silently too, but are no write failure
    assert client.set_many({"m:1": 1, "m:2": 2}) == ["m:1", "m:2"]
    assert [(w.operation, w.key_names) for w in failed_writes] == [
        ("set", ("user:1",)),
        ("delete", ("user:2",)),
        ("set_many", ("m:1", "m:2")),
    ]
    # Listeners see the same failures, without the keys.
    assert [(w.operation, w.keys, w.key_names) for w in seen.of(WriteFailureEvent)] == [
        ("set", 1, None),
        ("delete", 1, None),
        ("set_many", 2, None),
    ]
    # set (ok), then set, delete, get failed, and set_many's meta probe (set_many itself
    # was never sent: its server could not even be asked whether it speaks meta).
    ops = [(e.operation, e.keys, e.error is None) for e in seen.ops()]
    assert ops == [
        ("set", 1, True),
        ("set", 1, False),
        ("delete", 1, False),
        ("get", 1, False),
        ("set_many", 0, False),
    ]
    downs = seen.of(ServerDownEvent)
    assert downs
    assert downs[-1].down
    assert downs[0].failures == 1
    fresh_memcached.resume()
    # Either the old value (stale: what the hook warned about) or the new one (a write
    # that timed out may still land): the caller cannot know, so the hook is told.
    assert client.get("user:1") in {"old", "new"}
    assert seen.of(ServerUpEvent)[-1].failures >= 2
    seen.clear()
    fresh_memcached.restart()
    assert client.get("user:1") is None
    assert [e.server for e in seen.of(StaleConnectionEvent)] == [fresh_memcached.address]


def test_a_killed_server_reports_the_write_failure(
    fresh_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    failed: list[WriteFailureEvent] = []
    client = make(fresh_memcached.address, ignore_exceptions=True, on_write_failure=failed.append)
    assert client.set("k", 1)
    fresh_memcached.kill()
    assert client.set("k", 2) is False
    assert [(w.operation, w.key_names) for w in failed] == [("set", ("k",))]
    assert failed[0].error in {"CacheConnectionError", "CacheTimeoutError", "UnexpectedReplyError"}


def test_without_fail_silent_the_hook_is_not_called_the_caller_sees_the_error(
    fresh_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    failed: list[WriteFailureEvent] = []
    client = make(fresh_memcached.address, on_write_failure=failed.append)
    fresh_memcached.stop()
    with pytest.raises(Exception, match=fresh_memcached.address):
        client.set("k", 1)
    assert failed == []


def test_a_raising_listener_is_logged_once_per_burst_and_never_breaks_the_call(
    memcached: MemcachedProcess, make: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    seen = Recorder()
    calls = 0

    def broken(event: object) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("listener bug")

    client = make(memcached.address, listeners=[broken, seen])
    caplog.set_level(logging.ERROR, logger="layered_cache")
    for _ in range(5):
        assert client.set("k", 1) is True
        assert client.get("k") == 1
    # (11: the ConnectEvent too.) The next listener still got every event.
    assert calls == 11
    assert len(seen.ops()) == 10
    logged = [r for r in caplog.records if "listener" in r.getMessage()]
    assert len(logged) == 1
    assert "RuntimeError" in (logged[0].exc_text or "")


def test_bad_listener_options_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="listeners must be a list of callables"):
        Client("127.0.0.1:1", listeners=print)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="listeners must be callables"):
        Client("127.0.0.1:1", listeners=["not callable"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="on_write_failure must be a callable"):
        Client("127.0.0.1:1", on_write_failure=3)  # type: ignore[arg-type]


def test_logging_listener_logs_slow_and_failed_calls_without_keys(
    fresh_memcached: MemcachedProcess, make: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    client = make(
        fresh_memcached.address,
        listeners=[LoggingListener(slow=0)],
        include_keys=True,
        ignore_exceptions=True,
    )
    caplog.set_level(logging.INFO, logger="layered_cache.events")
    client.set("secret-session-id", 1)
    fresh_memcached.stop()
    client.set("secret-session-id", 2)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "layered_cache.events")
    assert "slow memcached set" in text
    assert "failed" in text
    assert "stale value" in text
    assert "skipped" in text
    assert "secret-session-id" not in text


def test_a_lone_raising_listener_never_breaks_a_get(
    memcached: MemcachedProcess, make: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: object) -> None:
        raise ValueError("listener bug")

    client = make(memcached.address, listeners=[broken])
    caplog.set_level(logging.ERROR, logger="layered_cache")
    client.set("lone", 1)
    assert [client.get("lone") for _ in range(3)] == [1, 1, 1]
    logged = [r for r in caplog.records if "listener" in r.getMessage()]
    assert len(logged) == 1
