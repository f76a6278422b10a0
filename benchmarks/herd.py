"""The thundering herd of issue 9, and the meta-protocol batch paths against the classic ones.

Herd: 32 threads miss one key at the same moment; each calls ``get_or_set`` with a
callable that takes 50 ms (a slow query). Reported per row: how many times the
callable ran (recomputations) and how long until all 32 callers had their value.
Rows: our Client (memcached's meta protocol), our Client through twemproxy (the
``add``-lease fallback), our Django backend, and Django's ``PyMemcacheCache``.

Batches: ``get_many``/``set_many``/``delete_many`` of 100 keys, each on the classic
path (pymemcache's batch commands) and as pipelined quiet meta commands, on one server.

Usage::

    python -m benchmarks.herd [--rounds N] [--json PATH] [--out PATH]
"""

# ruff: noqa: RUF001
# (the multiplication sign is the unit of the printed speed-ups)

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks._bench import machine

HERD = 32
COMPUTE_SECONDS = 0.05


def herd(get_or_set: Callable[[str, Callable[[], Any]], Any], key: str) -> tuple[int, float]:
    """Run one herd; return (recomputations, seconds until every caller was served)."""
    calls: list[int] = []
    lock = threading.Lock()

    def compute() -> dict[str, int]:
        with lock:
            calls.append(1)
        time.sleep(COMPUTE_SECONDS)
        return {"rows": 42}

    barrier = threading.Barrier(HERD + 1)
    done: list[float] = []

    def caller() -> None:
        barrier.wait(timeout=30)
        try:
            get_or_set(key, compute)
        finally:
            # Counted even when the row fails, so a broken row cannot stall the run.
            with lock:
                done.append(time.perf_counter())

    threads = [threading.Thread(target=caller) for _ in range(HERD)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=30)
    started = time.perf_counter()
    for thread in threads:
        thread.join(timeout=60)
    return len(calls), max(done) - started


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    from tests.servers import MemcachedProcess
    from tests.twemproxy import NutcrackerProcess

    with MemcachedProcess(name="bench-herd") as server:
        proxy = NutcrackerProcess([server], name="bench-herd-proxy")
        proxy.start()
        try:
            yield server.address, proxy.address
        finally:
            proxy.close()


def herd_rows(address: str, proxy: str, rounds: int) -> list[dict[str, Any]]:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(CACHES={})
        django.setup()
    from django.core.cache.backends.memcached import PyMemcacheCache

    from layered_cache import Client
    from layered_cache.django import MemcacheCache

    ours = Client(address)
    proxied = Client(proxy)
    made: list[Any] = []

    def per_thread(cls: type) -> Callable[[str, Callable[[], Any]], Any]:
        # Django gives every thread its own backend instance (pymemcache's
        # HashClient, behind PyMemcacheCache, is not thread-safe).
        local = threading.local()

        def get_or_set(key: str, compute: Callable[[], Any]) -> Any:
            if not hasattr(local, "cache"):
                local.cache = cls(address, {})
                made.append(local.cache)
            return local.cache.get_or_set(key, compute)

        return get_or_set

    def delete_with(cls: type) -> Callable[[str], Any]:
        cache = cls(address, {})
        made.append(cache)
        return cache.delete

    rows = {
        "layered_cache Client (meta protocol)": (ours.get_or_set, ours.delete),
        "layered_cache Client via twemproxy (add lease)": (proxied.get_or_set, proxied.delete),
        "layered_cache Django backend": (per_thread(MemcacheCache), delete_with(MemcacheCache)),
        "Django PyMemcacheCache": (per_thread(PyMemcacheCache), delete_with(PyMemcacheCache)),
    }
    results = []
    for name, (get_or_set, delete) in rows.items():
        runs = []
        for round_ in range(rounds):
            key = f"herd:{round_}"
            delete(key)
            runs.append(herd(get_or_set, key))
        results.append(
            {
                "row": name,
                "recomputations": [count for count, _ in runs],
                "median_recomputations": statistics.median(count for count, _ in runs),
                "median_ms_all_served": statistics.median(seconds for _, seconds in runs) * 1000,
            }
        )
    ours.close()
    proxied.close()
    for cache in made:
        cache.close()
    return results


def batch_rows(address: str, repeats: int) -> list[dict[str, Any]]:
    from layered_cache import Client
    from layered_cache.core.operations import Exchange
    from layered_cache.protocol import Expect, requests

    client = Client(address)
    node = client._nodes[next(iter(client._nodes))]
    keys = [f"batch:{i}" for i in range(100)]
    encoded = [key.encode() for key in keys]
    asked = set(encoded)
    data = b"x" * 100

    def best(step: Exchange) -> float:
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(200):
                node.exchange(step)
            timings.append((time.perf_counter() - started) / 200)
        return min(timings) * 1e6

    def pipelined(requests_: list[bytes], expect: int) -> Exchange:
        return Exchange(node, b"".join(requests_), expect, count=len(requests_), idempotent=True)

    def quiet(requests_: list[bytes]) -> Exchange:
        request = b"".join(requests_) + requests.META_NOOP
        return Exchange(node, request, Expect.META_BATCH, idempotent=True)

    classic_set = pipelined(
        [requests.store(b"set", key, 0, 0, data, False) for key in encoded], Expect.STORE
    )
    node.exchange(classic_set)
    rows = [
        (
            "set_many 100",
            best(classic_set),
            best(quiet([requests.meta_set(key, data, b"T0 F0 k q") for key in encoded])),
        ),
        (
            "get_many 100",
            best(Exchange(node, requests.get(encoded), Expect.VALUES, idempotent=True, keys=asked)),
            best(quiet([requests.meta_get(key, b"v f k q") for key in encoded])),
        ),
    ]
    # Deleting the same keys again and again: after the first round they are absent,
    # so both paths read one "not found" per key.
    rows.append(
        (
            "delete_many 100",
            best(pipelined([requests.delete(key, False) for key in encoded], Expect.DELETE)),
            best(quiet([requests.meta_delete(key, b"q") for key in encoded])),
        )
    )
    client.close()
    return [
        {"batch": name, "classic_us": classic, "meta_us": meta, "meta_speedup": classic / meta}
        for name, classic, meta in rows
    ]


def render(herds: list[dict[str, Any]], batches: list[dict[str, Any]]) -> str:
    lines = [
        f"== a herd of {HERD} concurrent misses on one key "
        f"(the value takes {COMPUTE_SECONDS * 1000:.0f} ms to compute) ==",
        f"{'row':48} {'recomputations':>15} {'ms until all served':>20}",
    ]
    for row in herds:
        runs = ",".join(str(count) for count in row["recomputations"])
        lines.append(
            f"{row['row']:48} {row['median_recomputations']:>7g} ({runs:>5})"
            f" {row['median_ms_all_served']:>20.1f}"
        )
    lines += [
        "",
        "== batches of 100 keys on one server: classic commands vs quiet meta commands ==",
        f"{'batch':32} {'classic µs':>11} {'meta µs':>9} {'meta speed-up':>14}",
    ]
    for row in batches:
        lines.append(
            f"{row['batch']:32} {row['classic_us']:>11.0f} {row['meta_us']:>9.0f}"
            f" {row['meta_speedup']:>13.2f}×"
        )
    lines.append("")
    lines.append(
        "set_many uses the meta path (replies only for failures); get_many and delete_many "
        "stay classic, where meta is not faster."
    )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="herds per row (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="batch timing repeats")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--out", type=Path, help="write the text report here")
    args = parser.parse_args()
    with servers() as (address, proxy):
        herds = herd_rows(address, proxy, args.rounds)
        batches = batch_rows(address, args.repeats)
    report = render(herds, batches)
    print(report, end="")
    if args.out:
        args.out.write_text(report)
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine(), "herd": herds, "batches": batches}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
