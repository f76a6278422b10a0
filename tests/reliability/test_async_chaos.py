"""Async chaos: hundreds of tasks hammer AsyncClients over TLS and through the MemCachier
gateway while calls are cancelled at random, servers are SIGSTOPped (timeouts), SIGCONTed
and restarted, and the gateway drops its connections.

Every stored value is derived from its key (:func:`value_for`), so every read can be
checked: a read returns a miss or exactly its key's value. What is asserted:

* 0 wrong values, and 0 replies read by the wrong call: no read returns another key's (or a
  truncated) value, no write answers what it cannot (``set`` False), and no
  :class:`~layered_cache.UnexpectedReplyError` happens (nothing garbles here, so one would
  mean a stream read out of step);
* every failure is a :class:`~layered_cache.LayeredCacheError` (cancellations are the
  test's own);
* connections are bounded: the sockets this process holds to each server (counted from
  ``/proc``, sampled every few milliseconds) never exceed ``max_connections`` beyond the
  ones already given up and closing, and memcached's own ``curr_connections`` stays within
  the bound too;
* nothing leaks: once the clients are closed, no task is left (``asyncio.all_tasks``), no
  socket to a server is left open (``/proc``), memcached's ``curr_connections`` is back to
  where it started, and no ``ResourceWarning`` (unclosed transport or socket) was issued.

``test_async_chaos`` (about 12 s) runs with the other tests. ``test_soak_both_engines``
runs the sync soak (``test_soak.py``: 16 threads) and this chaos (256 tasks) at once for
``SOAK_SECONDS`` (default 60), only with ``-m soak`` or ``SOAK_SECONDS`` set::

    SOAK_SECONDS=60 python -m pytest tests/reliability/test_async_chaos.py -m soak -s
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import hashlib
import os
import random
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from layered_cache import AsyncClient, Client, LayeredCacheError, UnexpectedReplyError
from layered_cache.auth import MemCachierAuth
from layered_cache.transport import TLSTransport
from tests.conftest import MEMCACHIER_PASSWORD, MEMCACHIER_USERNAME
from tests.faults import FaultProxy
from tests.reliability import test_soak
from tests.reliability.counting import SocketSampler, client_sockets
from tests.reliability.test_soak import format_counts
from tests.servers import MemcachedProcess, MemCachierGateway, TLSMaterial, tls_server_args

KEYS = [f"chaos:{i}" for i in range(300)]
#: Value sizes: small ones, and ones large enough that cancellations land mid-body.
SIZES = (8, 300, 3000, 40_000, 200_000)
MAX_CONNECTIONS = 8
#: Client options: short timeouts so that a SIGSTOP produces timeouts, quick recovery.
OPTIONS: dict[str, Any] = {
    "timeout": 0.25,
    "connect_timeout": 0.5,
    "max_connections": MAX_CONNECTIONS,
    "pool_timeout": 1.0,
    "retry_timeout": 0.2,
    "dead_timeout": 0.3,
}


def value_for(key: str) -> bytes:
    """The only value ``key`` may ever hold: derived from the key, of a size the key picks."""
    digest = hashlib.blake2b(key.encode()).digest()
    size = SIZES[digest[0] % len(SIZES)]
    return (digest * (size // len(digest) + 1))[:size]


# -- what the run saw ------------------------------------------------------------------------------


@dataclass
class ChaosReport:
    ops: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    cancelled: int = 0
    #: One message per error class, for the summary.
    examples: dict[str, str] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    #: The most sockets this process held to one server at once (``/proc``).
    peak_client_sockets: int = 0
    peaks: dict[int, int] = field(default_factory=dict)
    peak_server_connections: int = 0
    server_baseline: int = 0
    #: memcached's curr_connections after the run, above the baseline (once settled).
    server_leftover: int = 0
    server_after: dict[str, int] = field(default_factory=dict)
    #: Connections the MemCachier gateways still held after the run.
    gateway_links: int = 0
    leaked_tasks: int = 0
    leaked_sockets: int = 0
    resource_warnings: int = 0
    seconds: float = 0.0
    tasks: int = 0

    @property
    def succeeded(self) -> int:
        """Calls that neither raised nor were cancelled."""
        return sum(self.ops.values()) - sum(self.errors.values()) - self.cancelled

    def summary(self) -> str:
        calls = sum(self.ops.values())
        lines = [
            f"async chaos: {calls} calls by {self.tasks} tasks in {self.seconds:.1f} s "
            f"({self.succeeded} succeeded, {self.cancelled} cancelled by the test, "
            f"{sum(self.errors.values())} raised)",
            "  calls:   " + format_counts(self.ops),
            "  errors:  " + (format_counts(self.errors) or "none"),
            "  faults:  " + format_counts(self.faults),
            f"  wrong values or replies: {len(self.wrong)}, non-LayeredCacheError failures: "
            f"{len(self.unexpected)}",
            f"  peak sockets to one server: {self.peak_client_sockets} {self.peaks} "
            f"(max_connections {MAX_CONNECTIONS}); peak memcached curr_connections: "
            f"{self.peak_server_connections} (baseline {self.server_baseline})",
            f"  leaked tasks: {self.leaked_tasks}, leaked sockets: {self.leaked_sockets}, "
            f"ResourceWarnings: {self.resource_warnings}; after the run: memcached "
            f"curr_connections {self.server_after}, gateway links {self.gateway_links}",
        ]
        lines += [f"  e.g. {name}: {text}" for name, text in sorted(self.examples.items())]
        lines += [f"    {line}" for line in (self.wrong + self.unexpected)[:20]]
        return "\n".join(lines)


# -- the targets: who the tasks talk to, and what the chaos may break ----------------------------


@dataclass
class Target:
    name: str
    addresses: list[str]
    options: dict[str, Any]
    processes: list[MemcachedProcess]  # SIGSTOP / SIGCONT / restart
    ports: list[int]  # what the client connects to
    gateways: list[MemCachierGateway] = field(default_factory=list)


@contextlib.contextmanager
def chaos_targets(
    memcached_factory: Callable[..., MemcachedProcess], tls_material: TLSMaterial
) -> Iterator[list[Target]]:
    """Two TLS memcached servers, and two MemCachier gateways each over its own memcached."""
    tls_args = tls_server_args(tls_material.server_cert_file, tls_material.server_key_file)
    tls = [
        memcached_factory(
            tls_args, ssl_context=tls_material.client_context(), name=f"chaos-tls-{i}"
        )
        for i in range(2)
    ]
    upstreams = [memcached_factory(name=f"chaos-upstream-{i}") for i in range(2)]
    gateways = [
        MemCachierGateway(upstream, MEMCACHIER_USERNAME, MEMCACHIER_PASSWORD)
        for upstream in upstreams
    ]
    try:
        for gateway in gateways:
            gateway.start()
        yield [
            Target(
                "tls",
                [server.address for server in tls],
                {"transport": TLSTransport(ca_file=tls_material.ca_file)},
                tls,
                [server.port for server in tls],
            ),
            Target(
                "memcachier",
                [gateway.address for gateway in gateways],
                {"auth": MemCachierAuth(MEMCACHIER_USERNAME, MEMCACHIER_PASSWORD)},
                upstreams,
                [gateway.port for gateway in gateways],
                gateways,
            ),
        ]
    finally:
        for gateway in gateways:
            gateway.stop()


# -- the calls -------------------------------------------------------------------------------------


class _Worker:
    """One task: random calls on shared keys, each checked against :func:`value_for`."""

    def __init__(self, n: int, client: AsyncClient, report: ChaosReport) -> None:
        self.client = client
        self.report = report
        self.random = random.Random(n)

    def _check(self, op: str, key: str, value: Any) -> None:
        if value is not None and value != value_for(key):
            shown = value[:20] if isinstance(value, bytes) else value
            self.report.wrong.append(f"{op}: {key} -> {shown!r} ({len(value)} bytes?)")

    def _wrong(self, op: str, answer: Any) -> None:
        self.report.wrong.append(f"{op} answered {answer!r}")

    async def get(self) -> None:
        key = self.random.choice(KEYS)
        self._check("get", key, await self.client.get(key))

    async def get_many(self) -> None:
        keys = self.random.sample(KEYS, 6)
        found = await self.client.get_many(keys)
        if set(found) - set(keys):
            self._wrong("get_many", sorted(set(found) - set(keys)))
        for key, value in found.items():
            self._check("get_many", key, value)

    async def gets_then_cas(self) -> None:
        key = self.random.choice(KEYS)
        value, token = await self.client.gets(key)
        self._check("gets", key, value)
        if value is not None:
            stored = await self.client.cas(key, value_for(key), token)
            if stored not in (True, False, None):
                self._wrong("cas", stored)

    async def set(self) -> None:
        key = self.random.choice(KEYS)
        stored = await self.client.set(key, value_for(key))
        if stored is not True:  # a set is stored or raises (no fail-silent here)
            self._wrong("set", stored)

    async def set_many(self) -> None:
        keys = self.random.sample(KEYS, 4)
        failed = await self.client.set_many({key: value_for(key) for key in keys})
        if failed != []:
            self._wrong("set_many", failed)

    async def add(self) -> None:
        key = self.random.choice(KEYS)
        if await self.client.add(key, value_for(key)) not in (True, False):
            self._wrong("add", "not a bool")

    async def delete(self) -> None:
        key = self.random.choice(KEYS)
        if await self.client.delete(key) not in (True, False):
            self._wrong("delete", "not a bool")

    async def touch(self) -> None:
        key = self.random.choice(KEYS)
        if await self.client.touch(key, 300) not in (True, False):
            self._wrong("touch", "not a bool")

    async def run(self, deadline: float) -> None:
        calls: list[tuple[Callable[[], Awaitable[None]], int]] = [
            (self.get, 35),
            (self.get_many, 12),
            (self.gets_then_cas, 8),
            (self.set, 25),
            (self.set_many, 6),
            (self.add, 4),
            (self.delete, 6),
            (self.touch, 4),
        ]
        names = [call for call, _ in calls]
        weights = [weight for _, weight in calls]
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            call = self.random.choices(names, weights)[0]
            name = call.__name__
            self.report.ops[name] += 1
            roll = self.random.random()
            task = asyncio.ensure_future(call())
            cancel = None
            if roll < 0.1:
                cancel = loop.call_soon(task.cancel)  # before or right after it sends
            elif roll < 0.25:
                cancel = loop.call_later(self.random.uniform(0, 0.01), task.cancel)
            try:
                await task
            except asyncio.CancelledError:
                if cancel is None or not task.cancelled():
                    raise  # not ours: the test itself is being cancelled
                self.report.cancelled += 1
            except LayeredCacheError as exc:
                self.report.errors[type(exc).__name__] += 1
                if type(exc).__name__ not in self.report.examples:
                    self.report.examples[type(exc).__name__] = f"{name}: {exc}"
                if isinstance(exc, UnexpectedReplyError):
                    self.report.wrong.append(f"{name}: {exc}")
            except Exception as exc:
                self.report.unexpected.append(f"{name}: {exc!r}")
            finally:
                if cancel is not None:
                    cancel.cancel()


# -- the chaos and the counting (a thread: pausing and restarting servers blocks) ----------------


class _Chaos(threading.Thread):
    def __init__(self, targets: list[Target], report: ChaosReport, seconds: float) -> None:
        super().__init__(name="async-chaos", daemon=True)
        self.targets = targets
        self.report = report
        self.seconds = seconds
        self.stop = threading.Event()
        self.random = random.Random(7)

    def _sample_servers(self) -> None:
        for target in self.targets:
            for process in target.processes:
                with contextlib.suppress(Exception):
                    count = int(process.stats()["curr_connections"])
                    self.report.peak_server_connections = max(
                        self.report.peak_server_connections, count
                    )

    def run(self) -> None:
        started = time.monotonic()
        deadline = started + self.seconds - 0.8
        # The first restart and pause come early, so that even a short run has both.
        plan = ["pause", "restart"]
        while not self.stop.wait(self.random.uniform(0.1, 0.4)) and time.monotonic() < deadline:
            target = self.random.choice(self.targets)
            process = self.random.choice(target.processes)
            choices = ["pause", "pause", "restart", "calm"]
            if target.gateways:
                choices += ["gateway drop", "gateway reset"]
            fault = plan.pop(0) if plan else self.random.choice(choices)
            self.report.faults[fault] += 1
            if fault == "pause":  # SIGSTOP: calls time out; then SIGCONT
                process.pause()
                self.stop.wait(self.random.uniform(0.2, 0.7))
                process.resume()
            elif fault == "restart":
                process.restart(graceful=False)
            elif fault == "gateway drop":
                self.random.choice(target.gateways).drop_connections()
            elif fault == "gateway reset":
                self.random.choice(target.gateways).drop_connections(abort=True)
            self._sample_servers()


async def _chaos(targets: list[Target], seconds: float, tasks: int, report: ChaosReport) -> None:
    clients = [AsyncClient(target.addresses, **OPTIONS, **target.options) for target in targets]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    workers = [_Worker(n, clients[n % len(clients)], report) for n in range(tasks)]
    report.tasks = tasks
    await asyncio.gather(*(worker.run(deadline) for worker in workers))
    for client in clients:
        await client.aclose()
    for _ in range(3):
        await asyncio.sleep(0)  # aborted transports close on the next turns
    report.leaked_tasks = len(asyncio.all_tasks() - {asyncio.current_task()})


def run_chaos(targets: list[Target], seconds: float, tasks: int) -> ChaosReport:
    """Run the chaos on a loop of its own; return what it saw (asserted by the caller)."""
    report = ChaosReport()
    ports = [port for target in targets for port in target.ports]
    report.server_baseline = max(
        int(process.stats()["curr_connections"])
        for target in targets
        for process in target.processes
    )
    chaos = _Chaos(targets, report, seconds)
    sampler = SocketSampler(ports, interval=0.01)
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        chaos.start()
        sampler.start()
        try:
            asyncio.run(_chaos(targets, seconds, tasks, report))
        finally:
            chaos.stop.set()
            chaos.join(timeout=15)
            sampler.stop.set()
            sampler.join(timeout=5)
        gc.collect()
    report.resource_warnings = sum(issubclass(w.category, ResourceWarning) for w in caught)
    report.seconds = time.monotonic() - started
    report.peak_client_sockets = sampler.peak
    report.peaks = sampler.peaks
    report.leaked_sockets = sum(client_sockets(ports).values())
    for target in targets:
        for process in target.processes:
            process.ensure_running()
    # memcached notices closed connections when it next runs its event loop: bounded wait.
    processes = [process for target in targets for process in target.processes]
    settle = time.monotonic() + 5
    while True:
        now = {process.name: int(process.stats()["curr_connections"]) for process in processes}
        if max(now.values()) <= report.server_baseline or time.monotonic() > settle:
            break
        time.sleep(0.05)
    report.server_leftover = max(now.values()) - report.server_baseline
    report.server_after = now
    report.gateway_links = sum(
        gateway.active_connections for target in targets for gateway in target.gateways
    )
    assert not chaos.is_alive(), "the fault injector did not stop"
    return report


def assert_clean(report: ChaosReport, *, min_calls: int) -> None:
    assert report.unexpected == []
    assert report.wrong == []
    assert report.leaked_tasks == 0
    assert report.leaked_sockets == 0
    assert report.resource_warnings == 0
    assert report.server_leftover <= 0
    # Bounded: max_connections per server, plus the few given up and closing at that instant
    # (an aborted connection frees its slot at once; its socket closes a loop turn later).
    assert report.peak_client_sockets <= MAX_CONNECTIONS + 4
    assert report.peak_server_connections <= report.server_baseline + 2 * MAX_CONNECTIONS
    assert sum(report.ops.values()) >= min_calls
    # Servers come back: failing fast must not turn into failing for good.
    assert report.succeeded >= min_calls // 4
    assert report.cancelled > 100
    assert report.faults["pause"] >= 1
    assert report.faults["restart"] >= 1
    assert sum(report.errors.values()) > 0  # the faults really reached the clients


def test_async_chaos(
    memcached_factory: Callable[..., MemcachedProcess], tls_material: TLSMaterial
) -> None:
    with chaos_targets(memcached_factory, tls_material) as targets:
        report = run_chaos(targets, seconds=12.0, tasks=600)
    print(report.summary())  # shown with -rP or -s
    assert_clean(report, min_calls=5000)


@pytest.mark.soak
def test_soak_both_engines(
    memcached_factory: Callable[..., MemcachedProcess],
    proxy_factory: Callable[..., FaultProxy],
    client_factory: Callable[..., Client],
    tls_material: TLSMaterial,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The sync soak (16 threads) and the async chaos (256 tasks) at once."""
    seconds = float(os.environ.get("SOAK_SECONDS", "60"))
    sync_report: list[Any] = []
    sync_errors: list[BaseException] = []

    def sync_soak() -> None:
        try:
            sync_report.append(
                test_soak.run_soak(seconds, memcached_factory, proxy_factory, client_factory)
            )
        except BaseException as exc:
            sync_errors.append(exc)

    with chaos_targets(memcached_factory, tls_material) as targets:
        thread = threading.Thread(target=sync_soak, name="sync-soak")
        thread.start()
        try:
            report = run_chaos(targets, seconds=seconds, tasks=256)
        finally:
            thread.join(timeout=seconds + 60)
    with capsys.disabled():
        print("\n" + report.summary())
        if sync_report:
            print(sync_report[0].text)
    assert not thread.is_alive()
    assert sync_errors == []
    test_soak.assert_soak_clean(sync_report[0])
    assert_clean(report, min_calls=int(seconds * 500))
