"""MemorystoreDiscovery: Google Cloud Memorystore for Memcached's discovery endpoint."""

from __future__ import annotations

import attrs

from layered_cache.discovery._base import DiscoveryFlow, check_interval
from layered_cache.discovery._endpoint import NodeAddress, check_use, endpoint_lookup
from layered_cache.transport._base import Address

__all__ = ["MemorystoreDiscovery"]


@attrs.frozen
class MemorystoreDiscovery:
    """Nodes from a Memorystore for Memcached instance's discovery endpoint.

    Give the client the instance's discovery endpoint (``gcloud memcache
    instances describe ... --format="default(discoveryEndpoint)"``, an
    ``IP:port`` that never changes for the instance). It answers ``config get
    cluster`` in the same shape as ElastiCache, listing each node as
    ``ip|ip|port``.

    Args:
        interval: seconds between two lookups (default 60); 0 looks up only
            when ``refresh()`` is called.
        use: ``"ip"`` (default) or ``"hostname"``; Memorystore puts the IP
            address in both fields.

    Raises:
        ConfigurationError: an argument is invalid.
    """

    interval: float = attrs.field(default=60.0, converter=check_interval)
    use: NodeAddress = attrs.field(default="ip", converter=check_use)

    def lookup(self, seeds: tuple[Address, ...]) -> DiscoveryFlow:
        """Ask the discovery endpoint(s) in turn for the node list."""
        return endpoint_lookup(seeds, use=self.use, legacy=False, service="Memorystore")
