"""The async benchmarks of issue 18: Django's async cache methods, asyncio clients, uvicorn.

One run, against local memcached processes it starts itself (127.0.0.1, free ports),
measures three things:

the ASGI request shape (``request``)
    what one ASGI request does with the cache, as Django's ``ASGIHandler`` runs it: a
    fresh ``contextvars`` context and a ``ThreadSensitiveContext`` per request,
    ``await request_started.asend()``, then ``aget`` + ``aset`` + ``aget_many`` of 3
    keys on ``caches[alias]``, then the response's ``close()`` through
    ``sync_to_async`` (``request_finished``, so ``close_caches``). Rows: our backend's
    ``a*`` methods (whatever they are: Django's inherited ``sync_to_async`` wrappers, or
    native ones), Django's ``PyMemcacheCache`` (inherited wrappers), and our backend
    through ``sync_to_async`` of its sync methods; one request at a time and 32 at a
    time. A separate pass counts the thread hops of each request (calls of asgiref's
    ``SyncToAsync`` and of ``loop.run_in_executor``), split into those made by the
    cache calls and those Django's own request signals make whatever the cache.
asyncio clients (``clients``)
    ``layered_cache.AsyncClient`` against aiomcache and emcache (and emcache with its
    autobatching, for information), plus the sync ``Client`` through
    ``asgiref.sync.sync_to_async``: get hit, get miss, set (100 B) and get_many of 100
    keys, bytes values, with 1 and 32 concurrent tasks on one event loop. Every client
    may open 16 connections (our default ``max_connections``).
a real ASGI server (``uvicorn``)
    uvicorn (a subprocess, one worker) serving an async Django view that makes the same
    three cache calls, from a settings module this script writes to a temporary
    directory; a bounded load generator (asyncio streams, HTTP/1.1 keep-alive, a fixed
    number of requests from 32 connections) drives it. Reported: requests per second
    and the connections memcached sees (``stats``: held before, at the peak, after;
    opened during the load), for our backend and for ``PyMemcacheCache``.

Every timing is the best of ``--repeats`` runs of about ``--seconds`` each, the runs
of all rows interleaved. Ratios are speed ratios (> 1 is faster). The targets of
issue 18 are printed with PASS/FAIL at the end.

Usage::

    python -m benchmarks.async_bench [--quick] [--parts request,clients,uvicorn]
        [--json PATH]
"""

# ruff: noqa: RUF001
# (imports inside functions are deliberate: Django is configured first, peers are
# optional; the multiplication sign is the unit of the printed ratios)

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import importlib.metadata
import importlib.util
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._bench import (
    ROOT,
    Interference,
    Timing,
    fmt_int,
    fmt_ratio,
    machine,
    place,
    quiet_gc,
    wait_for_quiet,
)

PARTS = ("request", "clients", "uvicorn")
CONCURRENCY = (1, 32)
VALUE_100 = bytes(range(100))
#: Connections every asyncio client may open to the server (our default max_connections).
MAX_CONNECTIONS = 16
#: Ours must be at least this many times faster than PyMemcacheCache (issue 18).
REQUEST_GOAL = 8.0
#: How the request signals are sent in the ASGI request shape (see asgi_request); the
#: targets are read on "direct", where every thread hop is the cache's.
SHAPES = {
    "direct": "request signals sent in the loop, as run.py's request loop does",
    "asgi": "request signals sent as Django's ASGIHandler sends them (2 hops of its own)",
}
CLIENT_GOAL = 1.0

# Row names of the ASGI request shape (also the JSON keys).
R_OURS = "layered_cache backend, cache.a*"
R_PYMEMCACHE = "Django PyMemcacheCache, cache.a*"
R_OURS_S2A = "layered_cache backend, sync_to_async(get/set/get_many)"
# For reference: the same request with the three calls made on an AsyncClient directly
# (no Django backend in between), and with no cache call at all (what Django's own
# request machinery costs in this shape, whatever the cache).
R_CLIENT = "AsyncClient called directly in the view"
R_NOTHING = "no cache calls (Django's request signals alone)"
#: row -> the CACHES alias whose backend prepares (and, for the first three, serves) the data
REQUEST_ROWS = {
    R_OURS: "ours",
    R_PYMEMCACHE: "pymemcache",
    R_OURS_S2A: "ours",
    R_CLIENT: "ours",
    R_NOTHING: "ours",
}

# Row names of the asyncio clients.
C_OURS = "layered_cache AsyncClient"
C_AIOMCACHE = "aiomcache"
C_EMCACHE = "emcache"
C_EMCACHE_BATCH = "emcache (autobatching)"
C_SYNC = "layered_cache Client via sync_to_async"
CLIENT_ROWS = [C_OURS, C_AIOMCACHE, C_EMCACHE, C_EMCACHE_BATCH, C_SYNC]
#: The peers whose faster one is the reference (their default configuration).
PEERS = (C_AIOMCACHE, C_EMCACHE)
CLIENT_WORKLOADS = {
    "get_hit": "get hit (100 B)",
    # The same, each call asking the next of 32 keys (so 32 tasks ask 32 different keys
    # in a turn: what an autobatching client cannot fold into one key).
    "get_hit_keys": "get hit (100 B), 32 different keys in turn",
    "get_miss": "get miss",
    "set": "set (100 B)",
    "get_many_100": "get_many (100 keys)",
}

#: The workloads issue 18's target is read on (the others are shown for information).
TARGET_WORKLOADS = ("get_hit", "get_miss", "set", "get_many_100")

UVICORN_BACKENDS = {
    "ours": ("layered_cache backend", "layered_cache.django.MemcacheCache"),
    "pymemcache": (
        "Django PyMemcacheCache",
        "django.core.cache.backends.memcached.PyMemcacheCache",
    ),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Target:
    what: str
    passed: bool | None
    measured: str
    goal: str

    @property
    def status(self) -> str:
        return "n/a" if self.passed is None else ("PASS" if self.passed else "FAIL")

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.what,
            "measured": self.measured,
            "goal": self.goal,
            "status": self.status,
        }


@dataclass
class Results:
    #: (shape, row, concurrency) -> seconds per request
    requests: dict[tuple[str, str, int], Timing] = field(default_factory=dict)
    #: (shape, row) -> {"cache": {...}, "django": {...}} thread hops per request
    hops: dict[tuple[str, str], dict[str, dict[str, float]]] = field(default_factory=dict)
    ours_async_methods: str = ""
    #: (row, workload, concurrency) -> seconds per call
    clients: dict[tuple[str, str, int], Timing] = field(default_factory=dict)
    uvicorn: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    interference: float | None = None
    background_before: float | None = None
    #: concurrency -> where the processes ran (_bench.place)
    placements: dict[int, str] = field(default_factory=dict)


# -- timing coroutines ----------------------------------------------------------------------


async def run_calls(call: Callable[[], Awaitable[object]], n: int, concurrency: int) -> float:
    """Seconds per call (wall time / calls) of ``n`` calls from ``concurrency`` tasks."""
    perf = time.perf_counter
    if concurrency == 1:
        start = perf()
        for _ in range(n):
            await call()
        return (perf() - start) / n
    per_task = max(1, n // concurrency)

    async def worker() -> None:
        for _ in range(per_task):
            await call()

    start = perf()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (perf() - start) / (per_task * concurrency)


async def run_requests(request: Callable[[], Awaitable[None]], n: int, concurrency: int) -> float:
    """Seconds per request of ``n`` requests, each a task in a fresh ``contextvars`` context.

    ``concurrency`` workers each run one request after the other, as an ASGI server
    serving that many connections would.
    """
    loop = asyncio.get_running_loop()
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await loop.create_task(request(), context=contextvars.Context())  # type: ignore[arg-type]

    perf = time.perf_counter
    start = perf()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (perf() - start) / n


async def calibrate(run: Callable[[int], Awaitable[float]], seconds: float, least: int) -> int:
    """How many calls take about ``seconds`` (at least ``least``); also warms up."""
    n = least
    while True:
        per_call = await run(n)
        if per_call * n >= 0.02 or n >= 1 << 20:
            break
        n *= 2
    return max(least, int(seconds / max(per_call, 1e-9)))


# -- part 1: the ASGI request shape ------------------------------------------------------------

#: Which part of a request is running: "cache" (the view's cache calls) or "django".
PHASE: contextvars.ContextVar[str] = contextvars.ContextVar("phase", default="other")


class HopCounter:
    """Counts asgiref ``SyncToAsync`` calls and ``loop.run_in_executor`` calls by PHASE."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> HopCounter:
        from asgiref.sync import SyncToAsync

        counts = self.counts
        original_call = SyncToAsync.__call__
        original_run = asyncio.BaseEventLoop.run_in_executor

        async def counted_call(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts["sync_to_async", PHASE.get()] += 1
            return await original_call(self, *args, **kwargs)

        def counted_run(self: Any, executor: Any, func: Any, *args: Any) -> Any:
            counts["run_in_executor", PHASE.get()] += 1
            return original_run(self, executor, func, *args)

        SyncToAsync.__call__ = counted_call  # type: ignore[method-assign]
        asyncio.BaseEventLoop.run_in_executor = counted_run  # type: ignore[method-assign]

        def undo() -> None:
            SyncToAsync.__call__ = original_call  # type: ignore[method-assign]
            asyncio.BaseEventLoop.run_in_executor = original_run  # type: ignore[method-assign]

        self._undo.append(undo)
        return self

    def __exit__(self, *exc: object) -> None:
        while self._undo:
            self._undo.pop()()


def configure_django(address: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        CACHES={
            "ours": {"BACKEND": "layered_cache.django.MemcacheCache", "LOCATION": address},
            "pymemcache": {
                "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                "LOCATION": address,
            },
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        },
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
        SECRET_KEY="benchmark",  # noqa: S106 - never used for anything secret
        ALLOWED_HOSTS=["*"],
        LOGGING_CONFIG=None,
    )
    django.setup()


def describe_ours_async_methods() -> str:
    """Whether our backend's ``aget`` etc. are Django's inherited wrappers or its own."""
    from django.core.cache.backends.base import BaseCache

    from layered_cache.django import MemcacheCache

    names = ("aget", "aset", "aget_many")
    inherited = [n for n in names if getattr(MemcacheCache, n) is getattr(BaseCache, n)]
    if len(inherited) == len(names):
        return "Django's inherited sync_to_async wrappers"
    if not inherited:
        return "native (its own coroutines)"
    return f"partly inherited from Django ({', '.join(inherited)})"


def request_view(row: str, prefix: str, address: str) -> Callable[[], Awaitable[None]]:
    """The view of ``row``: its three cache calls (or none)."""
    from asgiref.sync import sync_to_async
    from django.core.cache import caches

    alias = REQUEST_ROWS[row]
    session, seen = prefix + "session", prefix + "seen"
    many = [prefix + "user", prefix + "cart", prefix + "absent"]
    if row == R_NOTHING:

        async def view() -> None:
            return None

    elif row == R_CLIENT:
        from layered_cache import AsyncClient

        client = AsyncClient(address)
        # The keys as Django's backends make them (version 1, no prefix).
        k_session, k_seen = f":1:{session}", f":1:{seen}"
        k_many = [f":1:{key}" for key in many]

        async def view() -> None:
            await client.get(k_session)
            await client.set(k_seen, VALUE_100, 30)
            await client.get_many(k_many)

    elif row == R_OURS_S2A:

        async def view() -> None:
            cache = caches[alias]
            await sync_to_async(cache.get)(session)
            await sync_to_async(cache.set)(seen, VALUE_100, 30)
            await sync_to_async(cache.get_many)(many)

    else:

        async def view() -> None:
            cache = caches[alias]  # a new backend instance in every request's context
            await cache.aget(session)
            await cache.aset(seen, VALUE_100, 30)
            await cache.aget_many(many)

    return view


def asgi_request(shape: str, row: str, prefix: str, address: str) -> Callable[[], Awaitable[None]]:
    """One request in a ``ThreadSensitiveContext``, the view making three cache calls.

    ``shape`` says how the request signals are sent: ``"direct"``, called in the
    event loop as the sync request loop of ``run.py`` does (so every thread hop is the
    cache's); ``"asgi"``, as Django's ``ASGIHandler`` sends them
    (``request_started.asend()``, and ``sync_to_async(response.close)``, which sends
    ``request_finished``): two hops per request whatever the cache.
    """
    from asgiref.sync import ThreadSensitiveContext, sync_to_async
    from django.core.handlers.asgi import ASGIHandler
    from django.core.signals import request_finished, request_started
    from django.http import HttpResponse

    view = request_view(row, prefix, address)
    scope = {"type": "http", "method": "GET", "path": "/"}
    started = request_started.asend

    async def asgi_handler_request() -> None:
        async with ThreadSensitiveContext():
            PHASE.set("django")
            await started(sender=ASGIHandler, scope=scope)
            PHASE.set("cache")
            await view()
            PHASE.set("django")
            response = HttpResponse(b"ok")
            response._handler_class = ASGIHandler  # as ASGIHandler.run_get_response does
            # ASGIHandler.handle: the response's close() sends request_finished
            # (close_caches -> cache.close()).
            await sync_to_async(response.close)()

    send_started, send_finished = request_started.send, request_finished.send

    async def direct_request() -> None:
        async with ThreadSensitiveContext():
            PHASE.set("django")
            send_started(sender=ASGIHandler, scope=scope)
            PHASE.set("cache")
            await view()
            PHASE.set("django")
            send_finished(sender=ASGIHandler)  # close_caches -> cache.close()

    return asgi_handler_request if shape == "asgi" else direct_request


def prepare_request_data(row: str, prefix: str) -> None:
    from django.core.cache import caches

    cache = caches[REQUEST_ROWS[row]]
    cache.set(prefix + "session", VALUE_100)
    cache.set(prefix + "user", VALUE_100)
    cache.set(prefix + "cart", VALUE_100)
    assert cache.get(prefix + "session") == VALUE_100
    cache.close()


async def measure_requests(
    shape: str, address: str, seconds: float, repeats: int, count_requests: int, res: Results
) -> None:
    rows = list(REQUEST_ROWS)
    requests = {}
    for i, row in enumerate(rows):
        prefix = f"rq{i}:"
        prepare_request_data(row, prefix)
        requests[row] = asgi_request(shape, row, prefix, address)
    # Thread hops: a counted pass of its own (the counters would slow the timed runs).
    for row in rows:
        with HopCounter() as hops:
            await run_requests(requests[row], count_requests, 1)
            await run_requests(requests[row], count_requests, 32)
        total = 2 * count_requests
        res.hops[shape, row] = {
            phase: {
                kind: hops.counts[kind, phase] / total
                for kind in ("sync_to_async", "run_in_executor")
            }
            for phase in ("cache", "django", "other")
        }
        log(f"  thread hops counted ({shape}): {row}")
    for concurrency in CONCURRENCY:
        res.placements[concurrency] = place_for(concurrency)
        least = max(4, concurrency * 2)
        counts = {}
        for row in rows:
            counts[row] = await calibrate(
                lambda n, r=row, c=concurrency: run_requests(requests[r], n, c), seconds, least
            )
        for _ in range(repeats):
            for row in rows:
                n = counts[row]
                timing = res.requests.setdefault((shape, row, concurrency), Timing(ops=n))
                with quiet_gc():
                    timing.runs.append(await run_requests(requests[row], n, concurrency))
        log(f"  ASGI request shape ({shape}), {concurrency} at a time: {len(rows)} rows")


# -- part 2: asyncio clients ---------------------------------------------------------------------


@dataclass
class ClientRow:
    name: str
    ops: dict[str, Callable[[], Awaitable[object]]]
    close: Callable[[], Awaitable[object]]


async def ours_client_row(host: str, port: int, prefix: bytes) -> ClientRow:
    from layered_cache import AsyncClient

    client = AsyncClient(f"{host}:{port}", max_connections=MAX_CONNECTIONS)
    hit, miss, setk = prefix + b"hit", prefix + b"missing", prefix + b"set"
    many = [prefix + b"many:%03d" % i for i in range(100)]
    await client.set(hit, VALUE_100)
    await client.set_many(dict.fromkeys(many, VALUE_100))
    assert await client.get(hit) == VALUE_100
    assert await client.get(miss) is None
    assert len(await client.get_many(many)) == len(many)
    get, set_, get_many = client.get, client.set, client.get_many
    turn = itertools.cycle(many[:32])
    ops = {
        "get_hit": lambda: get(hit),
        "get_hit_keys": lambda: get(next(turn)),
        "get_miss": lambda: get(miss),
        "set": lambda: set_(setk, VALUE_100),
        "get_many_100": lambda: get_many(many),
    }
    return ClientRow(C_OURS, ops, client.aclose)


async def aiomcache_row(host: str, port: int, prefix: bytes) -> ClientRow:
    import aiomcache

    client = aiomcache.Client(host, port, pool_size=MAX_CONNECTIONS)
    hit, miss, setk = prefix + b"hit", prefix + b"missing", prefix + b"set"
    many = [prefix + b"many:%03d" % i for i in range(100)]
    await client.set(hit, VALUE_100)
    for key in many:
        await client.set(key, VALUE_100)
    assert await client.get(hit) == VALUE_100
    assert await client.get(miss) is None
    assert all(v == VALUE_100 for v in await client.multi_get(*many))
    get, set_, multi_get = client.get, client.set, client.multi_get
    turn = itertools.cycle(many[:32])
    ops = {
        "get_hit": lambda: get(hit),
        "get_hit_keys": lambda: get(next(turn)),
        "get_miss": lambda: get(miss),
        "set": lambda: set_(setk, VALUE_100),
        "get_many_100": lambda: multi_get(*many),
    }
    return ClientRow(C_AIOMCACHE, ops, client.close)


async def emcache_row(host: str, port: int, prefix: bytes, *, autobatching: bool) -> ClientRow:
    import emcache

    client = await emcache.create_client(
        [emcache.MemcachedHostAddress(host, port)],
        max_connections=MAX_CONNECTIONS,
        autobatching=autobatching,
    )
    hit, miss, setk = prefix + b"hit", prefix + b"missing", prefix + b"set"
    many = [prefix + b"many:%03d" % i for i in range(100)]
    await client.set(hit, VALUE_100)
    for key in many:
        await client.set(key, VALUE_100)
    item = await client.get(hit)
    assert item is not None
    assert item.value == VALUE_100
    assert await client.get(miss) is None
    assert len(await client.get_many(many)) == len(many)
    get, set_, get_many = client.get, client.set, client.get_many
    turn = itertools.cycle(many[:32])
    ops = {
        "get_hit": lambda: get(hit),
        "get_hit_keys": lambda: get(next(turn)),
        "get_miss": lambda: get(miss),
        "set": lambda: set_(setk, VALUE_100),
        "get_many_100": lambda: get_many(many),
    }
    return ClientRow(C_EMCACHE_BATCH if autobatching else C_EMCACHE, ops, client.close)


async def sync_client_row(host: str, port: int, prefix: bytes) -> ClientRow:
    from asgiref.sync import sync_to_async

    from layered_cache import Client

    client = Client(f"{host}:{port}")
    hit, miss, setk = prefix + b"hit", prefix + b"missing", prefix + b"set"
    many = [prefix + b"many:%03d" % i for i in range(100)]
    client.set(hit, VALUE_100)
    client.set_many(dict.fromkeys(many, VALUE_100))
    assert client.get(hit) == VALUE_100
    # sync_to_async's default, thread_sensitive=True: what Django's inherited methods use.
    get, set_, get_many = (
        sync_to_async(client.get),
        sync_to_async(client.set),
        sync_to_async(client.get_many),
    )
    turn = itertools.cycle(many[:32])
    ops = {
        "get_hit": lambda: get(hit),
        "get_hit_keys": lambda: get(next(turn)),
        "get_miss": lambda: get(miss),
        "set": lambda: set_(setk, VALUE_100),
        "get_many_100": lambda: get_many(many),
    }

    async def close() -> None:
        client.close()

    return ClientRow(C_SYNC, ops, close)


async def measure_clients(host: str, port: int, seconds: float, repeats: int, res: Results) -> None:
    builders: list[tuple[str, Callable[[], Awaitable[ClientRow]]]] = [
        (C_OURS, lambda: ours_client_row(host, port, b"co:")),
        (C_AIOMCACHE, lambda: aiomcache_row(host, port, b"ca:")),
        (C_EMCACHE, lambda: emcache_row(host, port, b"ce:", autobatching=False)),
        (C_EMCACHE_BATCH, lambda: emcache_row(host, port, b"cb:", autobatching=True)),
        (C_SYNC, lambda: sync_client_row(host, port, b"cs:")),
    ]
    rows: list[ClientRow] = []
    for name, build in builders:
        try:
            rows.append(await build())
        except Exception as exc:  # a peer that cannot even start is reported, not fatal
            res.skipped.append(f"{name}: {type(exc).__name__}: {exc}")
    try:
        for workload, title in CLIENT_WORKLOADS.items():
            for concurrency in CONCURRENCY:
                res.placements[concurrency] = place_for(concurrency)
                least = concurrency * 4
                counts = {}
                for row in rows:
                    counts[row.name] = await calibrate(
                        lambda n, op=row.ops[workload], c=concurrency: run_calls(op, n, c),
                        seconds,
                        least,
                    )
                for _ in range(repeats):
                    for row in rows:
                        n = counts[row.name]
                        key = (row.name, workload, concurrency)
                        timing = res.clients.setdefault(key, Timing(ops=n))
                        with quiet_gc():
                            timing.runs.append(await run_calls(row.ops[workload], n, concurrency))
                log(f"  {title}, {concurrency} concurrent: {len(rows)} rows")
    finally:
        for row in rows:
            with contextlib.suppress(Exception):
                await row.close()


# -- part 3: uvicorn ---------------------------------------------------------------------------

SITE_MODULE = "layered_cache_bench_site"

SITE_SOURCE = '''\
"""Settings, view and URLconf of the uvicorn benchmark (written by benchmarks/async_bench.py)."""

import os

from django.http import HttpResponse
from django.urls import path

CACHES = {{
    "default": {{"BACKEND": os.environ["LAYERED_CACHE_BENCH_BACKEND"], "LOCATION": {address!r}}},
}}
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {{}}
DEBUG = False
USE_TZ = True
SECRET_KEY = "benchmark"
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = __name__
LOGGING_CONFIG = None

MANY = ["user", "cart", "absent"]
VALUE = bytes(range(100))


async def view(request):
    from django.core.cache import cache

    await cache.aget("session")
    await cache.aset("seen", VALUE, 30)
    found = await cache.aget_many(MANY)
    body = b"ok %d" % len(found)
    return HttpResponse(body, headers={{"Content-Length": str(len(body))}})


urlpatterns = [path("", view)]
'''


class MemcachedStats:
    """``stats`` over one connection of its own (which memcached counts too)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> MemcachedStats:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), 5
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()

    async def connections(self) -> tuple[int, int]:
        """(curr_connections, total_connections)."""
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(b"stats\r\n")
        reply = await asyncio.wait_for(self._reader.readuntil(b"END\r\n"), 5)
        stats = {}
        for line in reply.decode().splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0] == "STAT":
                stats[parts[1]] = parts[2]
        return int(stats["curr_connections"]), int(stats["total_connections"])


@contextlib.contextmanager
def uvicorn_server(site_dir: Path, backend: str, log_file: Path) -> Iterator[tuple[str, int]]:
    """uvicorn serving the benchmark site on a free loopback port; stopped on exit."""
    from tests.harness import free_port

    port = free_port()
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE=SITE_MODULE,
        LAYERED_CACHE_BENCH_BACKEND=backend,
        PYTHONPATH=os.pathsep.join([str(site_dir), str(ROOT)]),
    )
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "django.core.asgi:get_asgi_application",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "asyncio",
        "--http",
        http,
        "--lifespan",
        "off",
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "2",
    ]
    with log_file.open("w") as out:
        proc = subprocess.Popen(argv, env=env, cwd=site_dir, stdout=out, stderr=out)
    try:
        yield "127.0.0.1", port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


REQUEST_BYTES = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """One keep-alive GET /; returns the status code (the body is read and dropped)."""
    writer.write(REQUEST_BYTES)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise RuntimeError(f"a response without Content-Length: {head!r}")
    await reader.readexactly(length)
    return status


async def wait_until_serving(host: str, port: int, timeout: float, log_file: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
            try:
                status = await asyncio.wait_for(http_get(reader, writer), 5)
            finally:
                writer.close()
            if status == 200:
                return
            raise RuntimeError(f"the benchmark view answered {status}: {log_file.read_text()}")
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"uvicorn did not serve within {timeout:.0f} s: {log_file.read_text()[-2000:]}"
                ) from None
            await asyncio.sleep(0.1)


async def load(host: str, port: int, requests: int, concurrency: int, timeout: float) -> dict:
    """``requests`` GETs from ``concurrency`` keep-alive connections; bounded by ``timeout``."""
    remaining = requests
    statuses: Counter[int] = Counter()

    async def client() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while remaining > 0:
                remaining -= 1
                statuses[await http_get(reader, writer)] += 1
        finally:
            writer.close()

    start = time.perf_counter()
    async with asyncio.timeout(timeout):
        await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "statuses": dict(statuses)}


async def measure_uvicorn_backend(
    backend: str, memcached: tuple[str, int], site_dir: Path, requests: int
) -> dict[str, Any]:
    host, port = memcached
    concurrency = 32
    log_file = site_dir / f"uvicorn-{backend}.log"
    async with MemcachedStats(host, port) as stats:
        baseline, _ = await stats.connections()  # listeners + this connection
        with uvicorn_server(site_dir, UVICORN_BACKENDS[backend][1], log_file) as (
            web_host,
            web_port,
        ):
            await wait_until_serving(web_host, web_port, 30, log_file)
            # Warm-up: the same concurrency, so that pools reach their working size.
            await load(web_host, web_port, concurrency * 4, concurrency, 60)
            await asyncio.sleep(0.2)
            before, total_before = await stats.connections()
            peak = before
            stop = asyncio.Event()

            async def sample() -> None:
                nonlocal peak
                while not stop.is_set():
                    current, _ = await stats.connections()
                    peak = max(peak, current)
                    await asyncio.sleep(0.005)

            sampler = asyncio.create_task(sample())
            try:
                result = await load(web_host, web_port, requests, concurrency, 300)
            finally:
                stop.set()
                await sampler
            after, total_after = await stats.connections()
            await asyncio.sleep(0.5)
            settled, _ = await stats.connections()
        await asyncio.sleep(0.2)
        stopped, _ = await stats.connections()
    ok = result["statuses"].get(200, 0)
    return {
        "backend": UVICORN_BACKENDS[backend][0],
        "requests": requests,
        "concurrency": concurrency,
        "ok": ok,
        "statuses": result["statuses"],
        "seconds": result["seconds"],
        "req_per_s": ok / result["seconds"],
        # Connections the uvicorn process holds (memcached's count less its
        # listeners and our stats connection, i.e. less what it had before uvicorn started).
        "held_before": before - baseline,
        "held_peak": peak - baseline,
        "held_after": after - baseline,
        "held_after_0_5s": settled - baseline,
        "held_after_stop": stopped - baseline,
        "opened_during_load": total_after - total_before,
    }


async def measure_uvicorn(memcached: tuple[str, int], requests: int, res: Results) -> None:
    place("free")  # uvicorn, memcached and the load generator: a system of its own
    with tempfile.TemporaryDirectory(prefix="layered-cache-bench-asgi-") as tmp:
        site_dir = Path(tmp)
        (site_dir / f"{SITE_MODULE}.py").write_text(
            SITE_SOURCE.format(address=f"{memcached[0]}:{memcached[1]}")
        )
        await memcached_set_many(memcached, ["session", "user", "cart"])
        for backend in UVICORN_BACKENDS:
            try:
                res.uvicorn[backend] = await measure_uvicorn_backend(
                    backend, memcached, site_dir, requests
                )
            except Exception as exc:
                res.skipped.append(f"uvicorn, {backend}: {type(exc).__name__}: {exc}")
            log(f"  uvicorn: {UVICORN_BACKENDS[backend][0]}")


async def memcached_set_many(memcached: tuple[str, int], names: list[str]) -> None:
    """Store the view's keys as Django makes them (``:1:<key>``), 100 bytes each."""
    reader, writer = await asyncio.open_connection(*memcached)
    try:
        for name in names:
            key = f":1:{name}".encode()
            writer.write(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(VALUE_100), VALUE_100))
            assert await asyncio.wait_for(reader.readline(), 5) == b"STORED\r\n"
    finally:
        writer.close()


# -- reporting -------------------------------------------------------------------------------------


def best_peer(res: Results, workload: str, concurrency: int) -> tuple[str, Timing] | None:
    found = [
        (name, res.clients[name, workload, concurrency])
        for name in PEERS
        if (name, workload, concurrency) in res.clients
    ]
    if not found:
        return None
    return min(found, key=lambda item: item[1].best)


def request_ratio(res: Results, shape: str, row: str, concurrency: int) -> float | None:
    a = res.requests.get((shape, row, concurrency))
    b = res.requests.get((shape, R_PYMEMCACHE, concurrency))
    return None if a is None or b is None else b.best / a.best


def client_ratio(res: Results, row: str, workload: str, concurrency: int) -> float | None:
    mine = res.clients.get((row, workload, concurrency))
    ref = best_peer(res, workload, concurrency)
    return None if mine is None or ref is None else ref[1].best / mine.best


def hops_text(hops: dict[str, float]) -> str:
    return f"{hops['sync_to_async']:.1f} / {hops['run_in_executor']:.1f}"


def place_for(concurrency: int) -> str:
    """One at a time compares CPU cost (one CPU); concurrent calls overlap server waits."""
    return place("same" if concurrency == 1 else "split")


def placement_note(res: Results) -> str:
    return "(" + "; ".join(f"{c} at a time: {where}" for c, where in res.placements.items()) + ")"


def print_tables(res: Results, out: Callable[[str], None]) -> None:  # noqa: PLR0912
    for shape, shape_title in SHAPES.items():
        if not any(key[0] == shape for key in res.requests):
            continue
        out("")
        out(
            "== ASGI request shape: aget + aset + aget_many (3 keys), a fresh context and "
            "a ThreadSensitiveContext per request =="
        )
        out(f"({shape!r}: {shape_title})")
        out(f"our backend's aget/aset/aget_many are {res.ours_async_methods}")
        out(placement_note(res))
        out(f"{'row':<56} {'at once':>7} {'µs/req':>9} {'req/s':>9} {'vs PyMemcacheCache':>19}")
        for concurrency in CONCURRENCY:
            for row in REQUEST_ROWS:
                timing = res.requests.get((shape, row, concurrency))
                if timing is None:
                    continue
                out(
                    f"{row:<56} {concurrency:>7} {timing.best * 1e6:>9.1f} "
                    f"{fmt_int(1 / timing.best):>9} "
                    f"{fmt_ratio(request_ratio(res, shape, row, concurrency)):>19}"
                )
        out("thread hops per request (SyncToAsync calls / loop.run_in_executor calls):")
        out(f"{'row':<56} {'cache calls':>12} {'Django signals':>15}")
        for row in REQUEST_ROWS:
            hops = res.hops.get((shape, row))
            if hops is not None:
                out(f"{row:<56} {hops_text(hops['cache']):>12} {hops_text(hops['django']):>15}")
        if shape == "asgi":
            out(
                "(Django's own hops: request_started.asend() runs its sync receivers, and "
                "the response's close() sends request_finished, through sync_to_async, "
                "whatever the cache)"
            )
    if res.clients:
        for workload, title in CLIENT_WORKLOADS.items():
            out("")
            out(f"== asyncio clients: {title}, bytes values ==")
            out(placement_note(res))
            out(f"{'row':<40} {'tasks':>5} {'µs/op':>8} {'ops/s':>9} {'vs faster peer':>15}")
            for concurrency in CONCURRENCY:
                ref = best_peer(res, workload, concurrency)
                for row in CLIENT_ROWS:
                    timing = res.clients.get((row, workload, concurrency))
                    if timing is None:
                        continue
                    ratio = client_ratio(res, row, workload, concurrency)
                    out(
                        f"{row:<40} {concurrency:>5} {timing.best * 1e6:>8.1f} "
                        f"{fmt_int(1 / timing.best):>9} {fmt_ratio(ratio):>15}"
                    )
                if ref is not None:
                    out(f"{'':<40} {'':>5} (faster peer at {concurrency}: {ref[0]})")
        out(
            f"(every client may open {MAX_CONNECTIONS} connections; one asyncio event loop; "
            "the faster of aiomcache and emcache, without autobatching, is the reference)"
        )
    if res.uvicorn:
        out("")
        out(
            "== uvicorn (1 worker) serving an async Django view (aget + aset + aget_many), "
            "32 concurrent keep-alive connections =="
        )
        out(
            f"{'backend':<24} {'requests':>8} {'ok':>6} {'req/s':>8} "
            f"{'memcached connections: before / peak / after; opened during load':>66}"
        )
        for entry in res.uvicorn.values():
            out(
                f"{entry['backend']:<24} {entry['requests']:>8} {entry['ok']:>6} "
                f"{fmt_int(entry['req_per_s']):>8} "
                f"{entry['held_before']:>33} / {entry['held_peak']} / {entry['held_after']}; "
                f"{entry['opened_during_load']}"
            )
        ours = res.uvicorn.get("ours")
        theirs = res.uvicorn.get("pymemcache")
        if ours and theirs:
            out(
                f"req/s, ours vs PyMemcacheCache: "
                f"{fmt_ratio(ours['req_per_s'] / theirs['req_per_s'])}"
            )
    if res.interference is not None:
        out(
            f"other processes used {res.interference:.0%} of the CPUs during the run"
            + (
                f" ({res.background_before:.0%} just before it)"
                if res.background_before is not None
                else ""
            )
        )
    for line in res.skipped:
        out(f"skipped: {line}")


def targets(res: Results) -> list[Target]:
    found: list[Target] = []
    if res.requests:
        for concurrency in CONCURRENCY:
            ratio = request_ratio(res, "direct", R_OURS, concurrency)
            found.append(
                Target(
                    f"ASGI request shape, {concurrency} at a time: ours vs PyMemcacheCache",
                    None if ratio is None else ratio >= REQUEST_GOAL,
                    fmt_ratio(ratio),
                    f"≥ {REQUEST_GOAL:.2f}×",
                )
            )
        hops = res.hops.get(("direct", R_OURS))
        if hops is not None:
            cache_hops = max(hops["cache"].values())
            found.append(
                Target(
                    "ASGI request shape: thread hops per request in our backend's calls",
                    cache_hops == 0,
                    f"{cache_hops:.1f}",
                    "0",
                )
            )
    if res.clients:
        for workload in TARGET_WORKLOADS:
            ratio = client_ratio(res, C_OURS, workload, 32)
            found.append(
                Target(
                    f"AsyncClient vs faster of aiomcache/emcache, 32 concurrent, {workload}",
                    None if ratio is None else ratio >= CLIENT_GOAL,
                    fmt_ratio(ratio),
                    f"≥ {CLIENT_GOAL:.2f}×",
                )
            )
    ours = res.uvicorn.get("ours")
    if res.uvicorn:
        bounded = None
        measured = "—"
        if ours is not None:
            bounded = (
                ours["ok"] == ours["requests"]
                and ours["held_peak"] <= MAX_CONNECTIONS
                and ours["opened_during_load"] <= MAX_CONNECTIONS
            )
            measured = f"peak {ours['held_peak']}, opened {ours['opened_during_load']}"
        found.append(
            Target(
                "uvicorn, 32 concurrent: our backend's memcached connections bounded",
                bounded,
                measured,
                f"peak and opened ≤ {MAX_CONNECTIONS}",
            )
        )
    return found


def print_targets(found: list[Target], out: Callable[[str], None]) -> None:
    out("")
    out("== issue 18 targets ==")
    for t in found:
        out(f"{t.status:<5} {t.what:<78} {t.measured:>20}  (goal {t.goal})")


def to_json(res: Results, found: list[Target], config: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": "async",
        "machine": machine(),
        "versions": {
            dist: importlib.metadata.version(dist)
            for dist in ("aiomcache", "emcache", "uvicorn", "asgiref", "Django")
            if importlib.util.find_spec(dist.lower()) is not None
        },
        "config": config,
        "request_shape": {
            "ours_async_methods": res.ours_async_methods,
            "shapes": SHAPES,
            "results": [
                {
                    "shape": shape,
                    "row": row,
                    "concurrency": concurrency,
                    **timing.as_dict(),
                    "vs_pymemcachecache": request_ratio(res, shape, row, concurrency),
                }
                for (shape, row, concurrency), timing in res.requests.items()
            ],
            "thread_hops_per_request": [
                {"shape": shape, "row": row, **hops} for (shape, row), hops in res.hops.items()
            ],
        },
        "clients": [
            {
                "row": row,
                "workload": workload,
                "concurrency": concurrency,
                **timing.as_dict(),
                "vs_faster_peer": client_ratio(res, row, workload, concurrency),
            }
            for (row, workload, concurrency), timing in res.clients.items()
        ],
        "uvicorn": res.uvicorn,
        "targets": [t.as_dict() for t in found],
        "other_processes_cpu_share": res.interference,
        "other_processes_cpu_share_before": res.background_before,
        "skipped": res.skipped,
    }


# -- main ----------------------------------------------------------------------------------------


async def run_parts(
    parts: list[str],
    memcached: tuple[str, int],
    uvicorn_memcached: tuple[str, int] | None,
    args: argparse.Namespace,
    res: Results,
) -> None:
    if "request" in parts:
        log("ASGI request shape ...")
        for shape in SHAPES:
            await measure_requests(
                shape,
                f"{memcached[0]}:{memcached[1]}",
                args.request_seconds,
                args.repeats,
                args.count_requests,
                res,
            )
    if "clients" in parts:
        log("asyncio clients ...")
        await measure_clients(*memcached, args.seconds, args.repeats, res)
    if "uvicorn" in parts and uvicorn_memcached is not None:
        log("uvicorn ...")
        await measure_uvicorn(uvicorn_memcached, args.requests, res)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (seconds)")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated subset of " + ", ".join(PARTS)
    )
    parser.add_argument("--seconds", type=float, help="length of one client run (default 0.1)")
    parser.add_argument(
        "--request-seconds", type=float, help="length of one request-shape run (default 0.3)"
    )
    parser.add_argument("--repeats", type=int, help="runs per measurement (default 5)")
    parser.add_argument(
        "--requests", type=int, help="requests sent to uvicorn per backend (default 3000)"
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=120.0,
        help="seconds to wait at most for other processes to leave the CPUs alone (0: don't)",
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}")
    args.seconds = args.seconds or (0.01 if args.quick else 0.1)
    args.request_seconds = args.request_seconds or (0.03 if args.quick else 0.3)
    args.repeats = args.repeats or (1 if args.quick else 5)
    args.requests = args.requests or (200 if args.quick else 3000)
    args.count_requests = 32 if args.quick else 128

    res = Results()
    if not args.quick and args.max_wait > 0:
        res.background_before = wait_for_quiet(log, max_wait=args.max_wait)
    warnings.simplefilter("ignore")  # Django's CacheKeyWarning etc. are not what we measure
    began = time.monotonic()
    interference = Interference()
    from tests.servers import ServerGroup, start_memcached

    group = ServerGroup()
    try:
        plain = group.add(start_memcached())
        # A server of its own for uvicorn, so that its connection count is uvicorn's alone.
        web = group.add(start_memcached()) if "uvicorn" in parts else None
        configure_django(plain.address)
        res.ours_async_methods = describe_ours_async_methods()
        log(f"memcached at {plain.address}" + (f" and {web.address}" if web else ""))
        interference.start()
        asyncio.run(
            run_parts(
                parts,
                (plain.host, plain.port),
                (web.host, web.port) if web is not None else None,
                args,
                res,
            )
        )
        res.interference = interference.stop()
    finally:
        group.close()
    log(f"done in {time.monotonic() - began:.0f} s")

    found = targets(res)
    print_tables(res, print)
    print_targets(found, print)
    config = {
        "seconds": args.seconds,
        "request_seconds": args.request_seconds,
        "repeats": args.repeats,
        "uvicorn_requests": args.requests,
        "hop_count_requests": args.count_requests,
        "max_connections": MAX_CONNECTIONS,
        "quick": args.quick,
        "parts": parts,
        "command": " ".join(["python -m benchmarks.async_bench", *(argv or sys.argv[1:])]),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = to_json(res, found, config)
        args.json.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
