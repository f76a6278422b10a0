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
======================  ===============================================================
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

from layered_cache.django.options import CacheConfigurationError, parse_cache_config
from layered_cache.transport import InsecureTLSWarning

__all__ = ["W_INSECURE_TLS", "W_UNUSED_ENVIRONMENT", "check_cache", "check_caches"]

#: The id of the warning for TLS without full verification.
W_INSECURE_TLS = "layered_cache.W001"
#: The id of the warning for environment credentials kept from servers named in settings.
W_UNUSED_ENVIRONMENT = "layered_cache.W002"

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
    params = dict(entry)
    params.pop("BACKEND", None)
    location = params.pop("LOCATION", "")
    obj = f"CACHES[{alias!r}]"
    messages: list[CheckMessage] = []
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
    return messages


@register(Tags.caches)
def check_caches(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Check every ``CACHES`` entry that uses :class:`~layered_cache.django.MemcacheCache`.

    Registered with Django's check framework under the ``caches`` tag; run by
    ``manage.py check`` and before ``runserver``, ``migrate`` and the tests.
    """
    messages: list[CheckMessage] = []
    caches = getattr(settings, "CACHES", {})
    for alias, entry in caches.items():
        if isinstance(entry, Mapping) and _is_ours(entry.get("BACKEND")):
            messages.extend(check_cache(alias, entry))
    return messages
