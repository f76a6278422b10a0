"""Turning one ``CACHES`` entry into typed strategy objects and client options.

This package is the only place that reads ``OPTIONS``, ``USERNAME``/``PASSWORD`` and
the environment. It produces a :class:`CacheConfig` whose transport, authenticator and
serializer are ordinary :mod:`layered_cache` strategy objects: strategies never see
Django or the raw ``OPTIONS`` dict.

``OPTIONS["transport"]``, ``OPTIONS["auth"]``, ``OPTIONS["serializer"]`` and
``OPTIONS["discovery"]`` each take an alias (:data:`TRANSPORTS`, :data:`AUTHENTICATORS`,
:data:`SERIALIZERS`, :data:`DISCOVERIES`), a dotted
path to a class, factory or instance, a ready instance, or a dict
``{"class": <alias, path or class>, **arguments}``. The other keys of ``OPTIONS``
are, in this order: the client's own options (:data:`CLIENT_OPTIONS`), those of
the async methods' client alone (:data:`ASYNC_CLIENT_OPTIONS`), the backend's
(:data:`BACKEND_OPTIONS`), the credentials (``username``, ``password``), and
otherwise an argument of exactly one chosen strategy, passed to it when it is
built (``ca_file`` to ``"tls"``, ``sort_keys`` to ``"json"``, ...). A key that
fits none of these, or more than one strategy, is an error.
With no ``auth`` named, credentials (from anywhere) mean ``"memcachier"``.

Where servers and credentials come from, first match wins (settings, then
``MEMCACHE_*``, then ``MEMCACHIER_*``):

- servers: ``LOCATION``, then ``MEMCACHE_SERVERS``, then ``MEMCACHIER_SERVERS``;
- username: ``OPTIONS["username"]`` or ``USERNAME``, then ``MEMCACHE_USERNAME``,
  then ``MEMCACHIER_USERNAME``;
- password: ``OPTIONS["password"]`` or ``PASSWORD``, then ``MEMCACHE_PASSWORD``,
  then ``MEMCACHIER_PASSWORD``.

The environment is read as one family (see :mod:`layered_cache._environment`):
``MEMCACHE_*`` when any of ``MEMCACHE_SERVERS``, ``MEMCACHE_USERNAME`` or
``MEMCACHE_PASSWORD`` is set (and not empty), otherwise ``MEMCACHIER_*``. The two
families are never mixed, and credentials from the environment only go to servers
from the same environment: with ``LOCATION`` set, ``MEMCACHIER_USERNAME`` and
``MEMCACHIER_PASSWORD`` are not used (and ``manage.py check`` says so) unless the
settings ask for them, by naming an ``auth`` or with
``OPTIONS["environment_credentials"] = True``. Empty strings count as unset.

The parser (``_parser``) is a short sequence of named steps over three concerns:
the strategies (``_strategies``: aliases, choosing, building), where servers and
credentials come from (``_sources``), and the error with its check ids
(``_errors``).
"""

from layered_cache.django.options._errors import CacheConfigurationError
from layered_cache.django.options._parser import (
    ASYNC_CLIENT_OPTIONS,
    BACKEND_OPTIONS,
    CLIENT_OPTIONS,
    CacheConfig,
    cached_cache_config,
    parse_cache_config,
)
from layered_cache.django.options._strategies import (
    AUTHENTICATORS,
    DISCOVERIES,
    SERIALIZERS,
    TRANSPORTS,
)

__all__ = [
    "ASYNC_CLIENT_OPTIONS",
    "AUTHENTICATORS",
    "DISCOVERIES",
    "BACKEND_OPTIONS",
    "CLIENT_OPTIONS",
    "SERIALIZERS",
    "TRANSPORTS",
    "CacheConfig",
    "CacheConfigurationError",
    "cached_cache_config",
    "parse_cache_config",
]

# Shown (in tracebacks, reprs and the docs) under their public home, not the
# private module that defines them.
for _public in (CacheConfig, CacheConfigurationError, cached_cache_config, parse_cache_config):
    _public.__module__ = __name__
del _public
