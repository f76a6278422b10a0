"""Django's cache API through the async methods: every test of ``test_django_api`` again.

Each test of :mod:`test_django_api` that talks to a cache runs here with every sync
call replaced by ``async_to_sync(cache.a<method>)``: the same promises, kept by the
native async methods on the :class:`~layered_cache.AsyncClient`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from unittest import mock

import pytest
import test_django_api
from asgiref.sync import async_to_sync
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.test.utils import override_settings
from django_helpers import caches_setting

from layered_cache import AsyncClient

# Django's cache API: each sync method and its async twin.
METHODS = (
    "add",
    "get",
    "set",
    "touch",
    "delete",
    "get_many",
    "set_many",
    "delete_many",
    "has_key",
    "incr",
    "decr",
    "get_or_set",
    "clear",
    "incr_version",
    "decr_version",
    "close",
)


class AsyncDriven:
    """A cache whose sync API runs its async methods (``get`` is ``async_to_sync(aget)``)."""

    def __init__(self, backend: BaseCache) -> None:
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        if name in METHODS:
            return self._driven(getattr(self.backend, f"a{name}"))
        return getattr(self.backend, name)

    def __contains__(self, key: str) -> bool:
        return bool(self._driven(self.backend.ahas_key)(key))

    def _driven(self, method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        backend = self.backend

        def call(*args: Any, **kwargs: Any) -> Any:
            async def once() -> Any:
                try:
                    return await method(*args, **kwargs)
                finally:
                    # async_to_sync ends its event loop after each call: close the
                    # connections that belong to it.
                    await backend.async_client.aclose()  # type: ignore[attr-defined]

            return async_to_sync(once)()

        return call


class AsyncDrivenCaches:
    """``caches``, handing out :class:`AsyncDriven` caches."""

    def __getitem__(self, alias: str) -> AsyncDriven:
        return AsyncDriven(caches[alias])


@pytest.fixture
def use_caches(backend_params: dict[str, Any]) -> Iterator[AsyncDrivenCaches]:
    with override_settings(CACHES=caches_setting(backend_params)):
        yield AsyncDrivenCaches()


@pytest.fixture
def cache(use_caches: AsyncDrivenCaches) -> AsyncDriven:
    return use_caches["default"]


@pytest.fixture
def every_flavour(
    every_flavour: dict[str, BaseCache],
) -> dict[str, AsyncDriven]:
    return {flavour: AsyncDriven(backend) for flavour, backend in every_flavour.items()}


# Tests that already drive the async methods themselves, or patch the sync client.
_NOT_HERE = {
    "test_async_methods",
    "test_aget_or_set",
    "test_set_many_returns_the_keys_memcached_refused",
    "test_get_or_set_when_add_loses_a_race",
}
_CACHE_FIXTURES = {"cache", "use_caches", "every_flavour"}

for _name, _test in vars(test_django_api).items():
    if (
        _name.startswith("test_")
        and _name not in _NOT_HERE
        and _CACHE_FIXTURES & set(inspect.signature(_test).parameters)
    ):
        globals()[_name] = _test
del _name, _test


def test_aset_many_returns_the_keys_memcached_refused(cache: AsyncDriven) -> None:
    async def refuse_all(mapping: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        return list(mapping)

    with mock.patch.object(AsyncClient, "set_many", side_effect=refuse_all):
        assert cache.set_many({"key": "value"}) == ["key"]


def test_aget_or_set_when_add_loses_a_race(cache: AsyncDriven) -> None:
    with mock.patch.object(type(cache.backend), "aadd", return_value=False):
        assert cache.get_or_set("key", "default") == "default"
