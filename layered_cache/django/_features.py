"""What Django's own cache features store, and whether a cache's serializer can hold it.

Used by the system checks (``layered_cache.W003``, ``layered_cache.W004``). A
serializer is tried on a sample of what the feature stores, in memory: nothing
connects, and custom serializers are judged by what they do, not by their name.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

__all__ = [
    "middleware_cache_alias",
    "refusal",
    "response_sample",
    "session_cache_alias",
    "session_samples",
]

_PROBE_KEY = "layered_cache:check:probe"

_SESSION_STORES = (
    "django.contrib.sessions.backends.cache.SessionStore",
    "django.contrib.sessions.backends.cached_db.SessionStore",
)
_CACHE_MIDDLEWARE = (
    "django.middleware.cache.UpdateCacheMiddleware",
    "django.middleware.cache.FetchFromCacheMiddleware",
)
_JSON_SESSION_SERIALIZERS = ("django.core.signing.JSONSerializer",)


def _subclass_of(path: object, bases: tuple[str, ...]) -> bool:
    """Whether the class at dotted ``path`` is (a subclass of) one of ``bases``."""
    if not isinstance(path, str):
        return False
    try:
        cls = import_string(path)
        classes = tuple(import_string(base) for base in bases)
    except Exception:  # an unimportable path is Django's to report
        return False
    return isinstance(cls, type) and issubclass(cls, classes)


def session_cache_alias() -> str | None:
    """``SESSION_CACHE_ALIAS`` when ``SESSION_ENGINE`` keeps sessions in a cache, else None."""
    engine = getattr(settings, "SESSION_ENGINE", "")
    if not _subclass_of(f"{engine}.SessionStore", _SESSION_STORES):
        return None
    return str(getattr(settings, "SESSION_CACHE_ALIAS", "default"))


def middleware_cache_alias() -> str | None:
    """``CACHE_MIDDLEWARE_ALIAS`` when Django's cache middleware is in ``MIDDLEWARE``, else None."""
    middleware = getattr(settings, "MIDDLEWARE", None) or ()
    if not any(_subclass_of(path, _CACHE_MIDDLEWARE) for path in middleware):
        return None
    return str(getattr(settings, "CACHE_MIDDLEWARE_ALIAS", "default"))


def session_samples() -> list[tuple[str, Any]]:
    """``(description, value)`` pairs a session store may write to the cache.

    Session data as Django's default ``SESSION_SERIALIZER`` (JSON) allows it,
    and, when ``SESSION_SERIALIZER`` is something else, a value only pickle
    holds: the cache and cached_db engines store the session dict with the
    cache's serializer, whatever ``SESSION_SERIALIZER`` says.
    """
    data = {
        "_auth_user_id": "1",
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": "0" * 64,
        "_session_expiry": 1209600,
        "cart": [1, 2, 3],
        "preferences": {"theme": "dark", "ratio": 1.5, "beta": True, "coupon": None},
    }
    samples: list[tuple[str, Any]] = [("session data (a dict)", data)]
    serializer = getattr(settings, "SESSION_SERIALIZER", _JSON_SESSION_SERIALIZERS[0])
    if not _subclass_of(serializer, _JSON_SESSION_SERIALIZERS):
        when = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
        samples.append(
            (
                f"the values SESSION_SERIALIZER {serializer!r} allows in a session "
                "(such as a datetime)",
                {**data, "last_visit": when},
            )
        )
    return samples


def response_sample() -> tuple[str, Any]:
    """``(description, value)``: what the cache middleware and ``cache_page`` store."""
    from django.http import HttpResponse  # noqa: PLC0415 - needs configured settings

    response = HttpResponse(b"<p>cached page</p>", headers={"Cache-Control": "max-age=60"})
    return "HttpResponse objects", response


def refusal(serializer: Any, value: Any, same: Callable[[Any, Any], bool]) -> str | None:
    """Why ``serializer`` cannot store ``value`` and read it back, or None when it can.

    The answer names the exception's class only: a custom serializer's message
    is not shown.
    """
    try:
        data, flags = serializer.serialize(_PROBE_KEY, value)
        back = serializer.deserialize(_PROBE_KEY, data, flags)
    except Exception as exc:  # any failure means "cannot store it"
        return f"raised {type(exc).__name__}"
    if not same(value, back):
        return f"read it back as {type(back).__name__}"
    return None
