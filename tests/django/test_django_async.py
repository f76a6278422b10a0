"""The backend's async methods: native on the AsyncClient, with Django's semantics.

Every a* method against the sync one on the same data, no thread hop in steady state,
backends made per request sharing one AsyncClient and its bounded connections, values
whose pickling needs the sync world (a lazy QuerySet), and django-debug-toolbar.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import SyncToAsync, async_to_sync
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache, InvalidCacheKey
from django.db import connection
from django.test.utils import override_settings
from django_helpers import BACKEND
from djproject.models import Shelf

from layered_cache import AsyncClient
from layered_cache.aio.node import AsyncServer
from layered_cache.django import MemcacheCache
from tests.servers import MemcachedProcess


@pytest.fixture
def shelves() -> Iterator[None]:
    with connection.schema_editor() as editor:
        editor.create_model(Shelf)
    Shelf.objects.bulk_create([Shelf(name="a", note="x"), Shelf(name="b", note="y")])
    yield
    with connection.schema_editor() as editor:
        editor.delete_model(Shelf)


def run(cache: BaseCache, make: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``make()`` as Django runs an async view called from sync code.

    ``async_to_sync`` runs a new event loop each time; before it ends, the
    connections ``cache`` opened in it are closed (they belong to that loop).
    """

    async def main() -> Any:
        try:
            return await make()
        finally:
            await cache.async_client.aclose()

    return async_to_sync(main)()


# -- sync and async: the same data, the same answers ------------------------------------


def test_sync_and_async_methods_read_each_others_data(cache: BaseCache) -> None:
    cache.set("s", {"from": "sync"})
    cache.set_many({"m1": 1, "m2": [2]})
    cache.set("count", 10)

    async def scenario() -> None:
        assert await cache.aget("s") == {"from": "sync"}
        assert await cache.aget_many(["m1", "m2", "nope"]) == {"m1": 1, "m2": [2]}
        assert await cache.aincr("count", 5) == 15
        assert await cache.ahas_key("m1") is True
        await cache.aset("a", ("from", "async"))
        assert await cache.aset_many({"am1": "x", "am2": None}) == []
        assert await cache.aadd("added", 1.5) is True

    run(cache, scenario)
    assert cache.get("a") == ("from", "async")
    assert cache.get_many(["am1", "am2"]) == {"am1": "x", "am2": None}
    assert cache.get("added") == 1.5
    assert cache.incr("count") == 16
    assert cache.client.server_for(cache.make_key("a")) == cache.async_client.server_for(
        cache.make_key("a")
    )


def test_each_async_method_answers_as_its_sync_twin(cache: BaseCache) -> None:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("add", ("k1", "v"), {}),
        ("add", ("k1", "other"), {}),
        ("get", ("k1",), {}),
        ("get", ("missing", "default"), {}),
        ("set", ("k2", [1, 2]), {"timeout": None}),
        ("touch", ("k2", 100), {}),
        ("touch", ("missing",), {}),
        ("has_key", ("k2",), {}),
        ("has_key", ("missing",), {}),
        ("set", ("n", 5), {}),
        ("incr", ("n",), {"delta": 3}),
        ("decr", ("n",), {"delta": 10}),
        ("incr", ("n", -2), {}),
        ("set_many", ({"x": 1, "y": 2},), {"version": 2}),
        ("get_many", (["x", "y", "z"],), {"version": 2}),
        ("get_many", (["x"],), {}),
        ("get_or_set", ("gos", "made"), {}),
        ("get_or_set", ("gos", "not again"), {}),
        ("incr_version", ("k2",), {}),
        ("get", ("k2",), {"version": 2}),
        ("decr_version", ("k2",), {"version": 2}),
        ("delete", ("k1",), {}),
        ("delete", ("k1",), {}),
        ("delete_many", (["x", "y"],), {"version": 2}),
        ("get_many", (["x", "y"],), {"version": 2}),
    ]
    answers: dict[str, list[Any]] = {}
    for mode in ("sync", "async"):
        cache.clear()
        answers[mode] = []
        for name, args, kwargs in calls:
            if mode == "sync":
                answer = getattr(cache, name)(*args, **kwargs)
            else:
                method = getattr(cache, f"a{name}")
                answer = run(cache, lambda m=method, a=args, k=kwargs: m(*a, **k))
            answers[mode].append((name, answer))
    assert answers["async"] == answers["sync"]


@pytest.mark.parametrize("delta", [1, -1])
def test_aincr_of_a_missing_key_raises_value_error(cache: BaseCache, delta: int) -> None:
    with pytest.raises(ValueError, match="Key ':1:missing' not found"):
        run(cache, lambda: cache.aincr("missing", delta))
    with pytest.raises(ValueError, match="not found"):
        run(cache, lambda: cache.adecr("missing", delta))
    with pytest.raises(ValueError, match="not found"):
        run(cache, lambda: cache.aincr_version("missing"))


def test_async_methods_validate_keys_before_sending(cache: BaseCache) -> None:
    for method, args in [
        ("aget", ()),
        ("aset", (1,)),
        ("aadd", (1,)),
        ("adelete", ()),
        ("atouch", ()),
        ("aincr", ()),
        ("ahas_key", ()),
        ("aget_or_set", (1,)),
    ]:
        with pytest.raises(InvalidCacheKey):
            run(cache, lambda m=method, a=args: getattr(cache, m)("bad key", *a))  # type: ignore[misc]
    with pytest.raises(InvalidCacheKey):
        run(cache, lambda: cache.aget_many(["ok", "bad key"]))
    with pytest.raises(InvalidCacheKey):
        run(cache, lambda: cache.aset_many({"ok": 1, "bad key": 2}))
    assert cache.get("ok") is None  # nothing was written


def test_aincr_is_atomic_under_concurrency(cache: BaseCache) -> None:
    cache.set("hits", 0)

    async def scenario() -> None:
        await asyncio.gather(*(cache.aincr("hits") for _ in range(500)))

    run(cache, scenario)
    assert cache.get("hits") == 500


def test_aget_many_asks_each_server_once(three_memcached: list[MemcachedProcess]) -> None:
    entry = {"BACKEND": BACKEND, "LOCATION": [server.address for server in three_memcached]}
    with override_settings(CACHES={"default": entry}):
        cache = caches["default"]
        keys = [f"key{i}" for i in range(30)]
        cache.set_many(dict.fromkeys(keys, "v"))
        original = AsyncServer.exchange
        asked: list[str] = []

        async def exchange(self: AsyncServer, step: Any) -> Any:
            asked.append(self.name)
            return await original(self, step)

        with mock.patch.object(AsyncServer, "exchange", exchange):
            found = run(cache, lambda: cache.aget_many(keys))
        assert found == dict.fromkeys(keys, "v")
        assert sorted(asked) == sorted(server.address for server in three_memcached)


# -- aget_or_set ---------------------------------------------------------------------------


def test_aget_or_set_awaits_a_coroutine_function(cache: BaseCache) -> None:
    async def compute() -> dict[str, int]:
        await asyncio.sleep(0)
        return {"rows": 3}

    assert run(cache, lambda: cache.aget_or_set("report", compute, timeout=60)) == {"rows": 3}
    assert cache.get("report") == {"rows": 3}
    assert run(cache, lambda: cache.aget_or_set("none", None)) is None
    assert cache.get("none", "default") is None


def test_aget_or_set_computes_once_for_a_herd_of_tasks(cache: BaseCache) -> None:
    calls: list[int] = []

    async def expensive() -> str:
        calls.append(1)
        await asyncio.sleep(0.2)  # every other task misses meanwhile
        return "value"

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(cache.aget_or_set("k", expensive, 60) for _ in range(20)))

    assert run(cache, scenario) == ["value"] * 20
    assert calls == [1]


def test_aget_or_set_timeouts_follow_django(cache: BaseCache) -> None:
    assert run(cache, lambda: cache.aget_or_set("gone", "value", timeout=0)) == "value"
    assert cache.get("gone") is None
    assert run(cache, lambda: cache.aget_or_set("kept", "value", timeout=None)) == "value"
    assert cache.get("kept") == "value"


# -- no thread hops ----------------------------------------------------------------------


def test_no_thread_hop_in_steady_state(cache: BaseCache) -> None:
    hops: list[str] = []
    sync_to_async_call = SyncToAsync.__call__
    run_in_executor = asyncio.BaseEventLoop.run_in_executor

    def counted_sync_to_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(f"sync_to_async({self.func!r})")
        return sync_to_async_call(self, *args, **kwargs)

    def counted_executor(self: Any, executor: Any, func: Any, *args: Any) -> Any:
        hops.append(f"run_in_executor({func!r})")
        return run_in_executor(self, executor, func, *args)

    async def every_method() -> None:
        await cache.aset("k", {"v": 1})
        await cache.aadd("k2", [1])
        await cache.aget("k")
        await cache.aget_many(["k", "k2", "k3"])
        await cache.aset_many({"a": 1, "b": "two"})
        await cache.ahas_key("a")
        await cache.aincr("a")
        await cache.adecr("a")
        await cache.atouch("a", 60)
        await cache.aget_or_set("gos", lambda: "x")
        await cache.aget_or_set("gos", lambda: "x")
        await cache.aincr_version("b")
        await cache.adecr_version("b", version=2)
        await cache.adelete("k")
        await cache.adelete_many(["k2", "a"])
        await cache.aclose()

    async def scenario() -> None:
        await every_method()  # connections opened, meta support probed
        with (
            mock.patch.object(SyncToAsync, "__call__", counted_sync_to_async),
            mock.patch.object(asyncio.BaseEventLoop, "run_in_executor", counted_executor),
        ):
            for _ in range(3):
                await every_method()
            await cache.aclear()

    run(cache, scenario)
    assert hops == []


# -- backends per request ------------------------------------------------------------------


def test_backends_made_per_request_share_one_async_client(memcached: MemcachedProcess) -> None:
    entry = {"BACKEND": BACKEND, "LOCATION": memcached.address, "OPTIONS": {"max_connections": 4}}
    with override_settings(CACHES={"default": entry}):
        made: list[MemcacheCache] = []

        async def request(n: int) -> None:
            # Under ASGI each request has its own context, hence its own backend.
            backend = caches.create_connection("default")
            made.append(backend)  # type: ignore[arg-type]
            await backend.aset(f"k{n}", n)
            assert await backend.aget(f"k{n}") == n
            await backend.aclose()  # as at the end of every request

        async def traffic() -> None:
            shared = caches["default"].async_client
            before = await shared.stats()
            for _ in range(2):
                await asyncio.gather(*(asyncio.create_task(request(n)) for n in range(64)))
            after = await shared.stats()
            opened = int(after[memcached.address]["total_connections"]) - int(
                before[memcached.address]["total_connections"]
            )
            # 128 requests, each with a backend of its own, over one pool of at most
            # max_connections (the first stats() connection among them); the last
            # stats() opens its own.
            assert opened <= 4 + 1

        run(caches["default"], traffic)
        assert len({id(backend) for backend in made}) > 1
        assert len({id(backend.async_client) for backend in made}) == 1
        assert made[0].async_client.max_connections == 4


def test_aclose_disconnects_only_when_asked(memcached: MemcachedProcess) -> None:
    options = {"close_connections": True}
    entry = {"BACKEND": BACKEND, "LOCATION": memcached.address, "OPTIONS": options}
    with override_settings(CACHES={"default": entry}):
        cache = caches["default"]

        async def scenario() -> None:
            await cache.aset("k", 1)
            with (
                mock.patch.object(AsyncClient, "aclose", autospec=True) as aclose,
                mock.patch.object(type(cache.client), "disconnect_all", autospec=True) as close,
            ):
                await cache.aclose()
            assert aclose.called
            assert close.called

        run(cache, scenario)


# -- pickling that needs the sync world ----------------------------------------------------


@pytest.mark.usefixtures("shelves")
def test_a_lazy_queryset_is_pickled_in_a_worker_thread(cache: BaseCache) -> None:
    names = Shelf.objects.order_by("name").values_list("name", flat=True)
    deferred = Shelf.objects.defer("note").order_by("name")

    async def scenario() -> None:
        await cache.aset("names", names)
        await cache.aset_many({"deferred": deferred, "plain": 1})
        assert await cache.aadd("added", deferred) is True
        assert await cache.aget_or_set("made", lambda: names) is names

    run(cache, scenario)
    assert list(cache.get("names")) == ["a", "b"]
    assert [shelf.name for shelf in cache.get("deferred")] == ["a", "b"]
    assert [shelf.name for shelf in cache.get("added")] == ["a", "b"]
    assert list(cache.get("made")) == ["a", "b"]
    assert cache.get("plain") == 1


@pytest.mark.usefixtures("shelves")
def test_a_model_instance_with_deferred_fields_round_trips(cache: BaseCache) -> None:
    shelf = Shelf.objects.defer("note").get(name="a")

    async def scenario() -> Any:
        await cache.aset("shelf", shelf)
        return await cache.aget("shelf")

    again = run(cache, scenario)
    assert (again.pk, again.name) == (shelf.pk, "a")
    assert again.get_deferred_fields() == {"note"}


def test_values_are_serialized_in_the_event_loop_when_they_can_be(cache: BaseCache) -> None:
    async def scenario() -> None:
        with mock.patch.object(SyncToAsync, "__call__", side_effect=AssertionError("thread hop")):
            await cache.aset("k", {"a": [1, 2]})

    run(cache, scenario)
    assert cache.get("k") == {"a": [1, 2]}


# -- django-debug-toolbar ------------------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("debug_toolbar") is None, reason="django-debug-toolbar not installed"
)
def test_async_methods_work_under_the_debug_toolbars_cache_panel(cache: BaseCache) -> None:
    from debug_toolbar.panels import cache as cache_panel

    # What the cache panel does to every cache a request uses: its sync methods
    # become plain functions, and Django 6.1's inherited aget_many, aincr, ...
    # fail on ``self.get_many.__func__``.
    cache_panel._monkey_patch_cache(cache, "default", None)
    assert not hasattr(cache.get_many, "__func__")

    async def scenario() -> None:
        await cache.aset_many({"a": 1, "b": 2})
        assert await cache.aget_many(["a", "b"]) == {"a": 1, "b": 2}
        assert await cache.aincr("a") == 2
        assert await cache.adecr("a") == 1
        assert await cache.ahas_key("b") is True
        assert await cache.aget_or_set("c", 3) == 3
        assert await cache.aincr_version("c") == 2
        await cache.adelete_many(["a", "b"])
        assert await cache.aget_many(["a", "b"]) == {}

    run(cache, scenario)
