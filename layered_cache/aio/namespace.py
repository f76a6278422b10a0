"""A namespace of the AsyncClient: its keyed methods, on one namespace's generation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import attrs

from layered_cache.aio.client import AsyncClient
from layered_cache.core.namespaces import NamespaceFlows, view_method
from layered_cache.core.operations import NO_FALLBACK, Flow
from layered_cache.serialization._base import Serializer

__all__ = ["AsyncNamespace"]

P = ParamSpec("P")
R = TypeVar("R")


def _keyed(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[AsyncNamespace, P], Coroutine[Any, Any, R]]:
    """The client's ``method``, awaited on the client of the namespace's current generation."""
    name = method.__name__

    async def call(self: AsyncNamespace, /, *args: P.args, **kwargs: P.kwargs) -> R:
        client = await self._drive(self._flows.client(), NO_FALLBACK, name)
        return await method(client, *args, **kwargs)

    return view_method(call, method, "AsyncNamespace")


@attrs.define(eq=False)
class AsyncNamespace:
    """A group of keys of an :class:`~layered_cache.AsyncClient`, invalidated at once.

    Made by :meth:`~layered_cache.AsyncClient.namespace`; see the
    :doc:`keys guide </guides/keys>`.
    Each call first finds the namespace's generation (remembered in-process
    for ``namespace_cache_ttl`` seconds, else one ``get``), then runs as the
    client's method of the same name, with the same arguments, results and
    errors; in fail-silent mode a generation that cannot be read answers the
    method's fallback (a miss, False, ...), and never another generation's data.
    """

    _flows: NamespaceFlows[AsyncClient]
    _drive: Callable[[Flow[Any], Any, str], Awaitable[Any]]
    #: The namespace's name, as given.
    name: str | bytes
    #: The client's serializer.
    serializer: Serializer

    async def invalidate(self) -> bool:
        """Move the namespace to a new generation: every key in it reads as a miss from now on.

        Fleet-wide and at once for this process; another process may keep
        using the old generation for up to its ``namespace_cache_ttl`` seconds.
        The old items are not deleted: memcached evicts them by LRU.

        Returns:
            True when memcached stored the new generation (False in fail-silent
            mode when its server could not be reached).
        """
        return await self._drive(self._flows.invalidate(), NO_FALLBACK, "invalidate")  # type: ignore[no-any-return]

    async def generation(self) -> bytes:
        """The namespace's current generation (made if it has none), as stored in memcached."""
        return await self._drive(self._flows.generation(), NO_FALLBACK, "generation")  # type: ignore[no-any-return]

    get = _keyed(AsyncClient.get)
    get_many = _keyed(AsyncClient.get_many)
    gets = _keyed(AsyncClient.gets)
    gets_many = _keyed(AsyncClient.gets_many)
    set = _keyed(AsyncClient.set)
    add = _keyed(AsyncClient.add)
    replace = _keyed(AsyncClient.replace)
    append = _keyed(AsyncClient.append)
    prepend = _keyed(AsyncClient.prepend)
    set_many = _keyed(AsyncClient.set_many)
    cas = _keyed(AsyncClient.cas)
    delete = _keyed(AsyncClient.delete)
    delete_many = _keyed(AsyncClient.delete_many)
    incr = _keyed(AsyncClient.incr)
    decr = _keyed(AsyncClient.decr)
    touch = _keyed(AsyncClient.touch)
    get_or_set = _keyed(AsyncClient.get_or_set)
    mark_stale = _keyed(AsyncClient.mark_stale)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self.name)} characters>"
