"""The Django backend's key policy and namespaces, on real memcached.

``OPTIONS["key_policy"] = "hash"``: keys Django would refuse for memcached are stored
(no ``InvalidCacheKey``, no warning), valid keys stay byte-identical to what Django's
``PyMemcacheCache`` stores. ``cache.namespace(name)``: the whole cache API on a group of
keys that ``clear()`` invalidates at once (a view caching per-user fragments, here).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache, InvalidCacheKey
from django.test import AsyncClient, Client
from django.test.utils import override_settings
from django_helpers import BACKEND, PYMEMCACHE_BACKEND

from layered_cache import CacheConnectionError
from layered_cache.django import CacheConfigurationError
from tests.servers import MemcachedProcess

LONG = "search:" + "green tea " * 40
ODD = ["search:green tea", LONG, "tab\there", "ctrl\x01", "é" * 200]


@pytest.fixture
def hashing(memcached: MemcachedProcess) -> Iterator[dict[str, BaseCache]]:
    setting = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": memcached.address,
            "OPTIONS": {"key_policy": "hash"},
        },
        "prefixed": {
            "BACKEND": BACKEND,
            "LOCATION": memcached.address,
            "KEY_PREFIX": "shop",
            "OPTIONS": {"key_policy": "hash"},
        },
        "strict": {"BACKEND": BACKEND, "LOCATION": memcached.address},
        "theirs": {"BACKEND": PYMEMCACHE_BACKEND, "LOCATION": memcached.address},
    }
    with override_settings(CACHES=setting):
        yield {alias: caches[alias] for alias in setting}


def test_hash_policy_takes_every_key_without_error_or_warning(
    hashing: dict[str, BaseCache],
) -> None:
    cache = hashing["default"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for key in ODD:
            cache.set(key, key)
            assert cache.get(key) == key
            assert cache.has_key(key)
            assert cache.add(key, "again") is False
            assert cache.touch(key, 60) is True
            assert cache.get_or_set(key, "other") == key
            assert cache.delete(key) is True
            cache.set(key, 1)
            assert cache.incr(key, 2) == 3
            assert cache.decr(key) == 2
        assert cache.set_many(dict.fromkeys(ODD, "v")) == []
        assert cache.get_many([*ODD, "missing"]) == dict.fromkeys(ODD, "v")
        cache.delete_many(ODD)
        assert cache.get_many(ODD) == {}


def test_hash_policy_async_methods(hashing: dict[str, BaseCache]) -> None:
    cache = hashing["default"]

    async def run() -> None:
        await cache.aset(LONG, "a")
        assert await cache.aget(LONG) == "a"
        assert await cache.aget_or_set("x y", lambda: "computed") == "computed"
        assert await cache.aget_many([LONG, "x y"]) == {LONG: "a", "x y": "computed"}
        await cache.adelete_many([LONG, "x y"])
        assert await cache.aget(LONG) is None

    asyncio.run(run())


def test_strict_policy_keeps_djangos_memcached_behaviour(hashing: dict[str, BaseCache]) -> None:
    with pytest.raises(InvalidCacheKey):
        hashing["strict"].set("search:green tea", 1)
    with pytest.raises(InvalidCacheKey):
        hashing["strict"].get(LONG)


def test_valid_keys_are_shared_with_pymemcachecache(hashing: dict[str, BaseCache]) -> None:
    ours, theirs = hashing["default"], hashing["theirs"]
    ours.set("user:1:profile", {"name": "Ada"})
    assert theirs.get("user:1:profile") == {"name": "Ada"}
    theirs.set("café:ü", [1, 2])
    assert ours.get("café:ü") == [1, 2]
    assert ours.get_many(["user:1:profile", "café:ü"]) == theirs.get_many(
        ["user:1:profile", "café:ü"]
    )
    # A hashed key reads back through the other layered_cache backends of the same policy.
    hashing["default"].set("a b", 1, version=3)
    assert hashing["default"].get("a b", version=3) == 1


def test_an_unknown_policy_is_a_configuration_error(memcached: MemcachedProcess) -> None:
    setting = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": memcached.address,
            "OPTIONS": {"key_policy": "md5"},
        }
    }
    with (
        override_settings(CACHES=setting),
        pytest.raises(CacheConfigurationError, match="key_policy must be 'strict' or 'hash'"),
    ):
        caches["default"]


def test_namespace_has_the_cache_api_and_clear_only_clears_it(
    hashing: dict[str, BaseCache],
) -> None:
    cache = hashing["prefixed"]
    space = cache.namespace("user:42")  # type: ignore[attr-defined]
    other = cache.namespace("user:43")  # type: ignore[attr-defined]
    space.set("profile", "p", 60)
    space.set_many({"a": 1, "b": 2})
    other.set("profile", "q")
    cache.set("profile", "global")
    assert space.get("profile") == "p"
    assert space.get_many(["a", "b"]) == {"a": 1, "b": 2}
    assert space.incr("a") == 2
    assert space.has_key("b")
    space.clear()
    assert space.get("profile") is None
    assert space.get_many(["a", "b"]) == {}
    assert other.get("profile") == "q"
    assert cache.get("profile") == "global"
    # The name is made as Django makes keys: KEY_PREFIX keeps two sites' namespaces apart.
    assert space.namespace_name == "shop:1:user:42"
    assert hashing["default"].namespace("user:42").get("profile") is None  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="do not nest"):
        space.namespace("inner")


def test_namespace_async_and_sync_see_one_generation(hashing: dict[str, BaseCache]) -> None:
    cache = hashing["default"]
    space = cache.namespace("user:7")  # type: ignore[attr-defined]

    async def run() -> None:
        await space.aset("fragment", "async")
        assert space.get("fragment") == "async"
        space.clear()  # sync invalidation, seen at once by the async methods
        assert await space.aget("fragment") is None
        await space.aset("fragment", "again")
        await space.aclear()
        assert space.get("fragment") is None

    asyncio.run(run())


def test_namespace_fail_silent_reads_as_a_miss(
    memcached_factory: Any,
) -> None:
    server = memcached_factory(name="django-ns")
    setting = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": server.address,
            "OPTIONS": {"ignore_exceptions": True, "namespace_cache_ttl": 0},
        },
        "loud": {
            "BACKEND": BACKEND,
            "LOCATION": server.address,
            "OPTIONS": {"namespace_cache_ttl": 0},
        },
    }
    with override_settings(CACHES=setting):
        space = caches["default"].namespace("user:1")
        space.set("k", "v")
        assert space.get("k") == "v"
        server.stop()
        assert space.get("k", "fallback") == "fallback"
        assert space.get_or_set("k", "computed") == "computed"
        with pytest.raises(CacheConnectionError):
            caches["loud"].namespace("user:1").get("k")


@pytest.fixture
def browser(memcached: MemcachedProcess) -> Iterator[Client]:
    setting = {"default": {"BACKEND": BACKEND, "LOCATION": memcached.address}}
    with override_settings(CACHES=setting):
        yield Client()


def test_a_view_caching_per_user_fragments_invalidated_at_once(browser: Client) -> None:
    first = browser.get("/dashboard/1/").json()
    assert browser.get("/dashboard/1/").json() == first  # every fragment served from the cache
    other = browser.get("/dashboard/2/").json()
    assert browser.post("/dashboard/1/changed/").json() == {"invalidated": 1}
    fresh = browser.get("/dashboard/1/").json()
    assert set(fresh) == set(first)
    assert all(fresh[name] != first[name] for name in first)  # all re-rendered at once
    assert browser.get("/dashboard/2/").json() == other  # the other user's stay cached
    # The async view reads the same namespaces.
    assert asyncio.run(AsyncClient().get("/adashboard/1/")).json() == fresh


def test_single_key_methods_store_under_djangos_own_keys(memcached: MemcachedProcess) -> None:
    """The backend's key making (a prefix joined once) gives what ``make_key`` gives."""
    from django.utils.safestring import mark_safe

    setting = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": memcached.address,
            "KEY_PREFIX": "shop",
            "VERSION": 3,
        }
    }
    with override_settings(CACHES=setting):
        cache = caches["default"]
        raw = cache.client  # type: ignore[attr-defined]
        for key, version in [("plain", None), (mark_safe("safe"), None), (42, None), ("v", 7)]:
            cache.set(key, f"value of {key}", version=version)
            made = cache.make_key(key, version=version)
            assert raw.get(made) == f"value of {key}"
            assert cache.get(key, version=version) == f"value of {key}"
        assert raw.get("shop:3:plain") == "value of plain"
        assert raw.get("shop:7:v") == "value of v"
