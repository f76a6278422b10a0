"""Django cache backend: ``"BACKEND": "layered_cache.django.MemcacheCache"``.

Add ``"layered_cache.django"`` to ``INSTALLED_APPS`` as well to have
``manage.py check`` report configuration mistakes (``layered_cache.E001`` ...)
before the first request.
"""

from layered_cache.django.cache import MemcacheCache, release_clients
from layered_cache.django.options import CacheConfig, CacheConfigurationError, parse_cache_config

__all__ = [
    "CacheConfig",
    "CacheConfigurationError",
    "MemcacheCache",
    "parse_cache_config",
    "release_clients",
]
