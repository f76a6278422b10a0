"""Where our hot path spends its time: cProfile plus piece-by-piece timings.

Measures, against one local memcached (plain TCP):

1. wall time per call of ``Client.get``/``set``/``get_many(100)``/``set_many(100)`` and of
   the same calls through our Django backend, next to raw ``pymemcache.Client`` and Django's
   ``PyMemcacheCache``, and the differences (what each layer adds);
2. each piece of our path timed on its own (no profiler overhead): key validation, routing,
   the shared get flow, the reply parser, the value codec, Django's key making and
   validation, the timeout arithmetic;
3. cProfile of each call (top functions by own time, in µs per call; the profiler itself
   inflates pure-Python frames, so read these as proportions, and section 2 as the costs).

It reports; it changes nothing. Usage::

    python -m benchmarks.hotpath [--calls N] [--top K]
"""

# ruff: noqa: RUF001
# (imports inside functions are deliberate: Django is configured first, peers are
# optional; the multiplication and minus signs are units in the printed tables)

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import timeit
import warnings
from collections.abc import Callable
from typing import Any

from benchmarks._bench import ours_django_backend

VALUE = bytes(range(100))
KEY = "user:12345:profile"
MANY = [f"many:{i:03d}" for i in range(100)]


def per_call(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Best µs per call of ``fn`` over ``repeat`` rounds of ``number`` calls."""
    fn()
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def where(filename: str) -> str:
    for part, label in (
        ("layered_cache", "ours"),
        ("pymemcache", "pymemcache"),
        ("django", "django"),
    ):
        if part in filename:
            return label
    return "stdlib" if filename.startswith(("/", "~")) or filename == "~" else filename


def profile(fn: Callable[[], object], calls: int, top: int, out: Callable[[str], None]) -> None:
    fn()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tottime, cumtime, ncalls, filename, line, name))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    out(
        f"    {'own µs':>7} {'cum µs':>7} {'calls':>6}  function   "
        f"(per call; total {total / calls * 1e6:.1f} µs under cProfile)"
    )
    for tottime, cumtime, ncalls, filename, line, name in rows[:top]:
        short = filename.rsplit("site-packages/", 1)[-1].rsplit("/work/main/", 1)[-1]
        out(
            f"    {tottime / calls * 1e6:>7.2f} {cumtime / calls * 1e6:>7.2f} "
            f"{ncalls / calls:>6.1f}  [{where(filename)}] {name} ({short}:{line})"
        )


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0912, PLR0915 - a linear report
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per measurement")
    parser.add_argument("--top", type=int, default=14, help="functions shown per profile")
    args = parser.parse_args(argv)
    n = args.calls
    out = print
    warnings.simplefilter("ignore")

    import django
    from django.conf import settings

    settings.configure(USE_TZ=True, CACHES={})
    django.setup()

    from django.core.cache.backends.base import memcache_key_warnings
    from django.core.cache.backends.memcached import PyMemcacheCache
    from pymemcache import Client as PymemcacheClient
    from pymemcache import serde

    from layered_cache import Client
    from layered_cache._keys import encode_key
    from tests.servers import start_memcached

    problem = ours_django_backend()
    server = start_memcached()
    try:
        address = server.address
        ours = Client(address)
        pm = PymemcacheClient(
            (server.host, server.port),
            serde=serde.pickle_serde,
            default_noreply=False,
            allow_unicode_keys=True,
        )
        dj_pm = PyMemcacheCache(address, {})
        dj_ours: Any = None
        if problem is None:
            from layered_cache.django import MemcacheCache

            dj_ours = MemcacheCache(address, {})
        mapping = dict.fromkeys(MANY, VALUE)
        for cache in filter(None, (ours, pm, dj_pm, dj_ours)):
            cache.set(KEY, VALUE)
            cache.set_many(mapping)

        out("== 1. wall time per call (µs), best of 7 interleaved rounds ==")
        calls: dict[str, dict[str, Callable[[], object]]] = {
            "pymemcache Client": {
                "get": lambda: pm.get(KEY),
                "set": lambda: pm.set(KEY, VALUE),
                "get_many": lambda: pm.get_many(MANY),
                "set_many": lambda: pm.set_many(mapping),
            },
            "layered_cache Client": {
                "get": lambda: ours.get(KEY),
                "set": lambda: ours.set(KEY, VALUE),
                "get_many": lambda: ours.get_many(MANY),
                "set_many": lambda: ours.set_many(mapping),
            },
            "Django PyMemcacheCache": {
                "get": lambda: dj_pm.get(KEY),
                "set": lambda: dj_pm.set(KEY, VALUE),
                "get_many": lambda: dj_pm.get_many(MANY),
                "set_many": lambda: dj_pm.set_many(mapping),
            },
        }
        if dj_ours is not None:
            calls["layered_cache Django backend"] = {
                "get": lambda: dj_ours.get(KEY),
                "set": lambda: dj_ours.set(KEY, VALUE),
                "get_many": lambda: dj_ours.get_many(MANY),
                "set_many": lambda: dj_ours.set_many(mapping),
            }
        wall: dict[tuple[str, str], float] = {}
        # Rounds interleaved across clients, so that noise from elsewhere hits all alike.
        for _round in range(7):
            for name, ops in calls.items():
                for op, fn in ops.items():
                    number = n // 5 if op in ("get", "set") else max(50, n // 100)
                    best = per_call(fn, number, repeat=1)
                    wall[(name, op)] = min(wall.get((name, op), best), best)
        out(f"{'':<30}" + "".join(f"{op:>11}" for op in ("get", "set", "get_many", "set_many")))
        for name, ops in calls.items():
            out(f"{name:<30}" + "".join(f"{wall[(name, op)]:>11.1f}" for op in ops))
        out("differences (µs per call; what the upper layer adds):")
        pairs = [("layered_cache Client", "pymemcache Client")]
        if dj_ours is not None:
            pairs.append(("layered_cache Django backend", "layered_cache Client"))
        for upper, lower in pairs:
            cells = "".join(
                f"{wall[(upper, op)] - wall[(lower, op)]:>+11.1f}"
                for op in ("get", "set", "get_many", "set_many")
            )
            out(f"  {upper} − {lower}:".ljust(30) + cells)

        out("")
        out("== 2. pieces of our path, timed alone (µs per call, no profiler) ==")

        # Private internals, looked up defensively: the core changes while this is kept.
        def attempt(get: Callable[[], Any]) -> Any:
            try:
                return get()
            except Exception:
                return None

        from layered_cache.core.operations import Exchange
        from layered_cache.protocol import Expect, ReplyParser

        serializer = ours.serializer
        value_bytes, flags = serializer.serialize(KEY, VALUE)
        codec = attempt(lambda: ours._ops.codec)
        encoded = encode_key(KEY)
        reply_bytes = b"VALUE %s %d %d\r\n%s\r\nEND\r\n" % (
            encoded,
            flags,
            len(value_bytes),
            value_bytes,
        )
        canned = [(encoded, flags, value_bytes, None)]

        def parse_reply() -> object:
            parser = ReplyParser()
            parser.expect(Expect.VALUES, (encoded,))
            parser.feed(reply_bytes)
            return parser.next_reply()

        def drive_flow() -> object:
            flow = ours._ops.get(KEY, None)
            step = flow.send(None)
            assert type(step) is Exchange
            try:
                flow.send(canned)
            except StopIteration as done:
                return done.value
            raise AssertionError("the get flow asked for more than one exchange")

        pieces: list[tuple[str, Callable[[], object], str]] = [
            (
                "encode_key(key)  [_keys.encode_key]",
                lambda: encode_key(KEY),
                "once per key per call",
            ),
            (
                "pymemcache's own check_key",
                lambda: pm.check_key(KEY, pm.key_prefix),
                "what raw pymemcache pays",
            ),
            ("Operations.node(key)  [routing, 1 server]", lambda: ours._ops.node(KEY), "per call"),
            ("the get flow, driven with a canned reply", drive_flow, "encode, route, decode"),
            ("ReplyParser: one 100 B get reply", parse_reply, "per call, per server"),
            (
                "ValueCodec.decode (100 B bytes)",
                lambda: codec.decode(KEY, value_bytes, flags),
                "per value read",
            ),
            (
                "PickleSerializer.deserialize (100 B bytes)",
                lambda: serializer.deserialize(KEY, value_bytes, flags),
                "the part the codec wraps",
            ),
            (
                "PickleSerializer.serialize (100 B bytes)",
                lambda: serializer.serialize(KEY, VALUE),
                "per value written",
            ),
            (
                "pymemcache pickle_serde.serialize (100 B bytes)",
                lambda: serde.pickle_serde.serialize(KEY, VALUE),
                "what raw pymemcache pays",
            ),
        ]
        if dj_ours is not None:
            pieces += [
                (
                    "make_and_validate_key(key), our Django backend",
                    lambda: dj_ours.make_and_validate_key(KEY),
                    "per key, Django layer",
                ),
                (
                    "  of which make_key(key)  [Django's BaseCache]",
                    lambda: dj_ours.make_key(KEY),
                    "",
                ),
                (
                    "  of which validate_key(key), our backend's",
                    lambda: dj_ours.validate_key(":1:" + KEY),
                    "then encode_key checks it again",
                ),
                (
                    "Django's own validate_key (PyMemcacheCache)",
                    lambda: dj_pm.validate_key(":1:" + KEY),
                    "for comparison",
                ),
                (
                    "  of which memcache_key_warnings (lazy regex, generator)",
                    lambda: list(memcache_key_warnings(":1:" + KEY)),
                    "",
                ),
                (
                    "Django get_backend_timeout()  [per write]",
                    dj_ours.get_backend_timeout,
                    "per set/set_many",
                ),
            ]
        for count in (3, 8):
            many_nodes = Client([f"127.0.0.1:{11211 + i}" for i in range(count)])  # never used
            node_for = attempt(lambda c=many_nodes: c._ops._ring.node_for)
            cold = getattr(node_for, "__wrapped__", None)  # behind the placement cache, if any
            pieces.append(
                (
                    f"Operations.node(key), {count} servers, placement cached",
                    lambda c=many_nodes: c._ops.node(KEY),
                    "a key seen recently",
                )
            )
            if cold is not None:
                pieces.append(
                    (
                        f"placement computed (cache bypassed), {count} servers",
                        lambda f=cold: f(KEY),
                        "a key not seen recently",
                    )
                )
        for label, fn, note in pieces:
            try:
                cost, said = f"{per_call(fn, n):>7.2f}", note
            except Exception as exc:
                cost, said = f"{'n/a':>7}", f"(internals moved: {type(exc).__name__})"
            out(f"  {cost}  {label:<58} {said}")
        # What a 100-key call pays per key for validation in each layer:
        key_cost = per_call(lambda: encode_key(KEY), n)
        out(f"  100-key call: encode_key alone costs {key_cost * 100:.1f} µs")
        if dj_ours is not None:
            mk = per_call(lambda: dj_ours.make_and_validate_key(KEY), n)
            out(f"  100-key Django call: make_and_validate_key alone costs {mk * 100:.1f} µs")

        out("")
        out("== 3. cProfile, per call ==")
        for name in ("layered_cache Client", "layered_cache Django backend"):
            if name not in calls:
                continue
            for op in ("get", "set", "get_many", "set_many"):
                out(f"-- {name}.{op} --")
                number = n // 4 if op in ("get", "set") else max(100, n // 100)
                profile(calls[name][op], number, args.top, out)
    finally:
        server.close()
    if problem is not None:
        out(f"(Django backend not importable: {problem})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
