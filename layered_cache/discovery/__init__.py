"""Discovery strategies: where a client's memcached nodes come from, and how they change.

- :class:`StaticDiscovery`: the servers given are the nodes (the default).
- :class:`ElastiCacheDiscovery`: AWS ElastiCache for Memcached's configuration
  endpoint (``config get cluster``).
- :class:`MemorystoreDiscovery`: Google Cloud Memorystore for Memcached's
  discovery endpoint (the same command and reply).
- :class:`DNSDiscovery`: names resolved again every ``interval`` seconds.

Pass one as ``Client(..., discovery=...)`` (or ``AsyncClient``), or name it in
Django's ``OPTIONS["discovery"]``. The contract is :class:`Discovery`.
"""

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from layered_cache.discovery._base import Ask, Call, Conversation, Discovery, DiscoveryFlow, Found
from layered_cache.discovery.dns import DNSDiscovery, Resolver, resolve_with_getaddrinfo
from layered_cache.discovery.elasticache import ElastiCacheDiscovery
from layered_cache.discovery.memorystore import MemorystoreDiscovery
from layered_cache.discovery.static import StaticDiscovery

__all__ = [
    "ALIASES",
    "Ask",
    "Call",
    "Conversation",
    "DNSDiscovery",
    "Discovery",
    "DiscoveryFlow",
    "ElastiCacheDiscovery",
    "Found",
    "MemorystoreDiscovery",
    "Resolver",
    "StaticDiscovery",
    "resolve_with_getaddrinfo",
]

#: The strategies by the names Django's ``OPTIONS["discovery"]`` and
#: ``layered-cache --discovery`` use.
ALIASES: Final[Mapping[str, Callable[..., Any]]] = MappingProxyType(
    {
        "static": StaticDiscovery,
        "elasticache": ElastiCacheDiscovery,
        "memorystore": MemorystoreDiscovery,
        "dns": DNSDiscovery,
    }
)
