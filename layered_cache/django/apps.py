"""Django app config: installing ``"layered_cache.django"`` enables the system checks."""

import sys

from django.apps import AppConfig

__all__ = ["LayeredCacheConfig"]

# Management commands that run the cache checks and report them themselves.
_REPORTING_COMMANDS = frozenset({"check", "cache_check"})


class LayeredCacheConfig(AppConfig):
    """Registers :mod:`layered_cache.django.checks` and validates ``CACHES`` when Django starts.

    Add ``"layered_cache.django"`` to ``INSTALLED_APPS``; the app has no
    models, views or migrations.
    """

    name = "layered_cache.django"
    label = "layered_cache"
    verbose_name = "layered_cache"

    def ready(self) -> None:
        """Register the checks, and refuse to start on a wrong ``CACHES`` entry.

        Every :class:`~layered_cache.django.MemcacheCache` entry of ``CACHES``
        is parsed as the backend parses it (nothing connects); an error raises
        :class:`~layered_cache.django.CacheConfigurationError` (Django's
        ``ImproperlyConfigured``) with the message ``manage.py check`` prints,
        so a web worker stops at boot instead of answering every request with
        an error. ``manage.py check`` and ``manage.py cache_check`` report the
        same errors in their own output instead, and
        ``LAYERED_CACHE_VALIDATE_AT_STARTUP = False`` turns the validation off
        (see :func:`~layered_cache.django.checks.validate_caches`).
        """
        from layered_cache.django import checks  # noqa: PLC0415 - registers the checks

        # Django runs argv[1] as the command (manage.py, django-admin, python -m django).
        if sys.argv[1:2] and sys.argv[1] in _REPORTING_COMMANDS:
            return
        checks.validate_caches()
