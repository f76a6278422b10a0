"""ElastiCacheDiscovery: AWS ElastiCache for Memcached's configuration endpoint."""

from __future__ import annotations

import attrs

from layered_cache.discovery._base import DiscoveryFlow, check_interval
from layered_cache.discovery._endpoint import NodeAddress, check_use, endpoint_lookup
from layered_cache.transport._base import Address

__all__ = ["ElastiCacheDiscovery"]


@attrs.frozen
class ElastiCacheDiscovery:
    """Nodes from an ElastiCache cluster's configuration endpoint (``config get cluster``).

    Give the client the configuration endpoint as its server
    (``mycluster.xxxxxx.cfg.use1.cache.amazonaws.com:11211``, the address with
    ``.cfg.`` in it). Every ``interval`` seconds the client asks it for the
    cluster's node list, on a connection of its own through the client's
    transport (TLS for in-transit encryption) and authenticator, and follows
    the cluster as nodes are added, replaced and removed.

    Args:
        interval: seconds between two lookups (default 60); 0 looks up only
            when ``refresh()`` is called.
        use: connect to each node by its DNS name (``"hostname"``, the
            default: TLS certificates name the hosts) or by its IP address
            (``"ip"``: no DNS lookup per connection).
        legacy: on engines older than 1.4.14, which answer ``config`` with
            ``ERROR``, read the key ``AmazonElastiCache:cluster`` instead
            (default True).

    Raises:
        ConfigurationError: an argument is invalid.

    Example:
        >>> from layered_cache import Client
        >>> client = Client(                                       # doctest: +SKIP
        ...     "mycluster.abc123.cfg.use1.cache.amazonaws.com:11211",
        ...     discovery=ElastiCacheDiscovery(interval=30),
        ... )
    """

    interval: float = attrs.field(default=60.0, converter=check_interval)
    use: NodeAddress = attrs.field(default="hostname", converter=check_use)
    legacy: bool = True

    def lookup(self, seeds: tuple[Address, ...]) -> DiscoveryFlow:
        """Ask the configuration endpoint(s) in turn for the node list."""
        return endpoint_lookup(seeds, use=self.use, legacy=self.legacy, service="ElastiCache")
