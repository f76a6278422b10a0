"""The backend's single-key methods, each key made once and checked once.

Django's memcached backends make a key (``make_key``), check it
(``validate_key``), and then the client checks it again as it encodes it.
Here the client's check is the only one on the way in: a key the client
refuses (before anything is sent) is then handed to ``validate_key``, which
raises the error Django's backends raise for it. A backend whose
``make_key``, ``key_func`` or ``validate_key`` is customised keeps Django's
own path, as does a default timeout that depends on the clock (over 30 days).
The timeout rules are Django's (``get_backend_timeout``); the default
timeout's memcached expiry is worked out once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache, default_key_func
from django.core.cache.backends.memcached import BaseMemcachedCache

from layered_cache.errors import InvalidKeyError
from layered_cache.sync.client import Client

__all__ = ["SingleKeyMethods"]

#: Expiries above this are Unix timestamps for memcached: they depend on the clock.
_THIRTY_DAYS = 2592000


class SingleKeyMethods(BaseMemcachedCache):
    """``get``, ``set``, ``add``, ``touch``, ``delete`` with Django's semantics, at less cost."""

    _cache: Client

    def __init__(self, server: Any, params: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(server, params, **kwargs)
        cls = type(self)
        self._own_keys = (
            self.key_func is default_key_func
            and cls.make_key is BaseCache.make_key
            and cls.make_and_validate_key is BaseCache.make_and_validate_key
            and cls.validate_key is getattr(cls, "client_key_rules", None)
        )
        #: ``KEY_PREFIX:VERSION:`` of the default version, which a plain str key is
        #: appended to (what Django's ``default_key_func`` makes, without its formatting).
        self._key_head: str | None = (
            f"{self.key_prefix}:{self.version}:" if self._own_keys else None
        )
        default = self.default_timeout
        self._default_expire: int | None = (
            int(self.get_backend_timeout(default) or 0)
            if default is None or int(default) <= _THIRTY_DAYS
            else None
        )

    def _made(self, key: Any, version: int | None) -> Any:
        """The memcached key (checked by the client as it encodes it), or made and validated."""
        head = self._key_head
        if head is not None and version is None and type(key) is str:
            return head + key
        if self._own_keys:
            return f"{self.key_prefix}:{self.version if version is None else version}:{key}"
        return self.make_and_validate_key(key, version=version)

    def _expire(self, timeout: Any) -> int:
        """Django's memcached timeout rules (None, 0, negative, over 30 days) as an expire."""
        if timeout is DEFAULT_TIMEOUT and self._default_expire is not None:
            return self._default_expire
        return int(self.get_backend_timeout(timeout) or 0)

    def _refused(self, made: Any) -> None:
        """The client refused ``made``: raise what Django's backends raise for it."""
        self.validate_key(made)

    def _refused_any(self, made: Iterable[Any]) -> None:
        """The client refused one of ``made``: raise what Django's backends raise for the first.

        (Django's backends check the keys in order, before anything is sent, as
        the client does.)
        """
        for one in made:
            self.validate_key(one)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        head = self._key_head  # (self._made, inline: this is the hot path)
        made = (
            head + key
            if head is not None and version is None and type(key) is str
            else self._made(key, version)
        )
        try:
            return self._cache.get(made, default)
        except InvalidKeyError:
            self._refused(made)
            raise

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        head = self._key_head  # (self._made and self._expire, inline: this is the hot path)
        made = (
            head + key
            if head is not None and version is None and type(key) is str
            else self._made(key, version)
        )
        expire = self._default_expire
        if timeout is not DEFAULT_TIMEOUT or expire is None:
            expire = self._expire(timeout)
        try:
            stored = self._cache.set(made, value, expire)
        except InvalidKeyError:
            self._refused(made)
            raise
        if not stored:
            # Make sure the key doesn't keep its old value when the set failed
            # (memcached's item size limit), as Django's backends do.
            self._cache.delete(made)

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        made = self._made(key, version)
        try:
            return bool(self._cache.add(made, value, self._expire(timeout)))
        except InvalidKeyError:
            self._refused(made)
            raise

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        made = self._made(key, version)
        try:
            return bool(self._cache.touch(made, self._expire(timeout)))
        except InvalidKeyError:
            self._refused(made)
            raise

    def delete(self, key: Any, version: int | None = None) -> bool:
        made = self._made(key, version)
        try:
            return bool(self._cache.delete(made))
        except InvalidKeyError:
            self._refused(made)
            raise
