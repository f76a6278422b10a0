"""The Django cache backend: Django's memcached cache API over :class:`layered_cache.Client`.

The sync methods run on a shared :class:`~layered_cache.Client`, the async ones
(``aget``, ``aset``, ...) natively on a shared :class:`~layered_cache.AsyncClient`
built from the same configuration: no thread hop, except to serialize a value
whose pickling needs the sync world (see :meth:`MemcacheCache.aset`).
"""

from __future__ import annotations

import atexit
import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import DEFAULT_TIMEOUT, InvalidCacheKey
from django.core.exceptions import SynchronousOnlyOperation

import layered_cache
from layered_cache._keys import describe_key, key_problem
from layered_cache.aio.client import AsyncClient
from layered_cache.django._prepared import PreparedBackends
from layered_cache.django._single_key import SingleKeyMethods
from layered_cache.django.options import CacheConfig, CacheConfigurationError, cached_cache_config
from layered_cache.errors import InvalidKeyError
from layered_cache.serialization import Serialized
from layered_cache.sync.client import Client

if TYPE_CHECKING:
    from layered_cache.django.namespaces import CacheNamespace

__all__ = ["KEYS_HELP", "MAX_SHARED_CLIENTS", "MemcacheCache", "release_clients"]

#: What a refused key's message says to do (the URL is the documentation's *Cache keys*).
KEYS_HELP = (
    "memcached keys are at most 250 bytes, with no spaces or control characters: "
    "hash keys made from long or user-supplied text, for instance in a KEY_FUNCTION "
    "(https://layered-cache.readthedocs.io/en/latest/guides/django-features.html#cache-keys)"
)

_DJANGO_CACHE_CHECKS = "django.core.checks.caches"

#: ``make(key, version)``: a memcached key from the caller's (``MemcacheCache._made``).
_KeyMaker = Callable[[Any, "int | None"], Any]


class _NeverRaised(Exception):
    """Stands for "the library's missing-key exception" in Django's base backend.

    Our client answers None for incr/decr on a missing key, which Django's
    base backend turns into ValueError; nothing raises this.
    """


class MemcacheCache(SingleKeyMethods):
    """Django cache backend on :class:`layered_cache.Client`: TCP or TLS, auth, pickle or JSON.

    A drop-in replacement for ``django.core.cache.backends.memcached.PyMemcacheCache``:
    it behaves the same for everything Django's cache API promises (timeouts of
    ``None``, ``0``, negative and over 30 days, key validation with
    ``InvalidCacheKey``, versions and key
    prefixes, ``incr`` on a missing key raising :class:`ValueError`, the async
    methods), stores values in the same format and places keys on the same
    servers, so both can share a cache without a flush.

    Configure it in ``CACHES``::

        CACHES = {
            "default": {
                "BACKEND": "layered_cache.django.MemcacheCache",
                "LOCATION": "mc1.example.com:11211",  # str, list, or empty: environment
                "OPTIONS": {
                    "transport": "tls",               # "tcp" (default) | "tls"
                    "ca_file": "/etc/ssl/memcached-ca.pem",
                    "auth": "memcachier",             # "none" | "memcachier" | "ascii"
                    "username": "app",
                    "password": os.environ["CACHE_PASSWORD"],
                    "serializer": "pickle",           # "pickle" | "json" | "signed_pickle"
                    "connect_timeout": 2, "timeout": 2,
                },
            }
        }

    Each strategy option (``transport``, ``auth``, ``serializer``) takes an
    alias, a dotted path to a class, a ready instance, or a dict
    ``{"class": <alias or path>, **arguments}``. A strategy's arguments may
    also sit flat in ``OPTIONS`` (``ca_file``, ``no_delay``, ``username``,
    ...); an option no chosen strategy takes is an error. Servers and
    credentials the settings leave out come from the environment:
    ``MEMCACHE_SERVERS``/``_USERNAME``/``_PASSWORD``, else
    ``MEMCACHIER_SERVERS``/``_USERNAME``/``_PASSWORD`` (see
    the configuration guide). Credentials with no ``auth`` named
    mean MemCachier auth.

    ``close()``, which Django calls after every request, keeps the pooled and
    authenticated connections for the next request (as Django's
    ``PyLibMCCache`` does); ``"close_connections": True`` restores
    ``PyMemcacheCache``'s disconnect-after-every-request. Django creates a
    backend per thread (and, under ASGI, per request); all backends with the
    same configuration share one thread-safe :class:`~layered_cache.Client`,
    so connections and server health are shared too. Idle connections are
    closed at interpreter exit (and by ``layered_cache.django.release_clients()``).
    The configuration is parsed once per ``CACHES`` entry, so a backend costs
    little to make.

    The async methods (``aget``, ``aset``, ``aadd``, ``aget_many``,
    ``aset_many``, ``adelete``, ``adelete_many``, ``ahas_key``, ``aincr``,
    ``adecr``, ``atouch``, ``aget_or_set``, ``aincr_version``, ``aclear``,
    ``aclose``) run on a shared :class:`~layered_cache.AsyncClient` made from
    the same configuration, natively: no ``sync_to_async``, no thread. They
    make keys, validate them and convert timeouts exactly as the sync methods
    do, and read and write the same data. ``OPTIONS["max_connections"]`` (per
    server and event loop) and ``OPTIONS["pool_timeout"]`` configure that
    client alone.

    Args:
        server: ``LOCATION``, as Django passes it.
        params: the rest of the ``CACHES`` entry.

    Raises:
        CacheConfigurationError: the entry is wrong (it is Django's
            ``ImproperlyConfigured``); raised when the cache is created, before
            any connection is made. (Only when one of Django's own cache system
            checks creates the cache to look at its class, the error is raised
            on first use instead, so that ``manage.py check`` can report it as
            ``layered_cache.E0xx``.)
    """

    _cache: Client
    _async_client: AsyncClient | None = None

    def __init__(self, server: str | Sequence[str], params: dict[str, Any]) -> None:
        cls = type(self)
        attributes = _prepared.lookup(cls, server, params)
        if attributes is not None:  # an entry seen before: copy its backend
            self.__dict__.update(attributes)
            self._cache = _sync_clients.get(attributes["_config"])
            return
        try:
            config = cached_cache_config(server, params)
        except CacheConfigurationError as exc:
            if not _created_by_djangos_cache_checks():
                raise
            # Django's own cache checks create every cache just to look at its
            # class. Raising there would crash `manage.py check` before our
            # check reports the problem (layered_cache.E0xx), so hand them a
            # cache that raises the error when it is used instead.
            super().__init__(
                [], params, library=layered_cache, value_not_found_exception=_NeverRaised
            )
            self._cache = cast(Client, _Misconfigured(exc))
            self._config: CacheConfig | None = None
            self._config_error = exc
            self._close_connections = False
            self._hashes_keys = False
            return
        super().__init__(
            list(config.locations),
            params,
            library=layered_cache,
            value_not_found_exception=_NeverRaised,
        )
        self._config = config
        # Django makes a backend per thread, and per request under ASGI; they
        # all share one client (thread-safe) per configuration, so its pooled,
        # authenticated connections outlive any one backend and any request.
        self._cache = _sync_clients.get(config)
        self._close_connections = config.close_connections
        # key_policy="hash": every key Django makes is usable (validate_key lets it through).
        self._hashes_keys = self._cache.key_policy == "hash"
        # The client is looked up again by every copy: release_clients() and
        # the limit on shared clients decide which one a backend gets.
        attributes = {name: value for name, value in vars(self).items() if name != "_cache"}
        _prepared.remember(cls, server, params, attributes)

    @property
    def config(self) -> CacheConfig:
        """The parsed configuration (:class:`~layered_cache.django.CacheConfig`)."""
        if self._config is None:
            raise CacheConfigurationError(
                str(self._config_error), check_id=self._config_error.check_id
            )
        return self._config

    @property
    def client(self) -> Client:
        """The :class:`layered_cache.Client` behind this cache (for its extra methods)."""
        return self._cache

    @property
    def async_client(self) -> AsyncClient:
        """The :class:`layered_cache.AsyncClient` behind the async methods (for its extra methods).

        Made on first use from the same configuration, and shared by every
        backend with that configuration, as :attr:`client` is.

        Raises:
            CacheConfigurationError: the configuration is wrong, or its
                transport cannot open asyncio connections (a custom transport
                without ``plan()``).
        """
        client = self._async_client
        if client is None:
            client = self._async_client = _async_clients.get(self.config)
        return client

    def close(self, **kwargs: Any) -> None:
        """Called by Django after every request: keeps the connections unless ``close_connections``.

        The pooled connections stay open and authenticated for the next
        request. With ``OPTIONS["close_connections"] = True`` the idle
        connections are closed instead, as Django's ``PyMemcacheCache`` does.
        """
        if self._close_connections:
            self._cache.disconnect_all()

    async def aclose(self, **kwargs: Any) -> None:
        """The async :meth:`close`: keeps the connections unless ``close_connections``.

        With ``close_connections``, this event loop's idle connections are
        closed as well as the sync client's.
        """
        self.close(**kwargs)
        if self._close_connections and self._async_client is not None:
            await self._async_client.aclose()

    # -- shared by the sync and the async methods ----------------------------------------

    def _made_keys(
        self, keys: Iterable[str], version: int | None, make: _KeyMaker | None = None
    ) -> dict[Any, str]:
        """``{memcached key: caller's key}``, every key made by ``make``, else made and validated.

        The sync methods pass :meth:`_made`, whose keys the client checks as it
        encodes them, before anything is sent (see :meth:`_refused_any`).
        """
        make = make or self._made_and_validated
        return {make(key, version): key for key in keys}

    def _made_items(
        self, data: Mapping[str, Any], version: int | None, make: _KeyMaker | None = None
    ) -> tuple[dict[Any, Any], dict[Any, str]]:
        """``({memcached key: value}, {memcached key: caller's key})`` for ``set_many``."""
        make = make or self._made_and_validated
        values: dict[Any, Any] = {}
        keys: dict[Any, str] = {}
        for key, value in data.items():
            made = make(key, version)
            values[made] = value
            keys[made] = key
        return values, keys

    def _made_and_validated(self, key: Any, version: int | None) -> Any:
        """Django's own key making and validation (the async methods' keys)."""
        return self.make_and_validate_key(key, version=version)

    # -- sync methods (Django's, on the helpers the async ones share) --------------------

    def get_many(self, keys: Iterable[str], version: int | None = None) -> dict[str, Any]:
        """Django's ``get_many``: one round trip per server."""
        key_map = self._made_keys(keys, version, self._made)
        try:
            found = self._cache.get_many(key_map)
        except InvalidKeyError:
            self._refused_any(key_map)
            raise
        return {key_map[k]: v for k, v in found.items()}

    def set_many(
        self, data: Mapping[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        """Django's ``set_many``: one round trip per server; the keys not stored."""
        values, keys = self._made_items(data, version, self._made)
        try:
            failed = self._cache.set_many(values, self._expire(timeout))
        except InvalidKeyError:
            self._refused_any(keys)
            raise
        return [keys[k] for k in failed]

    def delete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        """Django's ``delete_many``: one round trip per server."""
        made = list(self._made_keys(keys, version, self._made))
        try:
            self._cache.delete_many(made)
        except InvalidKeyError:
            self._refused_any(made)
            raise

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        """Django's ``incr``, atomic on the server; :class:`ValueError` for a missing key."""
        key = self.make_and_validate_key(key, version=version)
        # memcached's incr takes no negative delta.
        value = self._cache.decr(key, -delta) if delta < 0 else self._cache.incr(key, delta)
        return _counted(key, value)

    # -- async methods, native on the AsyncClient ----------------------------------------

    async def aget(self, key: str, default: Any = None, version: int | None = None) -> Any:
        """The async ``get``."""
        key = self.make_and_validate_key(key, version=version)
        return await self.async_client.get(key, default)

    async def aset(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        """The async ``set``.

        Values are serialized in the event loop, except one whose pickling
        Django forbids there (a lazy ``QuerySet`` or a model instance whose
        pickling queries the database raises ``SynchronousOnlyOperation``):
        that one is serialized in a worker thread, as Django's own async
        methods do for every call, and its bytes then stored natively.
        """
        key = self.make_and_validate_key(key, version=version)
        client = self.async_client
        data = await self._aserialized(key, value)
        if not await client.set(key, data, self._expire(timeout)):
            # As set() does: the key must not keep its old value (memcached's 1 MB limit).
            await client.delete(key)

    async def aadd(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        """The async ``add``: True when stored (serialized as :meth:`aset` does)."""
        key = self.make_and_validate_key(key, version=version)
        data = await self._aserialized(key, value)
        return await self.async_client.add(key, data, self._expire(timeout))

    async def atouch(
        self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        """The async ``touch``."""
        key = self.make_and_validate_key(key, version=version)
        return bool(await self.async_client.touch(key, self._expire(timeout)))

    async def adelete(self, key: str, version: int | None = None) -> bool:
        """The async ``delete``."""
        key = self.make_and_validate_key(key, version=version)
        return bool(await self.async_client.delete(key))

    async def aget_many(self, keys: Iterable[str], version: int | None = None) -> dict[str, Any]:
        """The async ``get_many``: one round trip per server, all servers asked at once."""
        key_map = self._made_keys(keys, version)
        found = await self.async_client.get_many(key_map)
        return {key_map[k]: v for k, v in found.items()}

    async def aset_many(
        self, data: Mapping[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        """The async ``set_many``: the keys not stored (values serialized as :meth:`aset` does)."""
        values, keys = self._made_items(data, version)
        serialized: dict[Any, Any] = {k: await self._aserialized(k, v) for k, v in values.items()}
        failed = await self.async_client.set_many(serialized, self._expire(timeout))
        return [keys[k] for k in failed]

    async def adelete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        """The async ``delete_many``: one round trip per server."""
        await self.async_client.delete_many(list(self._made_keys(keys, version)))

    async def ahas_key(self, key: str, version: int | None = None) -> bool:
        """The async ``has_key``."""
        missing = self._missing_key
        return await self.aget(key, missing, version=version) is not missing

    async def aincr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        """The async ``incr``, atomic on the server; :class:`ValueError` for a missing key.

        ``adecr`` is Django's: ``aincr`` with ``-delta``.
        """
        key = self.make_and_validate_key(key, version=version)
        client = self.async_client
        value = await (client.decr(key, -delta) if delta < 0 else client.incr(key, delta))
        return _counted(key, value)

    async def aincr_version(self, key: str, delta: int = 1, version: int | None = None) -> int:
        """The async ``incr_version`` (Django's steps, on the native async methods).

        Django 6.1's own inspects ``self.incr_version.__func__``, which tools
        that wrap the sync methods (django-debug-toolbar's cache panel) break.
        """
        if version is None:
            version = self.version
        missing = self._missing_key
        value = await self.aget(key, missing, version=version)
        if value is missing:
            raise ValueError(f"Key '{key}' not found")
        await self.aset(key, value, version=version + delta)
        await self.adelete(key, version=version)
        return version + delta

    async def aclear(self) -> None:
        """The async ``clear``: every item on every server is invalidated."""
        await self.async_client.flush_all()

    async def _aserialized(self, key: str, value: Any) -> Serialized:
        """``value`` serialized by the client's serializer; in a worker thread only if it must."""
        serializer = self.async_client.serializer
        try:
            return Serialized(*serializer.serialize(key, value))
        except Exception as exc:
            if not _needs_sync_world(exc):
                raise
        # Pickling ran a database query (a lazy QuerySet, a deferred field), which
        # Django refuses inside an event loop: run it where Django's own async
        # methods would have, then store the bytes natively.
        serialize = sync_to_async(serializer.serialize, thread_sensitive=True)
        return Serialized(*await serialize(key, value))

    def validate_key(self, key: str) -> None:
        """Raise ``InvalidCacheKey`` for a key memcached refuses, as Django's memcached backends do.

        Same rule as Django's memcached backends, and their message followed by
        what to do about it (hash or shorten the key: see the documentation's
        *Cache keys*). With ``OPTIONS["key_policy"] = "hash"`` nothing is refused
        and nothing warned about: a key memcached cannot take is stored under a
        digest form instead. A key Django's character count lets through but that is
        over 250 bytes once UTF-8 encoded raises
        :class:`~layered_cache.InvalidKeyError` (a :class:`ValueError`). Valid
        keys (the common case) are recognised by one fast check instead of a
        loop over every character.
        """
        if self._hashes_keys:
            return  # OPTIONS["key_policy"] = "hash": the client digests what memcached refuses
        problem = key_problem(key)
        if problem is None:
            return
        try:
            super().validate_key(key)
        except InvalidCacheKey as exc:
            raise InvalidCacheKey(f"{exc}. {KEYS_HELP}") from None
        raise InvalidKeyError(
            f"invalid memcached key ({describe_key(key)}): {problem}. {KEYS_HELP}"
        )

    #: The key check whose rules are the client's own: while ``validate_key`` is
    #: this one, the single-key methods leave the check to the client
    #: (:mod:`layered_cache.django._single_key`).
    client_key_rules = validate_key

    def get_or_set(
        self, key: str, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Any:
        """Django's ``get_or_set``, safe against a thundering herd.

        When many requests miss the same key at once, one of them computes
        ``default`` (when it is callable) and stores it; the others wait for
        that value instead of all recomputing it. See
        :meth:`layered_cache.Client.get_or_set`.
        """
        key = self.make_and_validate_key(key, version=version)
        return self._cache.get_or_set(key, default, self._expire(timeout))

    async def aget_or_set(
        self, key: str, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Any:
        """The async ``get_or_set``, herd-safe too; ``default`` may be a coroutine function.

        ``default`` may be a value, a callable, or a coroutine function (or any
        callable returning an awaitable), which is awaited: Django's own
        ``aget_or_set`` would store the coroutine object. Only the caller that
        computes the value calls ``default``; the others wait for its value
        without blocking the event loop. See
        :meth:`layered_cache.AsyncClient.get_or_set`.
        """
        key = self.make_and_validate_key(key, version=version)
        computed: list[tuple[Any, Serialized]] = []

        async def compute() -> Serialized:
            value = default() if callable(default) else default
            if inspect.isawaitable(value):
                value = await value
            serialized = await self._aserialized(key, value)
            computed.append((value, serialized))
            return serialized

        result = await self.async_client.get_or_set(key, compute, self._expire(timeout))
        if computed and result is computed[-1][1]:
            # This call computed the value: answer it, not the bytes stored for it.
            return computed[-1][0]
        return result

    def namespace(self, name: str) -> CacheNamespace:
        """This cache, with every key in the namespace ``name``: invalidated at once by ``clear()``.

        The view has the whole cache API (sync and async); its ``clear()`` and
        ``aclear()`` (or ``invalidate()``/``ainvalidate()``) make every key of
        the namespace read as a miss, fleet-wide, without touching the rest of
        the cache. Keys are made as usual (``KEY_PREFIX``, version) and then
        qualified by the namespace's generation (see
        :meth:`layered_cache.Client.namespace` and the :doc:`keys guide
        </guides/keys>`); the name itself is made into a key the same way.

        Raises:
            InvalidKeyError: the made name is not a valid memcached key of at
                most 100 bytes.
        """
        # The view subclasses this class, hence the import here.
        from layered_cache.django.namespaces import CacheNamespace  # noqa: PLC0415

        return CacheNamespace(self, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {list(self.client_servers)!r}>"


# -- clients shared by backends ----------------------------------------------------------

#: Distinct configurations whose clients are kept; beyond it the least recently
#: created one is released (its idle connections closed).
MAX_SHARED_CLIENTS = 64

C = TypeVar("C")


class _SharedClients(Generic[C]):
    """One client per configuration (:attr:`CacheConfig.share_key`) for all its backends."""

    def __init__(self, make: Callable[[CacheConfig], C], release: Callable[[C], None]) -> None:
        self._make: Callable[[CacheConfig], C] = make
        self._release: Callable[[C], None] = release
        self._clients: OrderedDict[Hashable, C] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, config: CacheConfig) -> C:
        key = config.share_key
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
            client = self._make(config)
            self._clients[key] = client
            evicted = len(self._clients) > MAX_SHARED_CLIENTS
            released = self._clients.popitem(last=False)[1] if evicted else None
        if released is not None:
            self._release(released)
        return client

    def release_all(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            self._release(client)


def _forget(client: AsyncClient) -> None:
    """Release an AsyncClient: nothing to do outside its event loops.

    Its connections belong to the loops that opened them; they are closed by
    ``aclose()`` in their loop, or when the loop and the connections go away.
    """


_sync_clients: _SharedClients[Client] = _SharedClients(CacheConfig.make_client, Client.close)
_async_clients: _SharedClients[AsyncClient] = _SharedClients(CacheConfig.make_async_client, _forget)
_prepared = PreparedBackends()


def release_clients() -> None:
    """Close the idle connections of every client the backends share, and forget the clients.

    Backends created afterwards get new clients; existing ones keep working
    (their client reconnects when used). Runs at interpreter exit. Forked
    children (gunicorn or Celery workers) start with empty pools by themselves;
    calling this in a ``post_fork`` hook only frees the clients inherited from
    the parent. Tests may call it to start each test with fresh connections.
    The :class:`~layered_cache.AsyncClient` clients of the async methods are
    forgotten too; their connections belong to event loops, and close with them.
    """
    _sync_clients.release_all()
    _async_clients.release_all()


atexit.register(release_clients)


def _counted(key: str, value: int | None) -> int:
    """What ``incr``/``decr`` return: the new value; a missing key is Django's ValueError."""
    if value is None:
        raise ValueError(f"Key '{key}' not found")
    return value


def _needs_sync_world(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is Django refusing sync-only code in an event loop."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        if isinstance(error, SynchronousOnlyOperation):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


class _Misconfigured:
    """Stands in for the client of a cache whose configuration is wrong: any use raises."""

    def __init__(self, error: CacheConfigurationError) -> None:
        self._error = error

    def __getattr__(self, name: str) -> Any:
        raise CacheConfigurationError(str(self._error), check_id=self._error.check_id)


def _created_by_djangos_cache_checks() -> bool:
    """Whether a check in ``django.core.checks.caches`` is creating this cache.

    Django's ``caches.W003`` check (``check_file_based_cache_is_absolute``) does
    ``caches[alias]`` for every alias to learn whether it is a file-based cache.
    """
    frame = inspect.currentframe()
    for _ in range(12):
        if frame is None:
            return False
        if frame.f_globals.get("__name__") == _DJANGO_CACHE_CHECKS:
            return True
        frame = frame.f_back
    return False
