"""A namespace of the Django backend: the whole cache API, on one namespace's keys.

``cache.namespace("user:42")`` gives a view of the backend whose keys are made as
Django makes them and then qualified by the namespace's generation
(:mod:`layered_cache.core.namespaces`); ``clear()`` invalidates the namespace,
not the cache. The view shares the backend's settings and clients.
"""

from __future__ import annotations

from typing import Any, cast

from layered_cache.aio.client import AsyncClient
from layered_cache.aio.namespace import AsyncNamespace
from layered_cache.django.cache import MemcacheCache
from layered_cache.sync.client import Client
from layered_cache.sync.namespace import Namespace

__all__ = ["CacheNamespace"]


class CacheNamespace(MemcacheCache):
    """The keys of one namespace of a :class:`~layered_cache.django.MemcacheCache`.

    Made by :meth:`~layered_cache.django.MemcacheCache.namespace`. Every method
    of Django's cache API works as on the cache, on the namespace's keys only; :meth:`clear` (and
    :meth:`aclear`) invalidate the namespace: every key in it reads as a miss
    at once, fleet-wide, while the rest of the cache is untouched.

    A namespace whose generation cannot be read behaves as a server that
    cannot be reached: it raises, or with ``OPTIONS["ignore_exceptions"]``
    reads as a miss; it never reads another generation's data.
    """

    def __init__(self, cache: MemcacheCache, name: str) -> None:
        # A view, not a new backend: Django's settings (KEY_PREFIX, VERSION,
        # TIMEOUT, KEY_FUNCTION) and the shared clients are the cache's own.
        self.__dict__.update(cache.__dict__)
        self._parent = cache
        #: The namespace's name, made into a key as Django makes keys.
        self.namespace_name = cache.make_key(name)
        self._view: Namespace = cache.client.namespace(self.namespace_name)
        self._async_view: AsyncNamespace | None = None
        # The backend's methods call the client through these; the views have
        # the same methods (the keyed ones), so they stand in for the clients.
        self._cache = cast(Client, self._view)
        self._async_client = None

    @property
    def async_client(self) -> AsyncClient:
        """The namespace's view of the backend's :class:`~layered_cache.AsyncClient`."""
        return cast(AsyncClient, self._async_namespace())

    def _async_namespace(self) -> AsyncNamespace:
        view = self._async_view
        if view is None:
            view = self._async_view = self._parent.async_client.namespace(self.namespace_name)
        return view

    def namespace(self, name: str) -> CacheNamespace:
        """Namespaces do not nest: make one from the cache itself.

        Raises:
            TypeError: always.
        """
        raise TypeError(
            "namespaces do not nest: make the namespace from the cache itself, "
            "e.g. cache.namespace('user:42:orders')"
        )

    def invalidate(self) -> bool:
        """Move the namespace to a new generation: every key in it reads as a miss from now on.

        See :meth:`layered_cache.sync.namespace.Namespace.invalidate`.
        """
        return self._view.invalidate()

    async def ainvalidate(self) -> bool:
        """The async :meth:`invalidate`."""
        return await self._async_namespace().invalidate()

    def clear(self) -> None:
        """Invalidate the namespace (not the whole cache): :meth:`invalidate`."""
        self.invalidate()

    async def aclear(self) -> None:
        """The async :meth:`clear`: the namespace is invalidated."""
        await self.ainvalidate()

    def close(self, **kwargs: Any) -> None:
        """As the cache's ``close()``."""
        self._parent.close(**kwargs)

    async def aclose(self, **kwargs: Any) -> None:
        """As the cache's ``aclose()``."""
        await self._parent.aclose(**kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._parent!r}>"
