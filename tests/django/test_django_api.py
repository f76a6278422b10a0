"""Django's cache API, as Django's own memcached test cases check it, on our backend.

Every promise Django's ``PyMemcacheCache`` test case checks is checked here again (re-created,
not copied), against real memcached over plain TCP, over TLS and behind the MemCachier
gateway (the ``flavour`` parameter). ``close()`` is the one deliberate difference: it keeps
the connections unless ``"close_connections": True``.
"""

from __future__ import annotations

import asyncio
import pickle
import re
import threading
import time
import zlib
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core import signals
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache, InvalidCacheKey
from django.http import HttpResponse
from django.middleware.cache import FetchFromCacheMiddleware, UpdateCacheMiddleware
from django.test import RequestFactory
from django.test.utils import override_settings
from django_helpers import BACKEND, caches_setting

from layered_cache import CacheConnectionError, Client, InvalidKeyError, ServerResponseError
from layered_cache.django.cache import KEYS_HELP
from tests.servers import free_port

MONTH = 60 * 60 * 24 * 30


def answer() -> int:
    return 42


class Pet:
    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pet) and other.name == self.name

    __hash__ = None  # type: ignore[assignment]


class RefusesPickling:
    def __reduce__(self) -> Any:
        raise pickle.PickleError("not today")


# -- get / set / add / delete --------------------------------------------------------------


def test_set_then_get(cache: BaseCache) -> None:
    cache.set("key", "value")
    assert cache.get("key") == "value"


def test_missing_key_returns_none_or_the_default(cache: BaseCache) -> None:
    assert cache.get("does_not_exist") is None
    assert cache.get("does_not_exist", "bang!") == "bang!"


def test_a_stored_none_wins_over_the_default(cache: BaseCache) -> None:
    cache.set("key_default_none", None)
    assert cache.get("key_default_none", default="default") is None


def test_add_stores_only_when_absent(cache: BaseCache) -> None:
    assert cache.add("addkey1", "value") is True
    assert cache.add("addkey1", "newvalue") is False
    assert cache.get("addkey1") == "value"


def test_key_prefix_separates_caches(use_caches: Any) -> None:
    default, prefixed = use_caches["default"], use_caches["prefix"]
    default.set("somekey", "value")
    assert prefixed.has_key("somekey") is False
    prefixed.set("somekey", "value2")
    assert default.get("somekey") == "value"
    assert prefixed.get("somekey") == "value2"


def test_get_many(cache: BaseCache) -> None:
    cache.set_many({"a": "a", "b": "b", "c": "c", "d": "d"})
    assert cache.get_many(["a", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    assert cache.get_many(["a", "b", "e"]) == {"a": "a", "b": "b"}
    assert cache.get_many(iter(["a", "b", "e"])) == {"a": "a", "b": "b"}
    cache.set_many({"x": None, "y": 1})
    assert cache.get_many(["x", "y"]) == {"x": None, "y": 1}
    assert cache.get_many([]) == {}


def test_delete(cache: BaseCache) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs"})
    assert cache.get("key1") == "spam"
    assert cache.delete("key1") is True
    assert cache.get("key1") is None
    assert cache.get("key2") == "eggs"
    assert cache.delete("nonexistent_key") is False


def test_has_key_and_in(cache: BaseCache) -> None:
    cache.set("hello1", "goodbye1")
    assert cache.has_key("hello1") is True
    assert cache.has_key("goodbye1") is False
    assert "hello1" in cache
    assert "goodbye1" not in cache
    cache.set("no_expiry", "here", None)
    assert cache.has_key("no_expiry") is True
    cache.set("null", None)
    assert cache.has_key("null") is True
    assert "null" in cache


def test_incr(cache: BaseCache) -> None:
    cache.set("answer", 41)
    assert cache.incr("answer") == 42
    assert cache.get("answer") == 42
    assert cache.incr("answer", 10) == 52
    assert cache.get("answer") == 52
    assert cache.incr("answer", -10) == 42
    with pytest.raises(ValueError, match="not found"):
        cache.incr("does_not_exist")
    with pytest.raises(ValueError, match="not found"):
        cache.incr("does_not_exist", -1)
    cache.set("null", None)
    with pytest.raises(ServerResponseError):
        cache.incr("null")


def test_decr(cache: BaseCache) -> None:
    cache.set("answer", 43)
    assert cache.decr("answer") == 42
    assert cache.get("answer") == 42
    assert cache.decr("answer", 10) == 32
    assert cache.get("answer") == 32
    assert cache.decr("answer", -10) == 42
    with pytest.raises(ValueError, match="not found"):
        cache.decr("does_not_exist")
    with pytest.raises(ValueError, match="not found"):
        cache.decr("does_not_exist", -1)
    cache.set("null", None)
    with pytest.raises(ServerResponseError):
        cache.decr("null")


def test_decr_stops_at_zero_like_memcached(cache: BaseCache) -> None:
    cache.set("counter", 1)
    assert cache.decr("counter", 5) == 0


@pytest.mark.parametrize(
    "value",
    [
        "this is a string",
        42,
        True,
        [1, 2, 3, 4],
        (1, 2, 3, 4),
        {"A": 1, "B": 2},
        answer,
        Pet,
        Pet("rex"),
        3.25,
        b"\x00\xffbytes",
        -(2**70),
    ],
    ids=repr,
)
def test_data_types_round_trip(cache: BaseCache, value: Any) -> None:
    cache.set("value", value)
    got = cache.get("value")
    assert got == value
    assert type(got) is type(value)


def test_unicode_keys_and_values(cache: BaseCache) -> None:
    stuff = {
        "ascii": "ascii_value",
        "unicode_ascii": "Iñtërnâtiônàlizætiøn1",
        "Iñtërnâtiônàlizætiøn": "Iñtërnâtiônàlizætiøn2",
        "ascii2": {"x": 1},
    }
    for key, value in stuff.items():
        cache.set(key, value)
        assert cache.get(key) == value
    for key, value in stuff.items():
        assert cache.delete(key) is True
        assert cache.add(key, value) is True
        assert cache.get(key) == value
    for key in stuff:
        assert cache.delete(key) is True
    assert cache.set_many(stuff) == []
    assert cache.get_many(list(stuff)) == stuff


def test_binary_strings(cache: BaseCache) -> None:
    compressed = zlib.compress(b"value_to_be_compressed")
    cache.set("binary1", compressed)
    assert cache.get("binary1") == compressed
    assert cache.add("binary1-add", compressed) is True
    assert zlib.decompress(cache.get("binary1-add")) == b"value_to_be_compressed"
    cache.set_many({"binary1-set_many": compressed})
    assert cache.get("binary1-set_many") == compressed


def test_set_many_and_delete_many(cache: BaseCache) -> None:
    assert cache.set_many({"key1": "spam", "key2": "eggs", "key3": "ham"}) == []
    assert cache.get("key1") == "spam"
    assert cache.get("key2") == "eggs"
    assert cache.delete_many(["key1", "key2"]) is None
    assert cache.get("key1") is None
    assert cache.get("key2") is None
    assert cache.get("key3") == "ham"
    assert cache.set_many({}) == []
    assert cache.delete_many([]) is None


def test_set_many_returns_the_keys_memcached_refused(cache: BaseCache) -> None:
    def refuse_all(mapping: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        return mapping.keys()

    with mock.patch.object(Client, "set_many", side_effect=refuse_all):
        assert cache.set_many({"key": "value"}) == ["key"]


def test_clear(cache: BaseCache) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs"})
    cache.clear()
    assert cache.get("key1") is None
    assert cache.get("key2") is None


# -- timeouts ------------------------------------------------------------------------------


def test_timeouts_over_thirty_days_are_absolute_times(cache: BaseCache) -> None:
    cache.set("key1", "eggs", MONTH + 1)
    assert cache.get("key1") == "eggs"
    assert cache.add("key2", "ham", MONTH + 1) is True
    assert cache.get("key2") == "ham"
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, MONTH + 1)
    assert cache.get_many(["key3", "key4"]) == {"key3": "sausage", "key4": "lobster bisque"}
    assert cache.touch("key1", MONTH * 12) is True
    assert cache.get("key1") == "eggs"


def test_zero_timeout_means_do_not_keep(cache: BaseCache) -> None:
    cache.set("key1", "eggs", 0)
    assert cache.get("key1") is None
    assert cache.add("key2", "ham", 0) is True
    assert cache.get("key2") is None
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, 0)
    assert cache.get("key3") is None
    assert cache.get("key4") is None
    cache.set("key5", "belgian fries", timeout=5)
    assert cache.touch("key5", timeout=0) is True
    assert cache.get("key5") is None


def test_negative_timeout_means_already_expired(cache: BaseCache) -> None:
    cache.set("key1", "eggs", -1)
    assert cache.get("key1") is None
    cache.set_many({"key2": "ham"}, -5)
    assert cache.get("key2") is None


def test_float_timeout(cache: BaseCache) -> None:
    cache.set("key1", "spam", 100.2)
    assert cache.get("key1") == "spam"


def test_none_timeout_means_forever(cache: BaseCache) -> None:
    cache.set("key1", "eggs", None)
    assert cache.get("key1") == "eggs"
    assert cache.add("key2", "ham", None) is True
    assert cache.add("key1", "new eggs", None) is False
    assert cache.get("key1") == "eggs"
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, None)
    assert cache.get_many(["key3", "key4"]) == {"key3": "sausage", "key4": "lobster bisque"}


@pytest.mark.parametrize("timeout", [None, 60 * 60 * 24 * 365])
def test_default_timeout_from_settings(backend_params: dict[str, Any], timeout: Any) -> None:
    with override_settings(CACHES=caches_setting(backend_params, TIMEOUT=timeout)):
        cache = caches["default"]
        cache.set("infinite_foo", "bar")
        assert cache.get("infinite_foo") == "bar"


def test_expiry_over_time(every_flavour: dict[str, BaseCache]) -> None:
    """Django's expiration, touch and forever-timeout checks, on every flavour at once.

    memcached counts expiry in whole seconds on a clock that ticks once a second,
    so every deadline below has a full second of margin; the flavours share one wait.
    """
    for cache in every_flavour.values():
        cache.set("expire1", "very quickly", 1)
        cache.set("expire2", "very quickly", 1)
        cache.set("expire3", "very quickly", 1)
        cache.set_many({"many1": "spam", "many2": "eggs"}, 1)
        # A 1 s item expires at the server's next clock tick, which may be a few
        # milliseconds away: the items touched at once get 2 s, so the touch finds them.
        cache.set("touched", "very quickly", timeout=2)
        assert cache.touch("touched", timeout=4) is True
        cache.set("touched_default", "very quickly", timeout=2)
        assert cache.touch("touched_default") is True  # the default timeout: 300 s
        cache.set("touched_forever", "belgian fries", timeout=2)
        assert cache.touch("touched_forever", timeout=None) is True
        assert cache.touch("nonexistent") is False
    started = time.monotonic()

    time.sleep(2.1)
    for flavour, cache in every_flavour.items():
        assert cache.get("expire1") is None, flavour
        assert cache.add("expire2", "newvalue") is True, flavour
        assert cache.get("expire2") == "newvalue", flavour
        assert cache.has_key("expire3") is False, flavour
        assert cache.get_many(["many1", "many2"]) == {}, flavour
        assert cache.has_key("touched") is True, flavour
        assert cache.has_key("touched_default") is True, flavour
        assert cache.get("touched_forever") == "belgian fries", flavour

    time.sleep(max(0.0, 5.2 - (time.monotonic() - started)))
    for flavour, cache in every_flavour.items():
        assert cache.has_key("touched") is False, flavour
        assert cache.get("touched_forever") == "belgian fries", flavour


# -- keys ----------------------------------------------------------------------------------


INVALID_KEY_OPERATIONS: list[tuple[str, Any]] = [
    ("add", lambda cache, key: cache.add(key, 1)),
    ("get", lambda cache, key: cache.get(key)),
    ("set", lambda cache, key: cache.set(key, 1)),
    ("incr", lambda cache, key: cache.incr(key)),
    ("decr", lambda cache, key: cache.decr(key)),
    ("touch", lambda cache, key: cache.touch(key)),
    ("delete", lambda cache, key: cache.delete(key)),
    ("get_many", lambda cache, key: cache.get_many([key, "b"])),
    ("set_many", lambda cache, key: cache.set_many({key: 1, "b": 2})),
    ("delete_many", lambda cache, key: cache.delete_many([key, "b"])),
]


BAD_CHARACTERS = "Cache key contains characters that will cause errors if used with memcached: %r"
TOO_LONG = "Cache key will cause errors if used with memcached: %r (longer than 250)"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("key with spaces and 清", BAD_CHARACTERS),
        ("a" * 250 + "清", TOO_LONG),
        # make_key() adds ":1:" and pushes a 248-character key over the limit.
        ("a" * 248, TOO_LONG),
    ],
    ids=["characters", "length", "length-with-version"],
)
def test_invalid_keys_raise_like_memcached_backends(
    cache: BaseCache, key: str, problem: str
) -> None:
    # Django's own message, then what to do about it.
    expected = f"{problem % cache.make_key(key)}. {KEYS_HELP}"
    for operation, call in INVALID_KEY_OPERATIONS:
        with pytest.raises(InvalidCacheKey) as caught:
            call(cache, key)
        assert str(caught.value) == expected, operation


def test_a_refused_key_among_many_leaves_every_key_unwritten(cache: BaseCache) -> None:
    # Every key is checked before anything is sent, as Django's backends do.
    cache.set("last", "old")
    with pytest.raises(InvalidCacheKey):
        cache.set_many({"first": 1, "bad key": 2, "last": 3})
    with pytest.raises(InvalidCacheKey):
        cache.delete_many(["first", "bad key", "last"])
    assert cache.get_many(["first", "last"]) == {"last": "old"}


def test_the_key_help_points_at_the_keys_section_of_the_docs() -> None:
    url = re.search(r"https://\S+/latest/(\S+)\.html#([\w-]+)\)", KEYS_HELP)
    assert url is not None, KEYS_HELP
    page = Path(__file__).resolve().parents[2] / "docs" / f"{url[1]}.rst"
    assert f".. _{url[2]}:" in page.read_text(encoding="utf-8")


def test_keys_over_250_bytes_but_not_characters_are_refused_before_sending(
    cache: BaseCache,
) -> None:
    # Django counts characters; memcached counts bytes. 200 "é" pass Django's check.
    with pytest.raises(InvalidKeyError, match="memcached allows at most 250") as caught:
        cache.set("é" * 200, 1)
    assert KEYS_HELP in str(caught.value)
    assert cache.get("é" * 100, "fine") == "fine"


def test_custom_key_functions(use_caches: Any) -> None:
    default, custom, custom2 = (use_caches[a] for a in ("default", "custom_key", "custom_key2"))
    default.set("answer1", 42)
    assert default.get("answer1") == 42
    assert custom.get("answer1") is None
    assert custom2.get("answer1") is None
    custom.set("answer2", 42)
    assert default.get("answer2") is None
    assert custom.get("answer2") == 42
    assert custom2.get("answer2") == 42


# -- versions ------------------------------------------------------------------------------


def test_versioning_get_set(use_caches: Any) -> None:
    cache, v2 = use_caches["default"], use_caches["v2"]
    cache.set("answer1", 42)
    assert (cache.get("answer1"), cache.get("answer1", version=1)) == (42, 42)
    assert cache.get("answer1", version=2) is None
    assert v2.get("answer1") is None
    assert v2.get("answer1", version=1) == 42

    cache.set("answer2", 42, version=2)
    assert cache.get("answer2") is None
    assert cache.get("answer2", version=2) == 42
    assert v2.get("answer2") == 42
    assert v2.get("answer2", version=1) is None

    v2.set("answer3", 42)
    assert cache.get("answer3") is None
    assert cache.get("answer3", version=2) == 42

    v2.set("answer4", 42, version=1)
    assert cache.get("answer4") == 42
    assert v2.get("answer4") is None
    assert v2.get("answer4", version=1) == 42


def test_versioning_add(use_caches: Any) -> None:
    cache, v2 = use_caches["default"], use_caches["v2"]
    assert cache.add("answer1", 42, version=2) is True
    assert cache.add("answer1", 37, version=2) is False
    assert cache.get("answer1", version=1) is None
    assert cache.add("answer1", 37, version=1) is True
    assert (cache.get("answer1", version=1), cache.get("answer1", version=2)) == (37, 42)

    assert v2.add("answer2", 42) is True
    assert v2.add("answer2", 37) is False
    assert v2.add("answer2", 37, version=1) is True
    assert (cache.get("answer2", version=1), cache.get("answer2", version=2)) == (37, 42)

    assert v2.add("answer3", 42, version=1) is True
    assert v2.add("answer3", 37, version=1) is False
    assert v2.add("answer3", 37) is True
    assert (cache.get("answer3", version=1), cache.get("answer3", version=2)) == (42, 37)


def test_versioning_has_key_and_delete(use_caches: Any) -> None:
    cache, v2 = use_caches["default"], use_caches["v2"]
    cache.set("answer1", 42)
    assert cache.has_key("answer1") is True
    assert cache.has_key("answer1", version=2) is False
    assert v2.has_key("answer1") is False
    assert v2.has_key("answer1", version=1) is True

    for name, deleter, deleted_version in [
        ("d1", lambda: cache.delete("d1"), 1),
        ("d2", lambda: cache.delete("d2", version=2), 2),
        ("d3", lambda: v2.delete("d3"), 2),
        ("d4", lambda: v2.delete("d4", version=1), 1),
    ]:
        cache.set(name, 37, version=1)
        cache.set(name, 42, version=2)
        assert deleter() is True
        assert cache.get(name, version=deleted_version) is None
        kept = 3 - deleted_version
        assert cache.get(name, version=kept) == (37 if kept == 1 else 42)


def test_versioning_incr_decr(use_caches: Any) -> None:
    cache, v2 = use_caches["default"], use_caches["v2"]
    for name, backend, version, changed in [
        ("a1", cache, None, 1),
        ("a2", cache, 2, 2),
        ("a3", v2, None, 2),
        ("a4", v2, 1, 1),
    ]:
        cache.set(name, 37, version=1)
        cache.set(name, 42, version=2)
        start = 37 if changed == 1 else 42
        assert backend.incr(name, version=version) == start + 1
        assert cache.get(name, version=changed) == start + 1
        assert cache.get(name, version=3 - changed) == (42 if changed == 1 else 37)
        assert backend.decr(name, version=version) == start
        assert cache.get(name, version=changed) == start


def test_versioning_get_set_many(use_caches: Any) -> None:
    cache, v2 = use_caches["default"], use_caches["v2"]
    cache.set_many({"ford1": 37, "arthur1": 42})
    assert cache.get_many(["ford1", "arthur1"]) == {"ford1": 37, "arthur1": 42}
    assert cache.get_many(["ford1", "arthur1"], version=2) == {}
    assert v2.get_many(["ford1", "arthur1"]) == {}
    assert v2.get_many(["ford1", "arthur1"], version=1) == {"ford1": 37, "arthur1": 42}

    cache.set_many({"ford2": 37, "arthur2": 42}, version=2)
    assert cache.get_many(["ford2", "arthur2"]) == {}
    assert v2.get_many(["ford2", "arthur2"]) == {"ford2": 37, "arthur2": 42}

    v2.set_many({"ford3": 37, "arthur3": 42})
    assert cache.get_many(["ford3", "arthur3"], version=2) == {"ford3": 37, "arthur3": 42}
    assert v2.get_many(["ford3", "arthur3"], version=1) == {}

    v2.set_many({"ford4": 37, "arthur4": 42}, version=1)
    assert cache.get_many(["ford4", "arthur4"]) == {"ford4": 37, "arthur4": 42}
    assert v2.get_many(["ford4", "arthur4"]) == {}


def test_incr_and_decr_version(use_caches: Any) -> None:
    cache, v2 = use_caches["default"], use_caches["v2"]
    cache.set("answer", 42, version=2)
    assert cache.incr_version("answer", version=2) == 3
    assert cache.get("answer", version=2) is None
    assert cache.get("answer", version=3) == 42

    v2.set("answer2", 42)
    assert v2.incr_version("answer2") == 3
    assert v2.get("answer2") is None
    assert v2.get("answer2", version=3) == 42

    with pytest.raises(ValueError, match="not found"):
        cache.incr_version("does_not_exist")
    cache.set("null", None)
    assert cache.incr_version("null") == 2

    cache.set("answer5", 42, version=2)
    assert cache.decr_version("answer5", version=2) == 1
    assert cache.get("answer5") == 42
    assert cache.get("answer5", version=2) is None
    v2.set("answer6", 42)
    assert v2.decr_version("answer6") == 1
    assert v2.get("answer6", version=1) == 42
    with pytest.raises(ValueError, match="not found"):
        cache.decr_version("does_not_exist", version=2)
    cache.set("null2", None, version=2)
    assert cache.decr_version("null2", version=2) == 1


# -- get_or_set ----------------------------------------------------------------------------


def test_get_or_set(cache: BaseCache) -> None:
    assert cache.get("projector") is None
    assert cache.get_or_set("projector", 42) == 42
    assert cache.get("projector") == 42
    assert cache.get_or_set("null", None) is None
    assert cache.get("null", "default") is None  # None was stored
    assert cache.get_or_set("mykey", lambda: "value") == "value"
    assert cache.get_or_set("mykey", "other") == "value"
    assert cache.get_or_set("null2", lambda: None) is None
    assert cache.get("null2", "default") is None


def test_get_or_set_versions(cache: BaseCache) -> None:
    assert cache.get_or_set("brian", 1979, version=2) == 1979
    with pytest.raises(TypeError, match="required positional argument: 'default'"):
        cache.get_or_set("brian")  # type: ignore[call-arg]
    assert cache.get("brian", version=1) is None
    assert cache.get_or_set("brian", 42, version=1) == 42
    assert cache.get_or_set("brian", 1979, version=2) == 1979
    assert cache.get("brian", version=3) is None


def test_get_or_set_when_add_loses_a_race(cache: BaseCache) -> None:
    with mock.patch.object(type(cache), "add", return_value=False):
        assert cache.get_or_set("key", "default") == "default"


# -- values memcached or pickle refuse -------------------------------------------------------


def test_unpicklable_values_raise_pickle_errors(cache: BaseCache) -> None:
    with pytest.raises(pickle.PickleError):
        cache.add("unpicklable", RefusesPickling())
    with pytest.raises(pickle.PickleError):
        cache.set("unpicklable", RefusesPickling())
    assert cache.get("unpicklable") is None


def test_a_failed_set_does_not_leave_the_old_value(cache: BaseCache) -> None:
    # memcached refuses items over 1 MB; the old value must not survive (Django's
    # cache_db sessions rely on it).
    cache.set("small_value", "a")
    assert cache.get("small_value") == "a"
    large = "a" * (2**20 + 1)
    with pytest.raises(ServerResponseError):
        cache.set("small_value", large)
    assert cache.get("small_value") is None


def test_cache_middleware_stores_responses_with_cookies(cache: BaseCache) -> None:
    factory = RequestFactory()
    request = factory.get("/cache/test")
    request._cache_update_cache = True  # type: ignore[attr-defined]
    fetch = FetchFromCacheMiddleware(lambda req: HttpResponse())
    assert fetch.process_request(request) is None

    def respond(req: Any) -> HttpResponse:
        response = HttpResponse("Testing cookie serialization.")
        response.set_cookie("foo", "bar")
        return response

    response = UpdateCacheMiddleware(respond)(request)
    cached = fetch.process_request(request)
    assert cached is not None
    assert cached.content == b"Testing cookie serialization."
    assert cached.cookies == response.cookies
    # Caching the cached response again works too.
    UpdateCacheMiddleware(lambda req: cached)(request)
    again = fetch.process_request(request)
    assert again is not None
    assert again.cookies == response.cookies


# -- async ---------------------------------------------------------------------------------


def test_async_methods(cache: BaseCache) -> None:
    async def scenario() -> None:
        assert await cache.aadd("a", 1) is True
        assert await cache.aadd("a", 2) is False
        await cache.aset("b", "bee")
        assert await cache.aget("b") == "bee"
        assert await cache.aget("missing", "default") == "default"
        assert await cache.aset_many({"c": 3, "d": 4}) == []
        assert await cache.aget_many(["a", "b", "c", "missing"]) == {"a": 1, "b": "bee", "c": 3}
        assert await cache.ahas_key("c") is True
        assert await cache.aincr("a", 10) == 11
        assert await cache.adecr("a") == 10
        with pytest.raises(ValueError, match="not found"):
            await cache.aincr("missing")
        assert await cache.atouch("b", 100) is True
        assert await cache.aget_or_set("e", lambda: "made") == "made"
        assert await cache.aincr_version("e") == 2
        assert await cache.aget("e", version=2) == "made"
        assert await cache.adecr_version("e", version=2) == 1
        assert await cache.adelete("b") is True
        await cache.adelete_many(["c", "d"])
        assert await cache.aget_many(["b", "c", "d"]) == {}
        await cache.aclear()
        assert await cache.aget("a") is None
        await cache.aclose()

    asyncio.run(scenario())


# -- close() ---------------------------------------------------------------------------------


@pytest.mark.parametrize("close_connections", [False, True])
def test_request_finished_disconnects_only_when_asked(
    backend_params: dict[str, Any], close_connections: bool
) -> None:
    params = {
        **backend_params,
        "OPTIONS": {**backend_params.get("OPTIONS", {}), "close_connections": close_connections},
    }
    with override_settings(CACHES={"default": params}):
        caches["default"].set("key", "value")
        with mock.patch.object(Client, "disconnect_all", autospec=True) as disconnect:
            signals.request_finished.send(sender=None)
        assert disconnect.called is close_connections
        assert caches["default"].get("key") == "value"


# -- unreachable servers ------------------------------------------------------------------


def test_an_unreachable_server_raises_like_djangos_backends() -> None:
    entry = {"BACKEND": BACKEND, "LOCATION": f"127.0.0.1:{free_port()}"}
    with (
        override_settings(CACHES={"default": entry}),
        pytest.raises(CacheConnectionError, match="refused the connection"),
    ):
        caches["default"].get("key")


def test_fail_silent_option() -> None:
    entry = {
        "BACKEND": BACKEND,
        "LOCATION": f"127.0.0.1:{free_port()}",
        "OPTIONS": {"ignore_exceptions": True},
    }
    with override_settings(CACHES={"default": entry}):
        cache = caches["default"]
        assert cache.get("key", "default") == "default"
        cache.set("key", "value")
        assert cache.add("key", "value") is False
        assert cache.get_many(["a", "b"]) == {}
        assert cache.set_many({"a": 1}) == ["a"]
        assert cache.has_key("key") is False
        assert cache.client.ignored_errors >= 6  # type: ignore[attr-defined]


# -- configuration as Django's test case checks it ----------------------------------------


@pytest.mark.parametrize(
    "location",
    [["server1.tld", "server2:11211"], "server1.tld;server2:11211", "server1.tld,server2:11211"],
)
def test_several_servers_in_location(location: Any) -> None:
    with override_settings(CACHES={"default": {"BACKEND": BACKEND, "LOCATION": location}}):
        cache = caches["default"]
        assert cache._servers == ["server1.tld", "server2:11211"]  # type: ignore[attr-defined]
        assert cache.client.servers == ["server1.tld:11211", "server2:11211"]  # type: ignore[attr-defined]


def test_pickles_with_the_highest_protocol() -> None:
    with override_settings(CACHES={"default": {"BACKEND": BACKEND, "LOCATION": "localhost"}}):
        serializer = caches["default"].client.serializer  # type: ignore[attr-defined]
        assert serializer.protocol == pickle.HIGHEST_PROTOCOL


def test_seed_options_reach_the_transport() -> None:
    entry = {
        "BACKEND": BACKEND,
        "LOCATION": "localhost",
        "OPTIONS": {"no_delay": False, "connect_timeout": 3, "timeout": 4},
    }
    with override_settings(CACHES={"default": entry}):
        client = caches["default"].client  # type: ignore[attr-defined]
        assert client.transport.no_delay is False
        assert (client.connect_timeout, client.timeout) == (3.0, 4.0)


def test_get_or_set_computes_once_for_a_herd(cache: BaseCache) -> None:
    calls: list[int] = []

    def expensive() -> dict[str, int]:
        calls.append(1)
        time.sleep(0.2)  # everyone else misses while this runs
        return {"rows": 3}

    barrier = threading.Barrier(16)
    results: list[Any] = []

    def request() -> None:
        barrier.wait(timeout=10)
        results.append(cache.get_or_set("report", expensive, timeout=60))

    threads = [threading.Thread(target=request) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert calls == [1]
    assert results == [{"rows": 3}] * 16


def test_get_or_set_timeouts_follow_django(cache: BaseCache) -> None:
    assert cache.get_or_set("gone", "value", timeout=0) == "value"
    assert cache.get("gone") is None  # timeout=0: expired at once, as Django says
    assert cache.get_or_set("kept", "value", timeout=None) == "value"
    assert cache.get("kept") == "value"


def test_aget_or_set(cache: BaseCache) -> None:
    async def scenario() -> tuple[Any, Any]:
        first = await cache.aget_or_set("async-key", lambda: "computed")
        return first, await cache.aget("async-key")

    assert asyncio.run(scenario()) == ("computed", "computed")
