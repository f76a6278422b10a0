"""The Django cache backend: Django's memcached cache API over :class:`layered_cache.Client`."""

from __future__ import annotations

import atexit
import inspect
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import DEFAULT_TIMEOUT, InvalidCacheKey
from django.core.cache.backends.memcached import BaseMemcachedCache

import layered_cache
from layered_cache._keys import key_problem
from layered_cache.django.options import CacheConfig, CacheConfigurationError, parse_cache_config
from layered_cache.errors import InvalidKeyError
from layered_cache.sync.client import Client

__all__ = ["KEYS_HELP", "MAX_SHARED_CLIENTS", "MemcacheCache", "release_clients"]

#: What a refused key's message says to do (the URL is the documentation's *Cache keys*).
KEYS_HELP = (
    "memcached keys are at most 250 bytes, with no spaces or control characters: "
    "hash keys made from long or user-supplied text, for instance in a KEY_FUNCTION "
    "(https://layered-cache.readthedocs.io/en/latest/guides/django-features.html#cache-keys)"
)

_DJANGO_CACHE_CHECKS = "django.core.checks.caches"


class _NeverRaised(Exception):
    """Stands for "the library's missing-key exception" in Django's base backend.

    Our client answers None for incr/decr on a missing key, which Django's
    base backend turns into ValueError; nothing raises this.
    """


class MemcacheCache(BaseMemcachedCache):
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

    def __init__(self, server: str | Sequence[str], params: dict[str, Any]) -> None:
        try:
            config = parse_cache_config(server, params)
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
        self._cache = _shared_client(config)
        self._close_connections = config.close_connections
        self._finalizer = weakref.finalize(self, _close_if_released, config.share_key, self._cache)

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

    def close(self, **kwargs: Any) -> None:
        """Called by Django after every request: keeps the connections unless ``close_connections``.

        The pooled connections stay open and authenticated for the next
        request. With ``OPTIONS["close_connections"] = True`` the idle
        connections are closed instead, as Django's ``PyMemcacheCache`` does.
        """
        if self._close_connections:
            self._cache.disconnect_all()

    def validate_key(self, key: str) -> None:
        """Raise ``InvalidCacheKey`` for a key memcached refuses, as Django's memcached backends do.

        Same rule as Django's memcached backends, and their message followed by
        what to do about it (hash or shorten the key: see the documentation's
        *Cache keys*). A key Django's character count lets through but that is
        over 250 bytes once UTF-8 encoded raises
        :class:`~layered_cache.InvalidKeyError` (a :class:`ValueError`). Valid
        keys (the common case) are recognised by one fast check instead of a
        loop over every character.
        """
        problem = key_problem(key)
        if problem is None:
            return
        try:
            super().validate_key(key)
        except InvalidCacheKey as exc:
            raise InvalidCacheKey(f"{exc}. {KEYS_HELP}") from None
        raise InvalidKeyError(f"invalid memcached key {key!r:.80}: {problem}. {KEYS_HELP}")

    def get_or_set(
        self,
        key: str,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> Any:
        """Django's ``get_or_set``, safe against a thundering herd.

        When many requests miss the same key at once, one of them computes
        ``default`` (when it is callable) and stores it; the others wait for
        that value instead of all recomputing it. See
        :meth:`layered_cache.Client.get_or_set`.
        """
        key = self.make_and_validate_key(key, version=version)
        # Django's memcached timeout rules (None, 0, negative, over 30 days) -> an int expire.
        expire = int(self.get_backend_timeout(timeout) or 0)
        return self._cache.get_or_set(key, default, expire)

    async def aget_or_set(
        self,
        key: str,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> Any:
        """The async :meth:`get_or_set` (the wait happens in a worker thread)."""
        return await sync_to_async(self.get_or_set, thread_sensitive=True)(
            key, default, timeout, version
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {list(self.client_servers)!r}>"


# -- clients shared by backends ----------------------------------------------------------

#: Distinct configurations whose clients are kept; beyond it the least recently
#: created one is released (its idle connections closed).
MAX_SHARED_CLIENTS = 64

_shared: OrderedDict[Hashable, Client] = OrderedDict()
_shared_lock = threading.Lock()


def _shared_client(config: CacheConfig) -> Client:
    key = config.share_key
    with _shared_lock:
        client = _shared.get(key)
        if client is not None:
            _shared.move_to_end(key)
            return client
        client = config.make_client()
        _shared[key] = client
        released = _shared.popitem(last=False)[1] if len(_shared) > MAX_SHARED_CLIENTS else None
    if released is not None:
        released.close()
    return client


def _close_if_released(key: Hashable, client: Client) -> None:
    """When a backend goes away: close its client's idle connections if no longer shared."""
    with _shared_lock:
        if _shared.get(key) is client:
            return
    client.close()


def release_clients() -> None:
    """Close the idle connections of every client the backends share, and forget the clients.

    Backends created afterwards get new clients; existing ones keep working
    (their client reconnects when used). Runs at interpreter exit. Forked
    children (gunicorn or Celery workers) start with empty pools by themselves;
    calling this in a ``post_fork`` hook only frees the clients inherited from
    the parent. Tests may call it to start each test with fresh connections.
    """
    with _shared_lock:
        clients = list(_shared.values())
        _shared.clear()
    for client in clients:
        client.close()


atexit.register(release_clients)


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
