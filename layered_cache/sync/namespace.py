"""A namespace of the sync Client: its keyed methods, on one namespace's generation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import attrs

from layered_cache.core.namespaces import NamespaceFlows, view_method
from layered_cache.core.operations import NO_FALLBACK, Flow
from layered_cache.serialization._base import Serializer
from layered_cache.sync.client import Client

__all__ = ["Namespace"]

P = ParamSpec("P")
R = TypeVar("R")


def _keyed(method: Callable[Concatenate[Client, P], R]) -> Callable[Concatenate[Namespace, P], R]:
    """The client's ``method``, called on the client of the namespace's current generation."""
    name = method.__name__

    def call(self: Namespace, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(self._drive(self._flows.client(), NO_FALLBACK, name), *args, **kwargs)

    return view_method(call, method, "Namespace")


@attrs.define(eq=False)
class Namespace:
    """A group of keys of a :class:`~layered_cache.Client`, invalidated at once.

    Made by :meth:`~layered_cache.Client.namespace`; see the
    :doc:`keys guide </guides/keys>`.
    Each call first finds the namespace's generation (remembered in-process
    for ``namespace_cache_ttl`` seconds, else one ``get``), then runs as the
    client's method of the same name, with the same arguments, results and
    errors; in fail-silent mode a generation that cannot be read answers the
    method's fallback (a miss, False, ...), and never another generation's data.
    """

    _flows: NamespaceFlows[Client]
    _drive: Callable[[Flow[Any], Any, str], Any]
    #: The namespace's name, as given.
    name: str | bytes
    #: The client's serializer.
    serializer: Serializer

    def invalidate(self) -> bool:
        """Move the namespace to a new generation: every key in it reads as a miss from now on.

        Fleet-wide and at once for this process; another process may keep
        using the old generation for up to its ``namespace_cache_ttl`` seconds.
        The old items are not deleted: memcached evicts them by LRU.

        Returns:
            True when memcached stored the new generation (False in fail-silent
            mode when its server could not be reached).
        """
        return self._drive(self._flows.invalidate(), NO_FALLBACK, "invalidate")  # type: ignore[no-any-return]

    def generation(self) -> bytes:
        """The namespace's current generation (made if it has none), as stored in memcached."""
        return self._drive(self._flows.generation(), NO_FALLBACK, "generation")  # type: ignore[no-any-return]

    get = _keyed(Client.get)
    get_many = _keyed(Client.get_many)
    gets = _keyed(Client.gets)
    gets_many = _keyed(Client.gets_many)
    set = _keyed(Client.set)
    add = _keyed(Client.add)
    replace = _keyed(Client.replace)
    append = _keyed(Client.append)
    prepend = _keyed(Client.prepend)
    set_many = _keyed(Client.set_many)
    cas = _keyed(Client.cas)
    delete = _keyed(Client.delete)
    delete_many = _keyed(Client.delete_many)
    incr = _keyed(Client.incr)
    decr = _keyed(Client.decr)
    touch = _keyed(Client.touch)
    get_or_set = _keyed(Client.get_or_set)
    mark_stale = _keyed(Client.mark_stale)

    # pymemcache's aliases, as Client has them.
    get_multi = get_many
    set_multi = set_many
    delete_multi = delete_many

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self.name)} characters>"
