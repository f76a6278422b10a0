"""A backend made again from the same CACHES entry copies the first one's state, correctly."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from layered_cache.django import MemcacheCache, release_clients
from layered_cache.django import options as options_module
from tests.servers import MemcachedProcess

BACKEND = "layered_cache.django.MemcacheCache"


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    parses: list[object] = []
    parse = options_module._parser.parse_cache_config

    def counted(location: object, params: Any, **kwargs: Any) -> Any:
        parses.append(location)
        return parse(location, params, **kwargs)

    monkeypatch.setattr(options_module._parser, "parse_cache_config", counted)
    return parses


def test_backends_per_request_copy_the_first(memcached: MemcachedProcess) -> None:
    entry = {"BACKEND": BACKEND, "LOCATION": memcached.address, "TIMEOUT": 60}
    with override_settings(CACHES={"default": entry}):
        first = caches.create_connection("default")
        again = caches.create_connection("default")
        assert again is not first
        assert vars(again) == vars(first)  # the same client, config, key rules and timeout
        again.set("k", "v")
        assert first.get("k") == "v"
        assert again.default_timeout == 60


def test_options_changed_in_place_are_read_again(
    memcached: MemcachedProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    options: dict[str, Any] = {"timeout": 1}
    params = {"OPTIONS": options}
    first = MemcacheCache(memcached.address, dict(params))
    assert MemcacheCache(memcached.address, dict(params)).client is first.client
    options["timeout"] = 2  # not Django's way, but it must not give the old client
    second = MemcacheCache(memcached.address, dict(params))
    assert second.client is not first.client
    assert second.config.client_options["timeout"] == 2
    options["timeout"] = 1
    assert MemcacheCache(memcached.address, dict(params)).client is first.client


def test_the_environment_is_read_again(
    memcached: MemcachedProcess,
    three_memcached: list[MemcachedProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    params: dict[str, Any] = {}
    monkeypatch.setenv("MEMCACHE_SERVERS", memcached.address)
    assert MemcacheCache("", dict(params)).config.servers == (memcached.address,)
    assert MemcacheCache("", dict(params)).config.servers == (memcached.address,)
    monkeypatch.setenv("MEMCACHE_SERVERS", three_memcached[0].address)
    assert MemcacheCache("", dict(params)).config.servers == (three_memcached[0].address,)


def test_release_clients_gives_copies_a_new_client(memcached: MemcachedProcess) -> None:
    entry = {"BACKEND": BACKEND, "LOCATION": memcached.address}
    with override_settings(CACHES={"default": entry}):
        old = caches.create_connection("default").client
        release_clients()
        new = caches.create_connection("default").client
        assert new is not old
        assert caches.create_connection("default").client is new


def test_parsed_once_until_settings_change(
    memcached: MemcachedProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = {"BACKEND": BACKEND, "LOCATION": memcached.address}
    with override_settings(CACHES={"default": entry}):
        parses = _count_parses(monkeypatch)
        for _ in range(5):
            caches.create_connection("default")
        assert len(parses) == 1
        with override_settings(SECRET_KEY="another"):  # a strategy may read settings
            caches.create_connection("default")
        assert len(parses) == 2
