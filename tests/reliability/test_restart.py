"""A short memcached restart costs about a second of errors, not a minute.

The scenario users meet: memcached restarts (a deploy, a crash and a supervisor) on the
same port while requests keep coming. With the default options a server that failed
is skipped (calls raise ``ServerUnavailableError`` at once, or miss in fail-silent
mode), and once a second one call tries it again, so calls succeed again within about
a second of the server's return -- with one server, and with one of three.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import CacheConnectionError, Client
from tests.servers import MemcachedProcess

OUTAGE = 1.5  # seconds the server is gone
AFTER = 3.0  # seconds of load after it is back
#: The promise: calls succeed again within about a second of the server's return (the
#: default one-second window, plus the time one call and a loaded CI machine take).
RECOVERY = 1.4


class _Load:
    """Threads that write and read their own keys until stopped, recording each outcome."""

    def __init__(self, client: Client, keys: list[str], threads: int = 3) -> None:
        assert len(keys) >= threads
        self.client = client
        self.keys = keys
        #: (monotonic time, the call failed, a read answered something other than the write)
        self.outcomes: list[tuple[float, bool, bool]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        assert not any(thread.is_alive() for thread in self._threads)

    def _work(self, worker: int) -> None:
        counter = 0
        mine = self.keys[worker :: len(self._threads)]  # no other thread writes these
        while not self._stop.is_set():
            key = mine[counter % len(mine)]
            value = f"{worker}-{counter}"
            counter += 1
            failed = wrong = False
            try:
                stored = self.client.set(key, value)
                answer = self.client.get(key)
                failed = not stored
                wrong = stored and answer != value
            except CacheConnectionError:
                failed = True
            with self._lock:
                self.outcomes.append((time.monotonic(), failed, wrong))
            time.sleep(0.002)

    def between(self, start: float, end: float) -> list[tuple[float, bool, bool]]:
        with self._lock:
            return [outcome for outcome in self.outcomes if start <= outcome[0] < end]


def _restart_under_load(
    client: Client, server: MemcachedProcess, keys: list[str]
) -> tuple[_Load, float, float]:
    """Kill ``server``, bring it back on the same port after :data:`OUTAGE`; return the load."""
    with _Load(client, keys) as load:
        time.sleep(0.5)
        killed_at = time.monotonic()
        server.kill()
        time.sleep(OUTAGE)
        server.start()
        back_at = time.monotonic()
        time.sleep(AFTER)
    return load, killed_at, back_at


def _assert_recovered(load: _Load, killed_at: float, back_at: float) -> None:
    before = load.between(0, killed_at)
    assert before
    assert not any(failed or wrong for _, failed, wrong in before)
    during = load.between(killed_at + 0.1, back_at)
    assert any(failed for _, failed, _ in during), "the outage was not noticed"
    first_success = min(t for t, failed, _ in load.between(back_at, float("inf")) if not failed)
    assert first_success - back_at < RECOVERY
    after = load.between(back_at + RECOVERY, float("inf"))
    assert len(after) > 50
    assert [outcome for outcome in after if outcome[1] or outcome[2]] == []


@pytest.mark.parametrize("silent", [False, True], ids=["strict", "fail-silent"])
def test_one_server_restarts_under_load(
    silent: bool, fresh_memcached: MemcachedProcess, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(fresh_memcached.address, ignore_exceptions=silent)
    keys = ["a", "b", "c", "d", "e", "f"]
    load, killed_at, back_at = _restart_under_load(client, fresh_memcached, keys)
    _assert_recovered(load, killed_at, back_at)
    if silent:
        ignored = client.ignored_errors
        assert ignored > 0
        assert client.get("a") is not None  # still in service: nothing more absorbed
        assert client.ignored_errors == ignored


@pytest.mark.parametrize("silent", [False, True], ids=["strict", "fail-silent"])
def test_one_of_three_restarts_under_load(
    silent: bool,
    memcached_factory: Callable[..., MemcachedProcess],
    client_factory: Callable[..., Client],
) -> None:
    servers = [memcached_factory() for _ in range(3)]
    client = client_factory([server.address for server in servers], ignore_exceptions=silent)
    restarted, *others = servers
    keys: dict[str, list[str]] = {server.address: [] for server in servers}
    for i in range(300):
        keys[client.server_for(f"key-{i}")].append(f"key-{i}")
    # Load on the restarting server's keys, and separately on the others' keys, which
    # never notice anything.
    with _Load(client, [k for s in others for k in keys[s.address]], threads=1) as steady:
        load, killed_at, back_at = _restart_under_load(client, restarted, keys[restarted.address])
    _assert_recovered(load, killed_at, back_at)
    steady_outcomes = steady.between(0, float("inf"))
    assert len(steady_outcomes) > 100
    assert [outcome for outcome in steady_outcomes if outcome[1] or outcome[2]] == []


def test_only_one_call_tries_a_skipped_server(
    fresh_memcached: MemcachedProcess, client_factory: Callable[..., Client]
) -> None:
    """The half-open check: when the window ends, one call connects; the rest fail fast."""
    address = fresh_memcached.address
    client = client_factory(address, retry_timeout=0.3, dead_timeout=0.3)
    fresh_memcached.kill()
    with pytest.raises(CacheConnectionError, match="refused"):
        client.get("k")
    time.sleep(0.35)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def call() -> None:
        barrier.wait(timeout=5)
        try:
            client.get("k")
        except CacheConnectionError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    kinds: dict[str, int] = {}
    for error in errors:
        kinds[type(error).__name__] = kinds.get(type(error).__name__, 0) + 1
    # Exactly one call was let through (and was refused); seven failed fast.
    assert kinds == {"CacheConnectionError": 1, "ServerUnavailableError": 7}


def test_down_server_is_tried_once_per_window_and_logged_once(
    fresh_memcached: MemcachedProcess,
    client_factory: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = client_factory(fresh_memcached.address, retry_timeout=0.2, dead_timeout=0.2)
    caplog.set_level("WARNING", logger="layered_cache")
    fresh_memcached.kill()
    attempts: list[Any] = []
    deadline = time.monotonic() + 1.1
    while time.monotonic() < deadline:
        try:
            client.get("k")
        except CacheConnectionError as exc:
            attempts.append(type(exc).__name__)
        time.sleep(0.01)
    tries = attempts.count("CacheConnectionError")
    assert 4 <= tries <= 7  # once per 0.2 s window, not once per call
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "is down" in m]) == 1  # reported down once
    fresh_memcached.start()
    time.sleep(0.25)
    assert client.set("k", "v")
    assert any("answering again" in m for m in (r.getMessage() for r in caplog.records))
