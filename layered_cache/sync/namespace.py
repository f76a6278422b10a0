"""A namespace of the sync Client: its keyed methods, on one namespace's generation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from layered_cache.core.namespaces import NamespaceFlows
from layered_cache.core.operations import Flow
from layered_cache.serialization._base import Serializer

__all__ = ["Namespace"]

Key = str | bytes


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

    __slots__ = ("_drive", "_flows", "name", "serializer")

    def __init__(
        self,
        flows: NamespaceFlows,
        drive: Callable[[str, Flow[Any]], Any],
        name: str | bytes,
        serializer: Serializer,
    ) -> None:
        self._flows = flows
        self._drive = drive
        #: The namespace's name, as given.
        self.name = name
        #: The client's serializer.
        self.serializer = serializer

    def invalidate(self) -> bool:
        """Move the namespace to a new generation: every key in it reads as a miss from now on.

        Fleet-wide and at once for this process; another process may keep
        using the old generation for up to its ``namespace_cache_ttl`` seconds.
        The old items are not deleted: memcached evicts them by LRU.

        Returns:
            True when memcached stored the new generation (False in fail-silent
            mode when its server could not be reached).
        """
        return self._drive("invalidate", self._flows.invalidate())  # type: ignore[no-any-return]

    def generation(self) -> bytes:
        """The namespace's current generation (made if it has none), as stored in memcached."""
        return self._drive("generation", self._flows.generation())  # type: ignore[no-any-return]

    def get(self, key: Key, default: Any = None) -> Any:
        """:meth:`~layered_cache.Client.get` in this namespace."""
        return self._drive("get", self._flows.get(key, default))

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        """:meth:`~layered_cache.Client.get_many` in this namespace."""
        return self._drive("get_many", self._flows.get_many(keys))  # type: ignore[no-any-return]

    def gets(self, key: Key, default: Any = None, cas_default: Any = None) -> tuple[Any, Any]:
        """:meth:`~layered_cache.Client.gets` in this namespace."""
        return self._drive("gets", self._flows.gets(key, default, cas_default))  # type: ignore[no-any-return]

    def gets_many(self, keys: Iterable[Key]) -> dict[Key, tuple[Any, Any]]:
        """:meth:`~layered_cache.Client.gets_many` in this namespace."""
        return self._drive("gets_many", self._flows.gets_many(keys))  # type: ignore[no-any-return]

    def _store(
        self, command: bytes, key: Key, value: Any, expire: int, noreply: bool, flags: int | None
    ) -> bool:
        flow = self._flows.store(command, key, value, expire, noreply, flags)
        return self._drive(command.decode(), flow)  # type: ignore[no-any-return]

    def set(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """:meth:`~layered_cache.Client.set` in this namespace."""
        return self._store(b"set", key, value, expire, noreply, flags)

    def add(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """:meth:`~layered_cache.Client.add` in this namespace."""
        return self._store(b"add", key, value, expire, noreply, flags)

    def replace(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """:meth:`~layered_cache.Client.replace` in this namespace."""
        return self._store(b"replace", key, value, expire, noreply, flags)

    def append(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """:meth:`~layered_cache.Client.append` in this namespace."""
        return self._store(b"append", key, value, expire, noreply, flags)

    def prepend(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """:meth:`~layered_cache.Client.prepend` in this namespace."""
        return self._store(b"prepend", key, value, expire, noreply, flags)

    def set_many(
        self,
        values: Mapping[Key, Any],
        expire: int = 0,
        noreply: bool = False,
        flags: int | None = None,
    ) -> list[Key]:
        """:meth:`~layered_cache.Client.set_many` in this namespace: the keys not stored."""
        flow = self._flows.set_many(values, expire, noreply, flags)
        return self._drive("set_many", flow)  # type: ignore[no-any-return]

    def cas(
        self,
        key: Key,
        value: Any,
        cas: int | str | bytes,
        expire: int = 0,
        noreply: bool = False,
        flags: int | None = None,
    ) -> bool | None:
        """:meth:`~layered_cache.Client.cas` in this namespace."""
        flow = self._flows.cas(key, value, cas, expire, noreply, flags)
        return self._drive("cas", flow)  # type: ignore[no-any-return]

    def delete(self, key: Key, noreply: bool = False) -> bool:
        """:meth:`~layered_cache.Client.delete` in this namespace."""
        return self._drive("delete", self._flows.delete(key, noreply))  # type: ignore[no-any-return]

    def delete_many(self, keys: Iterable[Key], noreply: bool = False) -> bool:
        """:meth:`~layered_cache.Client.delete_many` in this namespace."""
        return self._drive("delete_many", self._flows.delete_many(keys, noreply))  # type: ignore[no-any-return]

    def incr(
        self,
        key: Key,
        value: int,
        noreply: bool = False,
        *,
        initial: int | None = None,
        expire: int = 0,
    ) -> int | None:
        """:meth:`~layered_cache.Client.incr` in this namespace."""
        flow = self._flows.count(key, value, noreply, initial, expire, decrement=False)
        return self._drive("incr", flow)  # type: ignore[no-any-return]

    def decr(
        self,
        key: Key,
        value: int,
        noreply: bool = False,
        *,
        initial: int | None = None,
        expire: int = 0,
    ) -> int | None:
        """:meth:`~layered_cache.Client.decr` in this namespace."""
        flow = self._flows.count(key, value, noreply, initial, expire, decrement=True)
        return self._drive("decr", flow)  # type: ignore[no-any-return]

    def touch(self, key: Key, expire: int = 0, noreply: bool = False) -> bool:
        """:meth:`~layered_cache.Client.touch` in this namespace."""
        return self._drive("touch", self._flows.touch(key, expire, noreply))  # type: ignore[no-any-return]

    def get_or_set(
        self,
        key: Key,
        default: Any,
        expire: int = 0,
        *,
        wait_timeout: float = 5.0,
        lease_ttl: int = 30,
        refresh_ahead: int = 0,
    ) -> Any:
        """:meth:`~layered_cache.Client.get_or_set` in this namespace (herd-safe)."""
        flow = self._flows.get_or_set(
            key,
            default,
            expire,
            wait_timeout=wait_timeout,
            lease_ttl=lease_ttl,
            refresh_ahead=refresh_ahead,
        )
        return self._drive("get_or_set", flow)

    def mark_stale(self, key: Key, stale_ttl: int = 30) -> bool:
        """:meth:`~layered_cache.Client.mark_stale` in this namespace."""
        return self._drive("mark_stale", self._flows.mark_stale(key, stale_ttl))  # type: ignore[no-any-return]

    # pymemcache's aliases, as Client has them.
    get_multi = get_many
    set_multi = set_many
    delete_multi = delete_many

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self.name)} characters>"
