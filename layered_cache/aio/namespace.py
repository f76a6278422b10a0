"""A namespace of the AsyncClient: its keyed methods, on one namespace's generation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from layered_cache.core.namespaces import NamespaceFlows
from layered_cache.core.operations import Flow
from layered_cache.serialization._base import Serializer

__all__ = ["AsyncNamespace"]

Key = str | bytes


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

    __slots__ = ("_drive", "_flows", "name", "serializer")

    def __init__(
        self,
        flows: NamespaceFlows,
        drive: Callable[[str, Flow[Any]], Awaitable[Any]],
        name: str | bytes,
        serializer: Serializer,
    ) -> None:
        self._flows = flows
        self._drive = drive
        #: The namespace's name, as given.
        self.name = name
        #: The client's serializer.
        self.serializer = serializer

    async def invalidate(self) -> bool:
        """Move the namespace to a new generation: every key in it reads as a miss from now on.

        Fleet-wide and at once for this process; another process may keep
        using the old generation for up to its ``namespace_cache_ttl`` seconds.
        The old items are not deleted: memcached evicts them by LRU.

        Returns:
            True when memcached stored the new generation (False in fail-silent
            mode when its server could not be reached).
        """
        return await self._drive("invalidate", self._flows.invalidate())  # type: ignore[no-any-return]

    async def generation(self) -> bytes:
        """The namespace's current generation (made if it has none), as stored in memcached."""
        return await self._drive("generation", self._flows.generation())  # type: ignore[no-any-return]

    async def get(self, key: Key, default: Any = None) -> Any:
        """:meth:`~layered_cache.AsyncClient.get` in this namespace."""
        return await self._drive("get", self._flows.get(key, default))

    async def get_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        """:meth:`~layered_cache.AsyncClient.get_many` in this namespace."""
        return await self._drive("get_many", self._flows.get_many(keys))  # type: ignore[no-any-return]

    async def gets(self, key: Key, default: Any = None, cas_default: Any = None) -> tuple[Any, Any]:
        """:meth:`~layered_cache.AsyncClient.gets` in this namespace."""
        return await self._drive("gets", self._flows.gets(key, default, cas_default))  # type: ignore[no-any-return]

    async def gets_many(self, keys: Iterable[Key]) -> dict[Key, tuple[Any, Any]]:
        """:meth:`~layered_cache.AsyncClient.gets_many` in this namespace."""
        return await self._drive("gets_many", self._flows.gets_many(keys))  # type: ignore[no-any-return]

    async def _store(
        self, command: bytes, key: Key, value: Any, expire: int, noreply: bool, flags: int | None
    ) -> bool:
        flow = self._flows.store(command, key, value, expire, noreply, flags)
        return await self._drive(command.decode(), flow)  # type: ignore[no-any-return]

    async def set(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """:meth:`~layered_cache.AsyncClient.set` in this namespace."""
        return await self._store(b"set", key, value, expire, noreply, flags)

    async def add(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """:meth:`~layered_cache.AsyncClient.add` in this namespace."""
        return await self._store(b"add", key, value, expire, noreply, flags)

    async def replace(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """:meth:`~layered_cache.AsyncClient.replace` in this namespace."""
        return await self._store(b"replace", key, value, expire, noreply, flags)

    async def append(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """:meth:`~layered_cache.AsyncClient.append` in this namespace."""
        return await self._store(b"append", key, value, expire, noreply, flags)

    async def prepend(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """:meth:`~layered_cache.AsyncClient.prepend` in this namespace."""
        return await self._store(b"prepend", key, value, expire, noreply, flags)

    async def set_many(
        self,
        values: Mapping[Key, Any],
        expire: int = 0,
        noreply: bool = False,
        flags: int | None = None,
    ) -> list[Key]:
        """:meth:`~layered_cache.AsyncClient.set_many` in this namespace: the keys not stored."""
        flow = self._flows.set_many(values, expire, noreply, flags)
        return await self._drive("set_many", flow)  # type: ignore[no-any-return]

    async def cas(
        self,
        key: Key,
        value: Any,
        cas: int | str | bytes,
        expire: int = 0,
        noreply: bool = False,
        flags: int | None = None,
    ) -> bool | None:
        """:meth:`~layered_cache.AsyncClient.cas` in this namespace."""
        flow = self._flows.cas(key, value, cas, expire, noreply, flags)
        return await self._drive("cas", flow)  # type: ignore[no-any-return]

    async def delete(self, key: Key, noreply: bool = False) -> bool:
        """:meth:`~layered_cache.AsyncClient.delete` in this namespace."""
        return await self._drive("delete", self._flows.delete(key, noreply))  # type: ignore[no-any-return]

    async def delete_many(self, keys: Iterable[Key], noreply: bool = False) -> bool:
        """:meth:`~layered_cache.AsyncClient.delete_many` in this namespace."""
        return await self._drive("delete_many", self._flows.delete_many(keys, noreply))  # type: ignore[no-any-return]

    async def incr(
        self,
        key: Key,
        value: int,
        noreply: bool = False,
        *,
        initial: int | None = None,
        expire: int = 0,
    ) -> int | None:
        """:meth:`~layered_cache.AsyncClient.incr` in this namespace."""
        flow = self._flows.count(key, value, noreply, initial, expire, decrement=False)
        return await self._drive("incr", flow)  # type: ignore[no-any-return]

    async def decr(
        self,
        key: Key,
        value: int,
        noreply: bool = False,
        *,
        initial: int | None = None,
        expire: int = 0,
    ) -> int | None:
        """:meth:`~layered_cache.AsyncClient.decr` in this namespace."""
        flow = self._flows.count(key, value, noreply, initial, expire, decrement=True)
        return await self._drive("decr", flow)  # type: ignore[no-any-return]

    async def touch(self, key: Key, expire: int = 0, noreply: bool = False) -> bool:
        """:meth:`~layered_cache.AsyncClient.touch` in this namespace."""
        return await self._drive("touch", self._flows.touch(key, expire, noreply))  # type: ignore[no-any-return]

    async def get_or_set(
        self,
        key: Key,
        default: Any,
        expire: int = 0,
        *,
        wait_timeout: float = 5.0,
        lease_ttl: int = 30,
        refresh_ahead: int = 0,
    ) -> Any:
        """:meth:`~layered_cache.AsyncClient.get_or_set` in this namespace (herd-safe)."""
        flow = self._flows.get_or_set(
            key,
            default,
            expire,
            wait_timeout=wait_timeout,
            lease_ttl=lease_ttl,
            refresh_ahead=refresh_ahead,
        )
        return await self._drive("get_or_set", flow)

    async def mark_stale(self, key: Key, stale_ttl: int = 30) -> bool:
        """:meth:`~layered_cache.AsyncClient.mark_stale` in this namespace."""
        return await self._drive("mark_stale", self._flows.mark_stale(key, stale_ttl))  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self.name)} characters>"
