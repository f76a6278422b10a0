"""Constants and helpers shared by the Django backend tests (a module, not a conftest)."""

from __future__ import annotations

import os
from typing import Any

BACKEND = "layered_cache.django.MemcacheCache"
PYMEMCACHE_BACKEND = "django.core.cache.backends.memcached.PyMemcacheCache"
ENV_VARS = tuple(
    f"{family}_{field}"
    for family in ("MEMCACHE", "MEMCACHIER")
    for field in ("SERVERS", "USERNAME", "PASSWORD")
)
FLAVOURS = ("tcp", "tls", "memcachier")

# The extra aliases Django's own cache tests use next to "default".
ALIASES: dict[str, dict[str, Any]] = {
    "default": {},
    "prefix": {"KEY_PREFIX": f"cacheprefix{os.getpid()}"},
    "v2": {"VERSION": 2},
    "custom_key": {"KEY_FUNCTION": "djproject.keys.custom_key_func"},
    "custom_key2": {"KEY_FUNCTION": "djproject.keys.custom_key_func"},
}


def caches_setting(base: dict[str, Any], **overrides: Any) -> dict[str, dict[str, Any]]:
    """A CACHES setting: every alias of :data:`ALIASES` on ``base``, plus ``overrides``."""
    setting = {}
    for alias, extra in ALIASES.items():
        entry = {**base, **extra, **overrides}
        setting[alias] = entry
    # One alias takes the key function as a callable, the other as a dotted path.
    from djproject.keys import custom_key_func

    setting["custom_key"]["KEY_FUNCTION"] = custom_key_func
    return setting
