"""System checks: ``manage.py check`` reports a wrong ``CACHES`` entry before the first request.

Registered when ``"layered_cache.django"`` is in ``INSTALLED_APPS`` (or when this
module is imported). Each ``CACHES`` entry whose ``BACKEND`` is
:class:`~layered_cache.django.MemcacheCache` (or a subclass) is parsed exactly as
the backend parses it, without connecting, and every problem the backend would
raise as ``ImproperlyConfigured`` is reported instead, with the same message:

======================  ===============================================================
id                      problem
======================  ===============================================================
``layered_cache.E001``  a strategy (``transport``, ``auth``, ``serializer``) is unknown,
                        cannot be imported, or is not a strategy
``layered_cache.E002``  an option no chosen strategy takes, or one given twice
``layered_cache.E003``  a strategy refused its arguments (e.g. a TLS file is missing)
``layered_cache.E004``  incomplete credentials (a username without a password, ...)
``layered_cache.E005``  no server, or a malformed server list
``layered_cache.E006``  an invalid value for a client option (timeouts, pool sizes, ...)
``layered_cache.W001``  TLS without certificate or hostname verification
``layered_cache.W002``  credentials in the environment (``MEMCACHIER_USERNAME``, ...)
                        that are not used, because the servers come from ``LOCATION``
``layered_cache.W003``  the cache ``SESSION_CACHE_ALIAS`` names (with a ``cache`` or
                        ``cached_db`` ``SESSION_ENGINE``) has a serializer that cannot
                        store session data
``layered_cache.W004``  the cache ``CACHE_MIDDLEWARE_ALIAS`` names (with Django's cache
                        middleware installed) has a serializer that cannot store
                        ``HttpResponse`` objects (JSON cannot)
======================  ===============================================================

With the app installed, its ``ready()`` also runs the error checks when Django
starts, and refuses to start on an error (see :func:`validate_caches`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.utils.module_loading import import_string

from layered_cache.django import _features
from layered_cache.django.options import (
    CacheConfig,
    CacheConfigurationError,
    parse_cache_config,
)
from layered_cache.transport import InsecureTLSWarning

__all__ = [
    "STARTUP_SETTING",
    "W_INSECURE_TLS",
    "W_MIDDLEWARE_SERIALIZER",
    "W_SESSION_SERIALIZER",
    "W_UNUSED_ENVIRONMENT",
    "check_cache",
    "check_cache_features",
    "check_caches",
    "validate_caches",
]

#: The id of the warning for TLS without full verification.
W_INSECURE_TLS = "layered_cache.W001"
#: The id of the warning for environment credentials kept from servers named in settings.
W_UNUSED_ENVIRONMENT = "layered_cache.W002"
#: The id of the warning for a session cache whose serializer cannot store sessions.
W_SESSION_SERIALIZER = "layered_cache.W003"
#: The id of the warning for a cache middleware cache whose serializer cannot store responses.
W_MIDDLEWARE_SERIALIZER = "layered_cache.W004"
#: The setting that turns the start-up validation off (default ``True``).
STARTUP_SETTING = "LAYERED_CACHE_VALIDATE_AT_STARTUP"

_BACKEND = "layered_cache.django.MemcacheCache"


def _is_ours(backend: object) -> bool:
    if backend == _BACKEND:
        return True
    if not isinstance(backend, str):
        return False
    from layered_cache.django.cache import MemcacheCache  # noqa: PLC0415 - avoid a cycle

    try:
        cls = import_string(backend)
    except ImportError:
        return False  # Django reports an unimportable BACKEND itself.
    return isinstance(cls, type) and issubclass(cls, MemcacheCache)


def check_cache(
    alias: str, entry: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> list[CheckMessage]:
    """Check one ``CACHES`` entry for :class:`~layered_cache.django.MemcacheCache`.

    Args:
        alias: the entry's name in ``CACHES`` (shown as the message's object).
        entry: the entry, ``BACKEND`` and ``LOCATION`` included.
        environ: the environment to read (default :data:`os.environ`).

    Returns:
        The problems found: at most one error (the first, as the backend would
        raise it), any TLS verification warnings, and a warning when credentials
        in the environment are not used. Nothing connects.
    """
    return _parse(alias, entry, environ=environ)[1]


def _parse(
    alias: str, entry: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> tuple[CacheConfig | None, list[CheckMessage]]:
    """:func:`check_cache`, and the parsed configuration when there was no error."""
    params = dict(entry)
    params.pop("BACKEND", None)
    location = params.pop("LOCATION", "")
    obj = f"CACHES[{alias!r}]"
    messages: list[CheckMessage] = []
    config = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InsecureTLSWarning)
        try:
            config = parse_cache_config(location, params, environ=environ)
        except CacheConfigurationError as exc:
            messages.append(Error(str(exc), obj=obj, id=exc.check_id))
        else:
            if config.unused_environment:
                messages.append(
                    CheckWarning(config.unused_environment, obj=obj, id=W_UNUSED_ENVIRONMENT)
                )
    for warning in caught:
        if issubclass(warning.category, InsecureTLSWarning):
            messages.append(CheckWarning(str(warning.message), obj=obj, id=W_INSECURE_TLS))
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return config, messages


@register(Tags.caches)
def check_caches(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Check every ``CACHES`` entry that uses :class:`~layered_cache.django.MemcacheCache`.

    Registered with Django's check framework under the ``caches`` tag; run by
    ``manage.py check`` and before ``runserver``, ``migrate`` and the tests.
    """
    messages: list[CheckMessage] = []
    for alias, entry in _ours(getattr(settings, "CACHES", {})).items():
        messages.extend(check_cache(alias, entry))
    return messages


def _ours(caches: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        alias: entry
        for alias, entry in caches.items()
        if isinstance(entry, Mapping) and _is_ours(entry.get("BACKEND"))
    }


def _same_response(sent: Any, back: Any) -> bool:
    return type(back) is type(sent) and back.content == sent.content


@register(Tags.caches)
def check_cache_features(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn when a cache Django's sessions or cache middleware use cannot store what they store.

    ``layered_cache.W003``: ``SESSION_ENGINE`` is the ``cache`` or ``cached_db``
    engine (or a subclass) and the serializer of the cache ``SESSION_CACHE_ALIAS``
    names cannot store session data. These engines store the session dict with
    the cache's serializer; JSON holds what Django's default ``SESSION_SERIALIZER``
    (JSON) allows, so it is only reported when ``SESSION_SERIALIZER`` is another one.

    ``layered_cache.W004``: Django's cache middleware (``UpdateCacheMiddleware``,
    ``FetchFromCacheMiddleware``, ``CacheMiddleware`` or a subclass) is in
    ``MIDDLEWARE`` and the serializer of the cache ``CACHE_MIDDLEWARE_ALIAS`` names
    cannot store ``HttpResponse`` objects (JSON cannot; pickle and signed pickle can).

    Each serializer is tried on a sample value in memory; nothing connects.
    Registered under the ``caches`` tag, next to :func:`check_caches`.
    """
    caches = _ours(getattr(settings, "CACHES", {}))
    features: list[tuple[str, str, list[tuple[str, Any]], Any, str]] = []
    session_alias = _features.session_cache_alias()
    if session_alias in caches:
        features.append(
            (
                session_alias,
                f"SESSION_ENGINE {settings.SESSION_ENGINE!r} keeps sessions in this cache "
                "(SESSION_CACHE_ALIAS)",
                _features.session_samples(),
                lambda sent, back: sent == back,
                W_SESSION_SERIALIZER,
            )
        )
    middleware_alias = _features.middleware_cache_alias()
    if middleware_alias in caches:
        features.append(
            (
                middleware_alias,
                "Django's cache middleware caches pages in this cache (CACHE_MIDDLEWARE_ALIAS)",
                [_features.response_sample()],
                _same_response,
                W_MIDDLEWARE_SERIALIZER,
            )
        )
    messages: list[CheckMessage] = []
    for alias, why, samples, same, check_id in features:
        config, _ = _parse(alias, caches[alias])
        if config is None:
            continue  # check_caches reports the error
        serializer = config.serializer
        name = type(serializer).__qualname__
        for what, value in samples:
            reason = _features.refusal(serializer, value, same)
            if reason is None:
                continue
            messages.append(
                CheckWarning(
                    f"{why}, but its serializer ({name}) cannot store {what}: it {reason}. "
                    "Every request that stores one would fail.",
                    hint=(
                        'Use "serializer": "pickle" or "signed_pickle" for this cache, or '
                        "point the setting at a cache that does (see the documentation's "
                        "guide to Django's cache features)."
                    ),
                    obj=f"CACHES[{alias!r}]",
                    id=check_id,
                )
            )
            break
    return messages


def validate_caches() -> None:
    """Raise the errors :func:`check_caches` finds, as Django starts (unless turned off).

    Called by the app's ``ready()`` (``"layered_cache.django"`` in
    ``INSTALLED_APPS``), except under ``manage.py check`` and ``manage.py
    cache_check``, which report the errors themselves. So a process whose
    ``CACHES`` has a wrong :class:`~layered_cache.django.MemcacheCache` entry
    refuses to start instead of failing at every request that uses the cache
    (Django creates caches lazily). Warnings are left to ``manage.py check``.
    ``LAYERED_CACHE_VALIDATE_AT_STARTUP = False`` in the settings turns it off
    (e.g. for ``collectstatic`` in an image build without the environment).

    Raises:
        CacheConfigurationError: one line per wrong entry, each exactly as
            ``manage.py check`` prints it (``CACHES['default']:
            (layered_cache.E001) ...``); ``check_id`` is the first one's.
    """
    if not getattr(settings, STARTUP_SETTING, True):
        return
    errors = [
        message
        for alias, entry in _ours(getattr(settings, "CACHES", {})).items()
        for message in check_cache(alias, entry)
        if message.is_serious()
    ]
    if errors:
        raise CacheConfigurationError(
            "\n".join(str(error) for error in errors), check_id=str(errors[0].id)
        )
