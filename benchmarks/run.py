"""The peer benchmark of issue 6: layered_cache against what users would pick instead.

One run, against local memcached processes it starts itself (plain TCP, TLS, and one
behind the MemCachier gateway and behind the same proxy without auth), measures:

rows
    a raw-socket loop (the wire limit for Python), our ``Client``, our Django backend,
    raw ``pymemcache.Client``, pymemcache ``PooledClient`` and ``HashClient``, Django's
    ``PyMemcacheCache``, Django's ``PyLibMCCache`` (pylibmc, C) and django-bmemcached
    (binary protocol; plain TCP only);
workloads
    get hit (100 B), get miss, set (100 B), get of a ~10 KB pickled object, get_many
    and set_many of 100 keys, incr, and 8 threads sharing one cache (get hit);
transports
    ``tcp``, ``tls``, ``memcachier`` (the gateway, auth on every new connection) and
    ``proxy`` (the same gateway code without the handshake), where the row supports it;
the Django request loop
    N requests through Django's ``request_started``/``request_finished`` signals, each
    doing three cache calls, with Django's ``close_caches`` handler (``cache.close()``
    after every request) in place: our backend, ``PyMemcacheCache``, ``PyLibMCCache``
    over TCP and TLS.

Every number is the best of ``--repeats`` runs of about ``--seconds`` each; the runs of
all rows of one workload are interleaved so that machine noise hits every row alike.
Ratios are speed ratios (``ops/s of the row / ops/s of the reference``, > 1 is faster)
against Django's ``PyMemcacheCache`` and against the raw-socket loop on the same
transport.

Usage::

    python -m benchmarks.run [--quick] [--json PATH] [--png PATH]
"""

# ruff: noqa: RUF001
# (imports inside functions are deliberate: Django is configured first, peers are
# optional; the multiplication and minus signs are units in the printed tables)

from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import socket
import ssl
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._bench import (
    Interference,
    Timing,
    calibrate,
    fmt_int,
    fmt_ratio,
    machine,
    ours_django_backend,
    place,
    quiet_gc,
    run_once,
    run_threads,
    wait_for_quiet,
)

TRANSPORTS = ("tcp", "tls", "memcachier", "proxy")
TRANSPORT_TITLES = {
    "tcp": "plain TCP",
    "tls": "TLS",
    "memcachier": "MemCachier gateway (auth)",
    "proxy": "same gateway without auth",
}
WORKLOADS = {
    "get_hit": "get hit (100 B)",
    "get_miss": "get miss",
    "set": "set (100 B)",
    "get_10k": "get 10 KB pickled object",
    "get_many_100": "get_many (100 keys)",
    "set_many_100": "set_many (100 keys)",
    "incr": "incr",
    "threads_1": "1 thread, the threads harness (get hit)",
    "threads_8": "8 threads, one shared cache (get hit)",
    "threads_32": "32 threads, one shared cache (get hit)",
    "threads_1_set": "1 thread, the threads harness (set 100 B)",
    "threads_8_set": "8 threads, one shared cache (set 100 B)",
}
THREADS = 8
#: The threads workloads: (threads, operation). Only threads_8 runs on every transport.
THREAD_WORKLOADS = {
    "threads_1": (1, "get"),
    "threads_8": (8, "get"),
    "threads_32": (32, "get"),
    "threads_1_set": (1, "set"),
    "threads_8_set": (8, "set"),
}
USERNAME = "bench-user"
PASSWORD = "bench-secret"

# Row names (also the JSON keys).
WIRE = "raw socket (wire limit)"
OURS = "layered_cache Client"
OURS_DJANGO = "layered_cache Django backend"
PM_CLIENT = "pymemcache Client"
PM_POOLED = "pymemcache PooledClient"
PM_HASH = "pymemcache HashClient"
DJ_PYMEMCACHE = "Django PyMemcacheCache"
DJ_PYLIBMC = "Django PyLibMCCache (C)"
DJ_BMEMCACHED = "django-bmemcached (binary)"
ROW_ORDER = [
    WIRE,
    OURS,
    OURS_DJANGO,
    PM_CLIENT,
    PM_POOLED,
    PM_HASH,
    DJ_PYMEMCACHE,
    DJ_PYLIBMC,
    DJ_BMEMCACHED,
]

VALUE_100 = bytes(range(100))


def _object_of_about(size: int) -> dict[str, Any]:
    """A dict of records whose pickle is just over ``size`` bytes."""
    count = 1
    while True:
        obj = {
            "id": 42,
            "items": [
                {"id": i, "name": f"item-{i}", "price": i * 1.25, "tags": ["a", "b"]}
                for i in range(count)
            ],
        }
        if len(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)) >= size:
            return obj
        count += 1


OBJECT_10K = _object_of_about(10 * 1024)
MANY_KEYS = [f"many:{i:03d}" for i in range(100)]


# -- endpoints --------------------------------------------------------------------------


@dataclass
class Endpoint:
    """Where a row connects for one transport, and how."""

    transport: str
    host: str
    port: int
    ca_file: str | None = None
    ssl_context: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Row:
    """One client on one transport: a zero-argument callable per workload."""

    name: str
    transport: str
    ops: dict[str, Callable[[], object]]
    #: returns the callable one thread of the threads workload runs, or None (not thread-safe).
    thread_op: Callable[[], Callable[[], object]] | None
    close: Callable[[], None] = lambda: None
    note: str = ""
    #: the same for the threads workloads that set (None: not measured).
    thread_set: Callable[[], Callable[[], object]] | None = None

    def thread_factory(self, operation: str) -> Callable[[], Callable[[], object]] | None:
        return self.thread_op if operation == "get" else self.thread_set


@dataclass
class Results:
    rows: dict[tuple[str, str, str], Timing] = field(default_factory=dict)
    notes: dict[tuple[str, str], str] = field(default_factory=dict)
    request_loop: dict[tuple[str, str], Timing] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    #: share of the CPUs other processes used while we measured (the machine is shared)
    interference: float | None = None
    background_before: float | None = None
    #: what each proxy counted: {"memcachier": {"connections": .., "handshakes": ..}, ...}
    proxies: dict[str, dict[str, int]] = field(default_factory=dict)
    #: operations sent through each proxy transport (all rows, all workloads)
    proxied_calls: dict[str, int] = field(default_factory=dict)
    #: where the processes ran for each workload (_bench.place)
    placements: dict[str, str] = field(default_factory=dict)


# -- the raw-socket loop ----------------------------------------------------------------


def _connect_raw(ep: Endpoint) -> socket.socket:
    sock = socket.create_connection((ep.host, ep.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ep.ssl_context is not None:
        sock = ep.ssl_context.wrap_socket(sock, server_hostname=ep.host)
    if ep.username is not None and ep.password is not None:
        secret = ep.password.encode()
        sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (ep.username.encode(), len(secret), secret))
        if sock.recv(64) != b"STORED\r\n":
            raise RuntimeError("the gateway refused the handshake")
    return sock


def _raw_ops(sock: socket.socket, prefix: str) -> dict[str, Callable[[], object]]:
    send = sock.sendall
    recv = sock.recv

    def request(command: bytes, end: bytes) -> Callable[[], bytes]:
        def call() -> bytes:
            send(command)
            buf = recv(65536)
            while not buf.endswith(end):
                buf += recv(65536)
            return buf

        return call

    def request_lines(command: bytes, lines: int) -> Callable[[], bytes]:
        def call() -> bytes:
            send(command)
            buf = recv(65536)
            while buf.count(b"\r\n") < lines:
                buf += recv(65536)
            return buf

        return call

    p = prefix.encode()
    value_10k = pickle.dumps(OBJECT_10K, pickle.HIGHEST_PROTOCOL)
    many = [p + key.encode() for key in MANY_KEYS]
    set_many = b"".join(b"set %s 0 0 100\r\n%s\r\n" % (key, VALUE_100) for key in many)
    prepare = [
        b"set %shit 0 0 100\r\n%s\r\n" % (p, VALUE_100),
        b"set %sobj 1 0 %d\r\n%s\r\n" % (p, len(value_10k), value_10k),
        b"set %sctr 2 0 1\r\n0\r\n" % p,
    ]
    for command in prepare:
        request(command, b"\r\n")()
    request_lines(set_many, len(many))()
    return {
        "get_hit": request(b"get %shit\r\n" % p, b"END\r\n"),
        "get_miss": request(b"get %smissing\r\n" % p, b"END\r\n"),
        "set": request(b"set %sset 0 0 100\r\n%s\r\n" % (p, VALUE_100), b"\r\n"),
        "get_10k": request(b"get %sobj\r\n" % p, b"END\r\n"),
        "get_many_100": request(b"get " + b" ".join(many) + b"\r\n", b"END\r\n"),
        "set_many_100": request_lines(set_many, len(many)),
        "incr": request(b"incr %sctr 1\r\n" % p, b"\r\n"),
    }


def raw_row(ep: Endpoint, prefix: str) -> Row:
    sock = _connect_raw(ep)
    ops = _raw_ops(sock, prefix)
    sockets = [sock]

    def thread_op(name: str = "get_hit") -> Callable[[], object]:
        own = _connect_raw(ep)
        sockets.append(own)
        return _raw_ops(own, prefix)[name]

    def close() -> None:
        for s in sockets:
            s.close()

    return Row(WIRE, ep.transport, ops, thread_op, close, thread_set=lambda: thread_op("set"))


# -- client rows ------------------------------------------------------------------------


def _client_ops(cache: Any, prefix: str) -> dict[str, Callable[[], object]]:
    """Workload callables for anything with pymemcache's or Django's cache API."""
    hit, miss, obj, ctr, setk = (prefix + s for s in ("hit", "missing", "obj", "ctr", "set"))
    many = [prefix + key for key in MANY_KEYS]
    mapping = dict.fromkeys(many, VALUE_100)
    cache.set(hit, VALUE_100)
    cache.set(obj, OBJECT_10K)
    if hasattr(cache, "make_key"):
        # A Django cache: no expiry (its default, 300 s, can pass before the incr
        # workload runs on a busy machine).
        cache.set(ctr, 0, None)
    else:
        cache.set(ctr, 0)
    cache.set_many(mapping)
    assert cache.get(hit) == VALUE_100, f"{cache!r} did not read back its value"
    assert cache.get(miss) is None
    assert len(cache.get_many(many)) == len(many)
    get, set_, get_many, set_many, incr = (
        cache.get,
        cache.set,
        cache.get_many,
        cache.set_many,
        cache.incr,
    )
    return {
        "get_hit": lambda: get(hit),
        "get_miss": lambda: get(miss),
        "set": lambda: set_(setk, VALUE_100),
        "get_10k": lambda: get(obj),
        "get_many_100": lambda: get_many(many),
        "set_many_100": lambda: set_many(mapping),
        "incr": lambda: incr(ctr, 1),
    }


def ours_row(ep: Endpoint, prefix: str) -> Row:
    from layered_cache import Client
    from layered_cache.auth import MemCachierAuth, NoAuth
    from layered_cache.transport import TCPTransport, TLSTransport

    transport = TLSTransport(ca_file=ep.ca_file) if ep.transport == "tls" else TCPTransport()
    auth = (
        MemCachierAuth(ep.username, ep.password)
        if ep.username is not None and ep.password is not None
        else NoAuth()
    )
    client = Client(ep.address, transport=transport, auth=auth)
    get, set_ = client.get, client.set
    hit, setk = prefix + "hit", prefix + "set"
    return Row(
        OURS,
        ep.transport,
        _client_ops(client, prefix),
        lambda: lambda: get(hit),
        client.close,
        thread_set=lambda: lambda: set_(setk, VALUE_100),
    )


def _pymemcache_kwargs(ep: Endpoint) -> dict[str, Any]:
    from pymemcache import serde

    kwargs: dict[str, Any] = {
        "serde": serde.pickle_serde,
        "default_noreply": False,  # a write waits for its answer, as Django's backend does
        "allow_unicode_keys": True,
        "connect_timeout": 2,
        "timeout": 2,
    }
    if ep.ssl_context is not None:
        kwargs["tls_context"] = ep.ssl_context
    return kwargs


def pymemcache_rows(ep: Endpoint, prefix: str) -> list[Row]:
    from pymemcache import Client, HashClient, PooledClient

    rows = []
    kwargs = _pymemcache_kwargs(ep)
    server = (ep.host, ep.port)

    client = Client(server, **kwargs)
    rows.append(
        Row(
            PM_CLIENT,
            ep.transport,
            _client_ops(client, prefix + "c:"),
            None,
            client.close,
            "threads: not thread-safe",
        )
    )

    pooled = PooledClient(server, **kwargs)
    hit = prefix + "p:hit"
    rows.append(
        Row(
            PM_POOLED,
            ep.transport,
            _client_ops(pooled, prefix + "p:"),
            lambda: lambda: pooled.get(hit),
            pooled.close,
        )
    )

    # Single-threaded workloads: HashClient as Django builds it (no pooling). The threads
    # workload needs use_pooling=True to be thread-safe.
    hashed = HashClient([ep.address], **kwargs)
    shared = HashClient([ep.address], use_pooling=True, **kwargs)
    hit = prefix + "h:hit"

    def close() -> None:
        hashed.disconnect_all()
        shared.disconnect_all()

    rows.append(
        Row(
            PM_HASH,
            ep.transport,
            _client_ops(hashed, prefix + "h:"),
            lambda: lambda: shared.get(hit),
            close,
            "threads: use_pooling=True",
        )
    )
    return rows


def django_row(name: str, alias: str, ep: Endpoint, prefix: str) -> Row:
    """A Django backend, reached as applications reach it: ``caches[alias]`` per thread."""
    from django.core.cache import caches

    cache = caches[alias]
    ops = _client_ops(cache, prefix)
    hit = prefix + "hit"

    def thread_op() -> Callable[[], object]:
        own = caches[alias]  # Django's caches are per thread (asgiref Local)
        return lambda: own.get(hit)

    def thread_set() -> Callable[[], object]:
        own = caches[alias]
        return lambda: own.set(prefix + "set", VALUE_100)

    return Row(name, ep.transport, ops, thread_op, cache.close, thread_set=thread_set)


# -- Django settings ----------------------------------------------------------------------


def django_caches(endpoints: dict[str, Endpoint], ours_ok: bool) -> dict[str, dict[str, Any]]:
    """One CACHES alias per (backend, transport) pair the backend supports."""
    caches: dict[str, dict[str, Any]] = {}
    for transport, ep in endpoints.items():
        if ours_ok:
            options: dict[str, Any] = {}
            if transport == "tls":
                options.update(transport="tls", ca_file=ep.ca_file)
            if ep.username is not None:
                options.update(auth="memcachier", username=ep.username, password=ep.password)
            caches[f"ours-{transport}"] = {
                "BACKEND": "layered_cache.django.MemcacheCache",
                "LOCATION": ep.address,
                "OPTIONS": options,
            }
        if transport in ("tcp", "tls"):
            options = {"tls_context": ep.ssl_context} if transport == "tls" else {}
            caches[f"pymemcache-{transport}"] = {
                "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                "LOCATION": ep.address,
                "OPTIONS": options,
            }
        if transport == "tcp":
            caches["pylibmc-tcp"] = {
                "BACKEND": "django.core.cache.backends.memcached.PyLibMCCache",
                "LOCATION": ep.address,
            }
            caches["bmemcached-tcp"] = {
                "BACKEND": "django_bmemcached.memcached.BMemcached",
                "LOCATION": ep.address,
            }
    caches["default"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    return caches


def configure_django(caches: dict[str, dict[str, Any]]) -> None:
    import django
    from django.conf import settings

    settings.configure(
        CACHES=caches,
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
        SECRET_KEY="benchmark",  # noqa: S106 - never used for anything secret
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        LOGGING_CONFIG=None,
    )
    django.setup()


urlpatterns: list[Any] = []  # ROOT_URLCONF for Django's checks; no view is served


# -- servers --------------------------------------------------------------------------------


@contextlib.contextmanager
def servers(want_proxies: bool, res: Results) -> Iterator[dict[str, Endpoint]]:
    """Start memcached (plain and TLS), the MemCachier gateway and the auth-less proxy."""
    from benchmarks.proxy import ProxyProcess
    from tests.servers import ServerGroup, TLSMaterial, start_memcached, start_tls_memcached

    group = ServerGroup()
    with TLSMaterial() as material, contextlib.ExitStack() as stack:
        stack.callback(group.close)
        plain = group.add(start_memcached())
        tls = group.add(start_tls_memcached(material))
        context = material.client_context()
        endpoints = {
            "tcp": Endpoint("tcp", plain.host, plain.port),
            "tls": Endpoint("tls", tls.host, tls.port, material.ca_file, context),
        }
        if want_proxies:
            gateway = ProxyProcess(plain.address, username=USERNAME, password=PASSWORD)
            proxy = ProxyProcess(plain.address)
            # Runs last (after both proxies stopped and reported their counters).
            stack.callback(
                lambda: res.proxies.update(memcachier=gateway.counts, proxy=proxy.counts)
            )
            stack.enter_context(gateway)
            stack.enter_context(proxy)
            endpoints["memcachier"] = Endpoint(
                "memcachier", plain.host, gateway.port, username=USERNAME, password=PASSWORD
            )
            endpoints["proxy"] = Endpoint("proxy", plain.host, proxy.port)
        yield endpoints


# -- measuring ------------------------------------------------------------------------------


def build_rows(endpoints: dict[str, Endpoint], ours_ok: bool, res: Results) -> list[Row]:
    rows: list[Row] = []

    def add(name: str, transport: str, build: Callable[[], Row | list[Row]]) -> None:
        # A row that cannot even prepare its data is reported, not fatal to the run.
        try:
            built = build()
        except Exception as exc:
            res.skipped.append(f"{name} over {transport}: {type(exc).__name__}: {exc}")
            return
        rows.extend(built if isinstance(built, list) else [built])

    for transport, ep in endpoints.items():
        t = transport[:2]
        add(WIRE, transport, lambda ep=ep, t=t: raw_row(ep, f"w{t}:"))
        add(OURS, transport, lambda ep=ep, t=t: ours_row(ep, f"o{t}:"))
        if ours_ok:
            add(
                OURS_DJANGO,
                transport,
                lambda ep=ep, t=t, tr=transport: django_row(
                    OURS_DJANGO, f"ours-{tr}", ep, f"d{t}:"
                ),
            )
        if transport in ("tcp", "tls"):
            add("pymemcache", transport, lambda ep=ep, t=t: pymemcache_rows(ep, f"p{t}"))
            add(
                DJ_PYMEMCACHE,
                transport,
                lambda ep=ep, t=t, tr=transport: django_row(
                    DJ_PYMEMCACHE, f"pymemcache-{tr}", ep, f"j{t}:"
                ),
            )
        if transport == "tcp":
            add(
                DJ_PYLIBMC,
                transport,
                lambda ep=ep: django_row(DJ_PYLIBMC, "pylibmc-tcp", ep, "lib:"),
            )
            add(
                DJ_BMEMCACHED,
                transport,
                lambda ep=ep: django_row(DJ_BMEMCACHED, "bmemcached-tcp", ep, "bin:"),
            )
    for row in rows:
        if row.note:
            res.notes[(row.name, row.transport)] = row.note
    return rows


def measure(  # noqa: PLR0912 - one loop per kind of workload
    rows: list[Row], seconds: float, repeats: int, res: Results, log: Callable[[str], None]
) -> None:
    for workload, title in WORKLOADS.items():
        started = time.monotonic()
        res.placements[workload] = place("split" if workload in THREAD_WORKLOADS else "same")
        if workload in THREAD_WORKLOADS:
            threads, operation = THREAD_WORKLOADS[workload]
            active = []
            for row in rows:
                factory = row.thread_factory(operation)
                if factory is None or (workload != "threads_8" and row.transport != "tcp"):
                    continue
                try:
                    run_threads(factory, 2, 0.01)
                except Exception as exc:
                    res.skipped.append(
                        f"{row.name} over {row.transport}, {workload}: {type(exc).__name__}: {exc}"
                    )
                else:
                    active.append(row)
            for _ in range(repeats):
                for row in active:
                    factory = row.thread_factory(operation)
                    assert factory is not None
                    timing = res.rows.setdefault((row.name, row.transport, workload), Timing())
                    per_call = run_threads(factory, threads, seconds)
                    timing.runs.append(per_call)
                    _count_calls(res, row, round(seconds / per_call))
            log(f"  {title}: {len(active)} rows, {time.monotonic() - started:.1f} s")
            continue
        counts: dict[int, int] = {}
        working = []
        for row in rows:
            try:
                counts[id(row)] = calibrate(row.ops[workload], seconds)
            except Exception as exc:
                res.skipped.append(
                    f"{row.name} over {row.transport}, {workload}: {type(exc).__name__}: {exc}"
                )
            else:
                working.append(row)
        for _ in range(repeats):
            for row in working:
                n = counts[id(row)]
                timing = res.rows.setdefault((row.name, row.transport, workload), Timing(ops=n))
                with quiet_gc():
                    timing.runs.append(run_once(row.ops[workload], n))
                _count_calls(res, row, n)
        log(f"  {title}: {len(rows)} rows, {time.monotonic() - started:.1f} s")


def _count_calls(res: Results, row: Row, n: int) -> None:
    if row.transport in ("memcachier", "proxy"):
        res.proxied_calls[row.transport] = res.proxied_calls.get(row.transport, 0) + n


def request_loop(alias: str, prefix: str) -> Callable[[], None]:
    """One request as Django's handler runs it: signals around three cache calls."""
    from django.core.cache import caches
    from django.core.handlers.base import BaseHandler
    from django.core.signals import request_finished, request_started

    started = request_started.send
    finished = request_finished.send
    session, user, missing = prefix + "session", prefix + "user", prefix + "absent"
    caches[alias].set(session, VALUE_100)
    caches[alias].set(user, VALUE_100)

    def one_request() -> None:
        started(sender=BaseHandler)
        cache = caches[alias]  # what django.core.cache.cache does on every access
        cache.get(session)
        cache.get_many([user, missing])
        cache.set(prefix + "seen", VALUE_100, 30)
        finished(sender=BaseHandler)  # -> django.core.cache.close_caches -> cache.close()

    return one_request


def _forget_caches() -> None:
    """Close and drop every initialized cache, so close_caches touches only the one measured."""
    from django.core.cache import caches

    for cache in caches.all(initialized_only=True):
        cache.close()
    for alias in list(caches.settings):
        with contextlib.suppress(AttributeError):
            del caches[alias]


def measure_request_loop(
    endpoints: dict[str, Endpoint], ours_ok: bool, seconds: float, repeats: int, res: Results
) -> None:
    plan = []
    for transport in ("tcp", "tls"):
        if transport not in endpoints:
            continue
        if ours_ok:
            plan.append((OURS_DJANGO, transport, f"ours-{transport}"))
        plan.append((DJ_PYMEMCACHE, transport, f"pymemcache-{transport}"))
        if transport == "tcp":
            plan.append((DJ_PYLIBMC, transport, "pylibmc-tcp"))
    res.placements["request loop"] = place("same")
    for _ in range(repeats):
        for name, transport, alias in plan:
            _forget_caches()
            fn = request_loop(alias, f"rq{transport[:2]}:")
            n = calibrate(fn, seconds)
            timing = res.request_loop.setdefault((name, transport), Timing(ops=n))
            with quiet_gc():
                timing.runs.append(run_once(fn, n))
    _forget_caches()


# -- reporting ------------------------------------------------------------------------------


def _speed_ratio(res: Results, row: str, ref: str, transport: str, workload: str) -> float | None:
    a = res.rows.get((row, transport, workload))
    b = res.rows.get((ref, transport, workload))
    if a is None or b is None:
        return None
    return b.best / a.best


def _loop_ratio(res: Results, row: str, ref: str, transport: str) -> float | None:
    a = res.request_loop.get((row, transport))
    b = res.request_loop.get((ref, transport))
    if a is None or b is None:
        return None
    return b.best / a.best


def print_tables(res: Results, out: Callable[[str], None]) -> None:  # noqa: PLR0912
    header = (
        f"{'row':<30} {'transport':<11} {'µs/op':>9} {'ops/s':>10} "
        f"{'vs PyMemcacheCache':>19} {'vs wire':>8}"
    )
    for workload, title in WORKLOADS.items():
        out("")
        out(f"== {title} ==")
        if workload in res.placements:
            out(f"({res.placements[workload]})")
        out(header)
        for transport in TRANSPORTS:
            for row in ROW_ORDER:
                timing = res.rows.get((row, transport, workload))
                if timing is None:
                    continue
                vs_dj = _speed_ratio(res, row, DJ_PYMEMCACHE, transport, workload)
                vs_wire = _speed_ratio(res, row, WIRE, transport, workload)
                out(
                    f"{row:<30} {transport:<11} {timing.best * 1e6:>9.1f} "
                    f"{fmt_int(1 / timing.best):>10} {fmt_ratio(vs_dj):>19} {fmt_ratio(vs_wire):>8}"
                )
    if res.request_loop:
        out("")
        out("== Django request loop (3 cache calls per request, close_caches after each) ==")
        if "request loop" in res.placements:
            out(f"({res.placements['request loop']})")
        out(f"{'row':<30} {'transport':<11} {'µs/req':>9} {'req/s':>10} {'vs PyMemcacheCache':>19}")
        for transport in ("tcp", "tls"):
            for row in ROW_ORDER:
                timing = res.request_loop.get((row, transport))
                if timing is None:
                    continue
                out(
                    f"{row:<30} {transport:<11} {timing.best * 1e6:>9.1f} "
                    f"{fmt_int(1 / timing.best):>10} "
                    f"{fmt_ratio(_loop_ratio(res, row, DJ_PYMEMCACHE, transport)):>19}"
                )
    for transport, counts in res.proxies.items():
        calls = res.proxied_calls.get(transport, 0)
        if counts and calls:
            out(
                f"{TRANSPORT_TITLES[transport]}: {counts['connections']} connections, "
                f"{counts['handshakes']} handshakes for {calls:,} timed calls "
                f"(+ calibration) — auth is paid per connection, not per call"
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
    for (row, transport), note in sorted(res.notes.items()):
        out(f"note: {row} over {transport}: {note}")
    for line in res.skipped:
        out(f"skipped: {line}")


@dataclass
class Target:
    what: str
    measured: float | None
    goal: float

    @property
    def status(self) -> str:
        if self.measured is None:
            return "n/a"
        return "PASS" if self.measured >= self.goal else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.what,
            "measured": self.measured,
            "goal": self.goal,
            "status": self.status,
        }


def targets(res: Results) -> list[Target]:
    """Issue 6's targets that this benchmark measures (the multi-server one is scale.py's)."""
    found: list[Target] = []

    def ratio(row: str, ref: str, workload: str, transport: str = "tcp") -> float | None:
        return _speed_ratio(res, row, ref, transport, workload)

    for workload, goal in (
        ("get_hit", 1.6),
        ("set", 1.6),
        ("get_many_100", 3.0),
        ("set_many_100", 3.0),
    ):
        found.append(
            Target(
                f"Django backend vs PyMemcacheCache, {workload} (tcp)",
                ratio(OURS_DJANGO, DJ_PYMEMCACHE, workload),
                goal,
            )
        )
    for workload in ("get_hit", "set"):
        found.append(
            Target(
                f"Client vs pymemcache Client, {workload} (tcp)",
                ratio(OURS, PM_CLIENT, workload),
                0.95,
            )
        )
    for workload, goal in (
        ("get_hit", 0.85),
        ("set", 0.85),
        ("get_many_100", 1.0),
        ("set_many_100", 1.0),
    ):
        found.append(
            Target(
                f"Django backend vs PyLibMCCache, {workload} (tcp)",
                ratio(OURS_DJANGO, DJ_PYLIBMC, workload),
                goal,
            )
        )
    for transport, goal in (("tls", 3.0), ("tcp", 1.5)):
        found.append(
            Target(
                f"Django request loop vs PyMemcacheCache ({transport})",
                _loop_ratio(res, OURS_DJANGO, DJ_PYMEMCACHE, transport),
                goal,
            )
        )
    for row in (OURS, OURS_DJANGO):
        for workload in ("get_hit", "set", "get_many_100"):
            a = res.rows.get((row, "memcachier", workload))
            b = res.rows.get((row, "proxy", workload))
            value = None if a is None or b is None else b.best / a.best
            found.append(
                Target(
                    f"{row}: MemCachier gateway vs same proxy without auth, {workload}", value, 0.9
                )
            )
    return found


def issue14_targets(res: Results) -> list[Target]:
    """Issue 14's threads targets (speed ratios, tcp); its batch targets are scale.py's."""
    found = []
    for workload, what in (
        ("get_hit", "get, 1 thread"),
        ("set", "set, 1 thread"),
        ("threads_8", "get, 8 threads sharing the cache"),
        ("threads_8_set", "set, 8 threads sharing the cache"),
    ):
        found.append(
            Target(
                f"Django backend vs PyLibMCCache, {what} (tcp)",
                _speed_ratio(res, OURS_DJANGO, DJ_PYLIBMC, "tcp", workload),
                1.0,
            )
        )
    for operation, one, eight in (
        ("get", "threads_1", "threads_8"),
        ("set", "threads_1_set", "threads_8_set"),
    ):
        found.append(
            Target(
                f"Django backend, {operation}: 8 threads vs 1 thread, throughput (tcp)",
                _thread_scaling(res, OURS_DJANGO, one, eight),
                1.0,
            )
        )
    return found


def _thread_scaling(res: Results, row: str, one: str, many: str) -> float | None:
    a = res.rows.get((row, "tcp", one))
    b = res.rows.get((row, "tcp", many))
    return None if a is None or b is None else a.best / b.best


def print_targets(found: list[Target], out: Callable[[str], None], title: str) -> None:
    out("")
    out(f"== {title} (speed ratios; goal = at least) ==")
    for target in found:
        measured = "—" if target.measured is None else f"{target.measured:.2f}×"
        out(f"{target.status:<5} {target.what:<74} {measured:>7}  (goal ≥ {target.goal:.2f}×)")


def to_json(res: Results, found: list[Target], config: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for (row, transport, workload), timing in res.rows.items():
        rows.append(
            {
                "row": row,
                "transport": transport,
                "workload": workload,
                **timing.as_dict(),
                "vs_pymemcachecache": _speed_ratio(res, row, DJ_PYMEMCACHE, transport, workload),
                "vs_wire": _speed_ratio(res, row, WIRE, transport, workload),
            }
        )
    loop = [
        {
            "row": row,
            "transport": transport,
            **timing.as_dict(),
            "vs_pymemcachecache": _loop_ratio(res, row, DJ_PYMEMCACHE, transport),
        }
        for (row, transport), timing in res.request_loop.items()
    ]
    return {
        "benchmark": "peers",
        "machine": machine(),
        "config": config,
        "placements": res.placements,
        "workloads": WORKLOADS,
        "results": rows,
        "request_loop": loop,
        "targets": [t.as_dict() for t in found],
        "notes": [f"{r} over {t}: {n}" for (r, t), n in sorted(res.notes.items())],
        "proxies": {
            t: {**c, "timed_calls": res.proxied_calls.get(t, 0)} for t, c in res.proxies.items()
        },
        "other_processes_cpu_share": res.interference,
        "other_processes_cpu_share_before": res.background_before,
        "skipped": res.skipped,
    }


def draw_png(res: Results, path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [*WORKLOADS.items(), ("request_loop", "Django request loop (µs per request)")]
    colors = {"tcp": "#1f77b4", "tls": "#ff7f0e", "memcachier": "#2ca02c", "proxy": "#9467bd"}
    fig, axes = plt.subplots(4, 4, figsize=(22, 19))
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (workload, title) in zip(axes.flat, panels, strict=False):
        names = [
            row
            for row in ROW_ORDER
            if any(
                (
                    res.request_loop.get((row, t))
                    if workload == "request_loop"
                    else res.rows.get((row, t, workload))
                )
                is not None
                for t in TRANSPORTS
            )
        ]
        present = [
            t
            for t in TRANSPORTS
            if any(
                (
                    res.request_loop.get((row, t))
                    if workload == "request_loop"
                    else res.rows.get((row, t, workload))
                )
                is not None
                for row in names
            )
        ]
        height = 0.8 / max(1, len(present))
        for i, transport in enumerate(present):
            ys, xs = [], []
            for j, row in enumerate(names):
                timing = (
                    res.request_loop.get((row, transport))
                    if workload == "request_loop"
                    else res.rows.get((row, transport, workload))
                )
                if timing is not None:
                    ys.append(j - 0.4 + (i + 0.5) * height)
                    xs.append(timing.best * 1e6)
            if xs:
                ax.barh(
                    ys,
                    xs,
                    height=height,
                    color=colors[transport],
                    label=TRANSPORT_TITLES[transport],
                )
                for y, x in zip(ys, xs, strict=True):
                    ax.text(x, y, f" {x:.0f}", va="center", fontsize=6)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(
            [n.replace(" (wire limit)", "\n(wire limit)") for n in names], fontsize=7
        )
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("µs per operation (lower is better)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.margins(x=0.15)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.suptitle(f"layered_cache peer benchmark\n{subtitle}", y=0.995, fontsize=12)
    fig.legend(
        handles, labels, loc="upper center", ncol=4, fontsize=10, bbox_to_anchor=(0.5, 0.955)
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - a linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (seconds)")
    parser.add_argument("--seconds", type=float, help="target length of one run (default 0.08)")
    parser.add_argument(
        "--repeats",
        type=int,
        help="runs per measurement, interleaved across rows; best counts (default 10)",
    )
    parser.add_argument(
        "--transports",
        default=",".join(TRANSPORTS),
        help="comma-separated subset of " + ", ".join(TRANSPORTS),
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=120.0,
        help="seconds to wait at most for other processes to leave the CPUs "
        "alone before measuring (default 120; 0: don't wait)",
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--png", type=Path, help="draw the chart (matplotlib) here")
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.01 if args.quick else 0.08)
    repeats = args.repeats or (1 if args.quick else 10)
    loop_seconds = seconds * (1 if args.quick else 2)
    wanted = [t.strip() for t in args.transports.split(",") if t.strip()]
    unknown = set(wanted) - set(TRANSPORTS)
    if unknown:
        parser.error(f"unknown transport(s) {', '.join(sorted(unknown))}")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    res = Results()
    if not args.quick and args.max_wait > 0:
        res.background_before = wait_for_quiet(log, max_wait=args.max_wait)
    began = time.monotonic()
    warnings.simplefilter("ignore")  # Django's CacheKeyWarning etc. are not what we measure
    interference = Interference()
    with servers(want_proxies=bool({"memcachier", "proxy"} & set(wanted)), res=res) as found:
        endpoints = {t: e for t, e in found.items() if t in wanted}
        # Django is configured once, with every alias; caches connect lazily.
        from django.conf import settings

        ours_problem = ours_django_backend()  # importable without settings?
        configure_django(django_caches(endpoints, ours_ok=ours_problem is None))
        if ours_problem is None:
            ours_problem = ours_django_backend()
        if ours_problem is not None:
            res.skipped.append(f"{OURS_DJANGO}: not importable yet ({ours_problem})")
            settings.CACHES = {
                k: v for k, v in settings.CACHES.items() if not k.startswith("ours-")
            }
        ours_ok = ours_problem is None
        log(f"servers up: {', '.join(f'{t}={e.address}' for t, e in endpoints.items())}")
        rows = build_rows(endpoints, ours_ok, res)
        log(f"{len(rows)} rows; {repeats} run(s) of ~{seconds} s per measurement")
        interference.start()
        try:
            measure(rows, seconds, repeats, res, log)
        finally:
            for row in rows:
                with contextlib.suppress(Exception):
                    row.close()
        log("  Django request loop ...")
        measure_request_loop(endpoints, ours_ok, loop_seconds, repeats, res)
        res.interference = interference.stop()
    log(f"done in {time.monotonic() - began:.0f} s")

    found = targets(res)
    found14 = issue14_targets(res)
    print_tables(res, print)
    print_targets(found, print, "issue 6 targets")
    print_targets(found14, print, "issue 14 targets")
    found = found + found14
    config = {
        "seconds": seconds,
        "repeats": repeats,
        "threads": THREADS,
        "quick": args.quick,
        "transports": wanted,
        "command": " ".join(["python -m benchmarks.run", *(argv or sys.argv[1:])]),
    }
    data = to_json(res, found, config)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        log(f"wrote {args.json}")
    if args.png:
        args.png.parent.mkdir(parents=True, exist_ok=True)
        m = data["machine"]
        draw_png(
            res,
            args.png,
            f"{m['cpu']}, {m['cores']} cores, Python {m['python']}, commit {m['commit']}"
            + (
                f"; other processes used {res.interference:.0%} of the CPUs meanwhile"
                if res.interference is not None
                else ""
            ),
        )
        log(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
