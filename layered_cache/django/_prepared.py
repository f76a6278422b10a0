"""Backends already built, by ``CACHES`` entry: a new backend of the same entry copies one.

Django makes a backend per thread, and under ASGI one per request: its
``CacheHandler`` passes a fresh copy of the entry's dict each time, holding
the same ``LOCATION`` and ``OPTIONS`` objects. Building a backend runs
Django's base ``__init__``, our configuration lookup and our own derived
attributes, about ten times what Django's ``PyMemcacheCache`` costs; copying
the attributes of an earlier backend of the same entry costs about what
Django's costs.

An entry is recognised by the identity of its objects (the entry keeps them
alive, so their identities cannot be reused), then checked against a copy of
its contents taken when it was built, so an ``OPTIONS`` dict changed in place
is built anew; and against the ``MEMCACHE_*``/``MEMCACHIER_*`` environment it
was read with. A change of settings (``override_settings``) forgets them all,
as a strategy may read settings.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Final

from django.core.signals import setting_changed

from layered_cache._environment import environment_values

__all__ = ["PreparedBackends"]

#: Distinct entries remembered; the least recently built is forgotten first.
_MAX_ENTRIES: Final = 64


def _contents(value: object) -> object:
    """A copy of the containers in ``value``, holding the same leaves.

    Compared with ``==`` (in C, leaves by identity first), it tells whether a
    container of the entry was changed in place since the copy was taken.
    """
    if isinstance(value, dict):
        return {key: _contents(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_contents(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_contents(item) for item in value)
    if isinstance(value, set):
        return set(value)
    return value


class PreparedBackends:
    """The attributes of built backends, by class and entry (see the module's docstring)."""

    def __init__(self) -> None:
        # key -> (the entry's objects, their contents, the environment, the attributes)
        self._entries: OrderedDict[Hashable, tuple[Any, object, object, dict[str, Any]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        setting_changed.connect(self._forget_all, weak=False, dispatch_uid=f"{__name__}.{id(self)}")

    @staticmethod
    def _key(backend: type, server: object, params: Mapping[str, Any]) -> Hashable:
        return (backend, id(server), tuple(params), tuple(map(id, params.values())))

    def lookup(
        self, backend: type, server: object, params: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The attributes of a ``backend`` built from this entry, if one was."""
        entry = self._entries.get(self._key(backend, server, params))
        if entry is None:
            return None
        _, contents, environment, attributes = entry
        if contents != (server, params) or environment != environment_values():
            return None
        return attributes

    def remember(
        self, backend: type, server: object, params: Mapping[str, Any], attributes: dict[str, Any]
    ) -> None:
        """Keep ``attributes`` (a copy) of a ``backend`` just built from this entry."""
        key = self._key(backend, server, params)
        objects = (server, tuple(params.values()))
        entry = (objects, _contents((server, params)), environment_values(), dict(attributes))
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            if len(self._entries) > _MAX_ENTRIES:
                self._entries.popitem(last=False)

    def _forget_all(self, **kwargs: Any) -> None:
        with self._lock:
            self._entries.clear()
