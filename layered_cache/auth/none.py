"""No authentication: the connection is usable as soon as it is open."""

from __future__ import annotations

import attrs

from layered_cache.auth._base import HandshakeFlow

__all__ = ["NoAuth"]


@attrs.frozen
class NoAuth:
    """Send nothing: for memcached without ``-Y`` or ``-S`` (the usual private-network setup).

    Example:
        >>> list(NoAuth().handshake("127.0.0.1:11211"))
        []
    """

    def handshake(self, server: str) -> HandshakeFlow:
        """An empty flow."""
        yield from ()
