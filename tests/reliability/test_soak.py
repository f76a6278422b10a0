"""Soak: 16 threads mix get/set/incr/get_many while a proxy injects faults and a server restarts.

Each thread owns its keys, so it knows what each read may return:

* a read returns a miss, or the value of the last write that reported success, or the value
  of a write that failed (a failed write may or may not have landed) -- nothing else;
* a read never misses a key whose last successful write was not wiped by a restart of its
  server (a restart that *began* after the write began counts as wiping it);
* a counter moves exactly by the increments that reported success, plus at most one per
  increment that failed.

A write that failed can land *late*: when the client gives up (timeout), its request may
still be on its way (queued in the proxy, or in a memcached worker), and be executed after a
later write on another connection succeeded.  No client can prevent that -- memcached orders
nothing across connections -- so the model lets a failed write land up to ``LATE_LANDING``
seconds after it began, before or after later writes, and counts how often that was the only
explanation ("late landings").

Anything else is a *wrong value* or a *lost write*; the test asserts there are none and prints
operations and errors by kind.  ``test_soak_short`` (about 8 s) runs with the other tests;
``test_soak`` runs for ``SOAK_SECONDS`` (default 60) and only with ``-m soak``.
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from layered_cache import Client, LayeredCacheError
from tests.faults import FaultProxy
from tests.servers import MemcachedProcess

THREADS = 16
KEYS_PER_THREAD = 12
SILENT_THREADS = 4  # these use a second client, in fail-silent mode
TIMEOUT = 0.3
LATE_LANDING = 2.0  # seconds after it began during which a failed write may still land


@dataclass
class _Restart:
    server: str  # the proxy address the client knows the server by
    began: float
    ready: float = float("inf")


@dataclass
class _Write:
    value: Any
    started: float
    seq: int


@dataclass
class _Key:
    committed: _Write | None = None  # the last write known to have landed
    failed: list[_Write] = field(default_factory=list)  # failed writes that may still land

    def prune(self, now: float) -> None:
        """Forget failed writes older than the committed one whose time to land is over."""
        after = self.committed.seq if self.committed is not None else -1
        self.failed = [w for w in self.failed if w.seq > after or now - w.started < LATE_LANDING]


@dataclass
class _Counter:
    known: bool = False
    value: int = 0
    since: float = 0.0  # start time of the write or increment that last confirmed it
    failed: list[float] = field(default_factory=list)  # start times of failed increments
    failed_since: int = 0  # how many of them failed after the last confirmation


@dataclass
class _Report:
    ops: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    wrong: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    text: str = ""

    def add(self, what: str, kind: str, detail: str = "") -> None:
        with self.lock:
            if what == "op":
                self.ops[kind] += 1
            elif what == "error":
                self.errors[kind] += 1
            elif what == "fault":
                self.faults[kind] += 1
            else:
                getattr(self, what).append(f"{kind}: {detail}")

    def summary(self, seconds: float, ignored: int) -> str:
        lines = [
            f"soak: {sum(self.ops.values())} operations in {seconds:.1f} s, "
            f"{sum(self.errors.values())} raised, {ignored} absorbed by fail-silent mode",
            "  operations: " + format_counts(self.ops),
            "  errors:     " + (format_counts(self.errors) or "none"),
            "  faults:     " + format_counts(self.faults),
            f"  wrong values: {len(self.wrong)}, lost writes: {len(self.lost)}, "
            f"unexpected exceptions: {len(self.unexpected)}, late landings of failed writes: "
            f"{len(self.late)}",
        ]
        lines += [f"    {line}" for line in (self.wrong + self.lost + self.unexpected)[:20]]
        return "\n".join(lines)


def format_counts(counter: collections.Counter[str]) -> str:
    return ", ".join(f"{name}={count}" for name, count in sorted(counter.items()))


class _Worker:
    """One thread's key space and the model of what its keys may hold."""

    def __init__(
        self,
        n: int,
        client: Client,
        silent: bool,
        report: _Report,
        restarts: list[_Restart],
        deadline: float,
    ) -> None:
        self.n = n
        self.client = client
        self.silent = silent
        self.report = report
        self.restarts = restarts
        self.deadline = deadline
        self.random = random.Random(n)
        self.keys = {f"soak{n}:k{i}": _Key() for i in range(KEYS_PER_THREAD)}
        self.counter_key = f"soak{n}:counter"
        self.counter = _Counter()
        self.seq = 0

    # -- the model ---------------------------------------------------------------------------
    def _wiped(self, key: str, since: float) -> bool:
        """Could a restart of the key's server have wiped a write that began at ``since``?"""
        server = self.client.server_for(key)
        return any(r.server == server and r.began > since for r in list(self.restarts))

    def _check_read(self, key: str, value: Any, op: str) -> None:
        state = self.keys[key]
        state.prune(time.monotonic())
        committed = state.committed
        if value is None:
            stored = committed is not None and not self.silent
            if stored and committed and not self._wiped(key, committed.started):
                self.report.add("lost", op, f"{key} missed; last stored {committed.value!r}")
            return
        if committed is not None and value == committed.value:
            return
        landed = [write for write in state.failed if write.value == value]
        if not landed:
            allowed = [write.value for write in state.failed]
            if committed is not None:
                allowed.insert(0, committed.value)
            self.report.add("wrong", op, f"{key} = {value!r}; allowed {allowed!r}")
            return
        if committed is not None and landed[0].seq < committed.seq:
            self.report.add("late", op, f"{key} = {value!r} after {committed.value!r}")
        state.committed = landed[0]  # a failed write that did land: now the value to expect

    # -- operations --------------------------------------------------------------------------
    def op_get(self) -> None:
        key = self.random.choice(list(self.keys))
        self._check_read(key, self.client.get(key), "get")

    def op_get_many(self) -> None:
        keys = self.random.sample(list(self.keys), 4)
        found = self.client.get_many(keys)
        if set(found) - set(keys):
            self.report.add("wrong", "get_many", f"keys not asked for: {set(found) - set(keys)}")
        for key in keys:
            self._check_read(key, found.get(key), "get_many")

    def op_set(self) -> None:
        key = self.random.choice(list(self.keys))
        self.seq += 1
        value = f"{key}#{self.seq}"
        state = self.keys[key]
        started = time.monotonic()
        write = _Write(value, started, self.seq)
        try:
            stored = self.client.set(key, value)
        except LayeredCacheError:
            state.failed.append(write)
            raise
        if stored:
            state.committed = write
        else:  # fail-silent mode: it may or may not have landed
            state.failed.append(write)

    def op_incr(self) -> None:
        counter = self.counter
        started = time.monotonic()
        if not counter.known:
            if self.client.set(self.counter_key, 0):
                self.counter = _Counter(True, 0, started)
            return
        try:
            result = self.client.incr(self.counter_key, 1)
        except LayeredCacheError:
            counter.failed.append(started)
            counter.failed_since += 1
            raise
        if result is None:
            if not self.silent and not self._wiped(self.counter_key, counter.since):
                self.report.add("lost", "incr", f"{self.counter_key} vanished at {counter.value}")
            counter.known = False  # missing (or, in fail-silent mode, maybe unreachable)
            return
        landed = result - counter.value - 1  # failed increments counted since the last answer
        if not 0 <= landed <= len(counter.failed):
            if not self._wiped(self.counter_key, counter.since):
                self.report.add(
                    "wrong",
                    "incr",
                    f"{self.counter_key}: {result} after {counter.value}, with "
                    f"{len(counter.failed)} failed increments that may have landed",
                )
        elif landed > counter.failed_since:
            self.report.add("late", "incr", f"{self.counter_key}: {result} after {counter.value}")
        now = time.monotonic()
        pending = [t for t in counter.failed if now - t < LATE_LANDING]
        self.counter = _Counter(True, result, started, pending, 0)

    def run(self) -> None:
        operations: list[tuple[str, Callable[[], None], int]] = [
            ("get", self.op_get, 40),
            ("set", self.op_set, 30),
            ("incr", self.op_incr, 15),
            ("get_many", self.op_get_many, 15),
        ]
        names = [name for name, _, _ in operations]
        calls = {name: call for name, call, _ in operations}
        weights = [weight for _, _, weight in operations]
        while time.monotonic() < self.deadline:
            name = self.random.choices(names, weights)[0]
            try:
                calls[name]()
            except LayeredCacheError as exc:
                self.report.add("error", f"{name}:{type(exc).__name__}")
            except Exception as exc:
                self.report.add("unexpected", name, repr(exc))
            self.report.add("op", name)


def _inject_faults(
    proxies: list[FaultProxy],
    servers: list[MemcachedProcess],
    restarts: list[_Restart],
    report: _Report,
    started: float,
    deadline: float,
    stop: threading.Event,
) -> None:
    chaos = random.Random(1)
    duration = deadline - started
    # The first server restarts at 40% of the run (and again every 30 s in long runs).
    restart_at = [started + duration * 0.4 + 30 * i for i in range(int(duration // 30) + 1)]
    while not stop.wait(chaos.uniform(0.05, 0.3)) and time.monotonic() < deadline - 0.8:
        if restart_at and time.monotonic() >= restart_at[0]:
            restart_at.pop(0)
            record = _Restart(proxies[0].address, time.monotonic())
            restarts.append(record)
            servers[0].restart(graceful=False)
            record.ready = time.monotonic()
            report.add("fault", "restart")
            continue
        proxy = chaos.choice(proxies)
        fault = chaos.choice(["delay", "delay", "cut", "cut", "reset", "drop", "blackhole"])
        report.add("fault", fault)
        if fault == "delay":
            proxy.delay(chaos.choice([TIMEOUT / 3, TIMEOUT * 2]))  # under, then over the timeout
            stop.wait(chaos.uniform(0.1, 0.4))
            proxy.restore()
        elif fault == "cut":
            proxy.cut_mid_response()
        elif fault == "reset":
            proxy.reset()
        elif fault == "drop":
            proxy.drop()
        elif fault == "blackhole":
            proxy.blackhole()
            stop.wait(chaos.uniform(0.1, 0.5))
            proxy.restore()
    for proxy in proxies:
        proxy.restore()


def run_soak(
    seconds: float,
    memcached_factory: Callable[..., MemcachedProcess],
    proxy_factory: Callable[..., FaultProxy],
    client_factory: Callable[..., Client],
) -> _Report:
    servers = [memcached_factory(name=f"soak-{i}") for i in range(2)]
    proxies = [
        proxy_factory(server, name=f"soak-proxy-{i}", max_lifetime=seconds + 60)
        for i, server in enumerate(servers)
    ]
    addresses = [proxy.address for proxy in proxies]
    options = {"timeout": TIMEOUT, "retry_attempts": 2, "retry_timeout": 0.2, "dead_timeout": 0.5}
    strict = client_factory(addresses, **options)
    silent = client_factory(addresses, ignore_exceptions=True, **options)
    report = _Report()
    restarts: list[_Restart] = []
    started = time.monotonic()
    deadline = started + seconds
    workers = [
        _Worker(
            n,
            silent if n < SILENT_THREADS else strict,
            n < SILENT_THREADS,
            report,
            restarts,
            deadline,
        )
        for n in range(THREADS)
    ]
    stop = threading.Event()
    chaos = threading.Thread(
        target=_inject_faults,
        args=(proxies, servers, restarts, report, started, deadline, stop),
        name="soak-chaos",
    )
    threads = [threading.Thread(target=w.run, name=f"soak-{w.n}") for w in workers]
    chaos.start()
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join(timeout=max(1.0, deadline - time.monotonic() + 10))
        hung = [thread.name for thread in threads if thread.is_alive()]
    finally:
        stop.set()
        chaos.join(timeout=15)
    assert not chaos.is_alive(), "the fault injector did not stop"
    assert hung == [], f"threads still running after the deadline: {hung}"
    report.text = report.summary(time.monotonic() - started, silent.ignored_errors)
    return report


def assert_soak_clean(report: _Report) -> None:
    assert report.unexpected == []
    assert report.wrong == []
    assert report.lost == []
    assert sum(report.ops.values()) > 1000
    assert report.faults["restart"] >= 1
    assert sum(report.errors.values()) > 0  # the faults really reached the client


def test_soak_short(
    memcached_factory: Callable[..., MemcachedProcess],
    proxy_factory: Callable[..., FaultProxy],
    client_factory: Callable[..., Client],
) -> None:
    report = run_soak(7.0, memcached_factory, proxy_factory, client_factory)
    print(report.text)  # shown with -rP or -s
    assert_soak_clean(report)


@pytest.mark.soak
def test_soak(
    memcached_factory: Callable[..., MemcachedProcess],
    proxy_factory: Callable[..., FaultProxy],
    client_factory: Callable[..., Client],
    capsys: pytest.CaptureFixture[str],
) -> None:
    seconds = float(os.environ.get("SOAK_SECONDS", "60"))
    report = run_soak(seconds, memcached_factory, proxy_factory, client_factory)
    with capsys.disabled():
        print("\n" + report.text)
    assert_soak_clean(report)
