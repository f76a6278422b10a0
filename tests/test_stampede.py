"""get_or_set against a thundering herd, meta protocol and classic fallback, on real memcached."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from layered_cache import Client
from tests.servers import MemcachedProcess

HERD = 32


@pytest.fixture(params=["meta", "classic"])
def client(request: pytest.FixtureRequest, memcached: MemcachedProcess) -> Iterator[Client]:
    with Client(memcached.address) as client:
        if request.param == "classic":
            # As if the server did not speak meta (older memcached, twemproxy):
            # the add-based lease path. tests/scale covers real twemproxy.
            node = client._nodes[next(iter(client._nodes))]
            node.meta = False
        yield client


def herd(client: Client, key: str, compute: Callable[[], Any], **options: Any) -> list[Any]:
    barrier = threading.Barrier(HERD)
    results: list[Any] = []
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(client.get_or_set(key, compute, 60, **options))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(HERD)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(results) == HERD
    return results


def test_one_computation_for_a_herd_of_misses(client: Client) -> None:
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        time.sleep(0.2)  # a slow query: everyone else arrives while it runs
        return {"answer": 42}

    results = herd(client, "herd:key", compute)
    assert calls == [1]
    assert results == [{"answer": 42}] * HERD
    assert client.get("herd:key") == {"answer": 42}
    # Afterwards it is a plain hit.
    assert client.get_or_set("herd:key", lambda: pytest.fail("recomputed"), 60) == {"answer": 42}


def test_values_and_callables(client: Client) -> None:
    assert client.get_or_set("plain", "value") == "value"
    assert client.get_or_set("plain", "other") == "value"
    assert client.get_or_set("falsy", 0) == 0
    assert client.get("falsy") == 0


def test_waiters_never_wait_past_the_bound(client: Client) -> None:
    calls: list[int] = []
    release = threading.Event()

    def stuck() -> str:
        calls.append(1)
        release.wait(timeout=5)  # the winner hangs
        return "late"

    winner = threading.Thread(target=lambda: client.get_or_set("slow", stuck, 60))
    winner.start()
    try:
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        value = client.get_or_set("slow", lambda: "own", 60, wait_timeout=0.3)
        waited = time.monotonic() - started
        assert value == "own"  # computed itself after the bound
        assert waited < 2.0
    finally:
        release.set()
        winner.join(timeout=10)
    # The winner wrote with the CAS it read, so the waiter's value (written
    # later, from the placeholder) is not overwritten by an older computation.
    assert client.get("slow") in {"own", "late"}


def test_winner_does_not_overwrite_a_newer_value(client: Client) -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow() -> str:
        entered.set()
        release.wait(timeout=5)
        return "stale computation"

    winner = threading.Thread(target=lambda: client.get_or_set("fresh", slow, 60))
    winner.start()
    assert entered.wait(timeout=5)
    client.set("fresh", "newer write")  # someone writes while the winner computes
    release.set()
    winner.join(timeout=10)
    assert client.get("fresh") == "newer write"


def test_placeholder_is_never_a_value(memcached: MemcachedProcess) -> None:
    with Client(memcached.address) as client:
        entered = threading.Event()
        release = threading.Event()

        def slow() -> str:
            entered.set()
            release.wait(timeout=5)
            return "done"

        winner = threading.Thread(target=lambda: client.get_or_set("ph", slow, 60))
        winner.start()
        try:
            assert entered.wait(timeout=5)
            # The server holds an empty placeholder now; readers see a miss.
            assert memcached.command(b"get ph\r\n", until=b"END\r\n").startswith(b"VALUE ph 0 0")
            assert client.get("ph") is None
            assert client.get_many(["ph"]) == {}
        finally:
            release.set()
            winner.join(timeout=10)
        assert client.get("ph") == "done"
        assert client.set("empty", b"")  # empty bytes still round-trip
        assert client.get("empty") == b""


def test_stale_value_served_while_one_caller_refreshes(memcached: MemcachedProcess) -> None:
    with Client(memcached.address) as client:
        client.set("config", "v1")
        assert client.mark_stale("config") is True
        calls: list[int] = []

        def refresh() -> str:
            calls.append(1)
            time.sleep(0.3)
            return "v2"

        results = herd(client, "config", refresh)
        assert calls == [1]
        assert results.count("v2") == 1
        assert results.count("v1") == HERD - 1  # everyone else got the stale value at once
        assert client.get("config") == "v2"
        assert client.mark_stale("absent") is False


def test_refresh_ahead_recomputes_before_expiry(memcached: MemcachedProcess) -> None:
    with Client(memcached.address) as client:
        client.set("hot", "old", expire=5)
        calls: list[int] = []

        def compute() -> str:
            calls.append(1)
            return "new"

        # 5 s left < 30 s refresh window: exactly one caller refreshes early.
        results = herd(client, "hot", compute, refresh_ahead=30)
        assert calls == [1]
        assert set(results) <= {"old", "new"}
        assert client.get("hot") == "new"


def _process_herd(address: str, key: str, counter_key: str, out: Any) -> None:
    with Client(address) as client:

        def compute() -> str:
            client.incr(counter_key, 1)
            time.sleep(0.3)
            return "computed once"

        threads = []
        values: list[Any] = []
        for _ in range(4):
            thread = threading.Thread(
                target=lambda: values.append(client.get_or_set(key, compute, 60))
            )
            threads.append(thread)
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        out.put(values)


@pytest.mark.parametrize("processes", [4])
def test_herd_across_processes(memcached: MemcachedProcess, processes: int) -> None:
    with Client(memcached.address) as client:
        client.set("computations", 0)
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        workers = [
            context.Process(
                target=_process_herd, args=(memcached.address, "proc:key", "computations", out)
            )
            for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
        values = [out.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
        out.close()
        out.join_thread()
        assert all(worker.exitcode == 0 for worker in workers)
        assert [value for chunk in values for value in chunk] == ["computed once"] * (processes * 4)
        assert client.get("computations") == 1


def test_counters_created_on_miss(client: Client) -> None:
    assert client.incr("hits", 1, initial=10, expire=60) == 10
    assert client.incr("hits", 5, initial=10) == 15
    assert client.decr("hits", 100, initial=0) == 0
    assert client.incr("plain", 1) is None


def test_set_many_pipelined(client: Client) -> None:
    values = {f"batch:{i}": {"i": i} for i in range(150)}
    assert client.set_many(values, expire=60) == []
    assert client.get_many(list(values)) == values


def test_counters_created_on_miss_read_back_as_numbers(client: Client) -> None:
    assert client.incr("views", 1, initial=1) == 1
    assert client.incr("views", 1, initial=1) == 2
    assert client.get("views") == 2  # an int, as set() would have stored it


def test_counter_creation_race_counts_everything(client: Client) -> None:
    barrier = threading.Barrier(8)

    def bump() -> None:
        barrier.wait(timeout=10)
        for _ in range(25):
            client.incr("race", 1, initial=1)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert client.get("race") == 8 * 25


def test_counter_arguments_are_checked(client: Client) -> None:
    from layered_cache import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="value must be a non-negative integer"):
        client.incr("f", 1.7, initial=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="initial"):
        client.incr("f", 1, initial=-1)


def test_meta_errors_are_server_response_errors(memcached: MemcachedProcess) -> None:
    from layered_cache import ServerResponseError

    with Client(memcached.address) as client:
        client.set("s", "abc")
        with pytest.raises(ServerResponseError):
            client.incr("s", 1, initial=0)
        with pytest.raises(ServerResponseError, match="too large"):
            client.set_many({"ok": 1, "big": b"x" * (2 * 1024 * 1024)})
        assert client.get("ok") == 1


def test_set_many_refused_value_raises_on_both_paths(client: Client) -> None:
    from layered_cache import ServerResponseError

    with pytest.raises(ServerResponseError, match="too large"):
        client.set_many({"first": 1, "big": b"x" * (2 * 1024 * 1024), "last": 2})
    assert client.get("first") == 1  # the connection was replaced; the cache still answers
    assert client.set_many({"a": 1, "b": 2}, noreply=True) == []
    assert client.get_many(["a", "b"]) == {"a": 1, "b": 2}
