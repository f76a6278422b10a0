"""The transport contract: how a connection's bytes travel."""

from __future__ import annotations

import socket
from typing import Protocol, TypeAlias

__all__ = ["Address", "Transport", "format_address"]

#: A server address: ``(host, port)`` for TCP, or a filesystem path for a UNIX socket.
Address: TypeAlias = tuple[str, int] | str


def format_address(address: Address) -> str:
    """Render an address the way errors and logs show it: ``host:port`` or the socket path."""
    if isinstance(address, tuple):
        host, port = address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return address


class Transport(Protocol):
    """Opens connected sockets to a memcached server.

    A transport's whole contract for the sync :class:`~layered_cache.Client` is
    :meth:`connect`. The asyncio engine opens connections itself and asks the
    transport how, with ``plan(address)``, which returns a
    :class:`~layered_cache.transport.ConnectionPlan` (address, TLS context and
    host name, socket options); the built-in transports provide both.
    Implementations are immutable and shared by every connection of a client,
    from many threads.
    Errors are raised as they come (:class:`OSError`, :class:`ssl.SSLError`,
    :class:`TimeoutError`); the client translates them into
    :mod:`layered_cache.errors` in one place.
    """

    def connect(
        self, address: Address, *, connect_timeout: float | None, timeout: float | None
    ) -> socket.socket:
        """Return a socket connected (and, for TLS, handshaken) to ``address``.

        Args:
            address: where to connect.
            connect_timeout: seconds allowed for connecting (and any handshake);
                None waits forever.
            timeout: seconds the returned socket waits on each send or receive;
                None waits forever.
        """
        ...
