"""Plain TCP (or UNIX socket) connections."""

from __future__ import annotations

import select
import socket
import ssl
import sys
from collections.abc import Callable
from typing import Any

import attrs

from layered_cache.errors import ConfigurationError
from layered_cache.transport._base import Address

__all__ = [
    "ConnectionPlan",
    "Keepalive",
    "TCPTransport",
    "apply_socket_options",
    "input_waiting",
    "open_socket",
]


@attrs.frozen
class Keepalive:
    """TCP keepalive timing, so that idle connections through NATs and proxies stay open.

    Args:
        idle: seconds of silence before the first probe.
        interval: seconds between probes.
        count: unanswered probes before the connection is declared dead.
    """

    idle: int = attrs.field(default=60, validator=attrs.validators.gt(0))
    interval: int = attrs.field(default=10, validator=attrs.validators.gt(0))
    count: int = attrs.field(default=5, validator=attrs.validators.gt(0))


def _to_keepalive(value: Keepalive | bool | None) -> Keepalive | None:
    if value is True:
        return Keepalive()
    if value is False or value is None:
        return None
    if isinstance(value, Keepalive):
        return value
    raise ConfigurationError(
        f"keepalive must be True, False, None or a Keepalive(...), not {value!r}"
    )


@attrs.frozen
class ConnectionPlan:
    """Everything an engine needs to open a connection: where, with which TLS, which options.

    A transport describes its connections this way (:meth:`TCPTransport.plan`),
    so that every engine (blocking sockets or asyncio) opens them alike.

    Attributes:
        address: ``(host, port)`` or a UNIX socket path.
        ssl_context: the TLS context, or None for plain TCP.
        server_hostname: the name to verify and send as SNI (TLS only).
        no_delay: set ``TCP_NODELAY``.
        keepalive: TCP keepalive timing, or None.
    """

    address: Address
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, eq=False)
    server_hostname: str | None = None
    no_delay: bool = True
    keepalive: Keepalive | None = None


def apply_socket_options(sock: socket.socket, plan: ConnectionPlan) -> None:
    """Set the plan's TCP options on a connected socket (nothing for UNIX sockets)."""
    if isinstance(plan.address, str):
        return
    if plan.no_delay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    keepalive = plan.keepalive
    if keepalive is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if sys.platform == "linux":
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive.idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, keepalive.interval)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, keepalive.count)


def input_watch(sock: Any) -> Callable[[], bool]:
    """A check, set up once, of whether ``sock`` has bytes or an end-of-file waiting (or is gone).

    On a connection nobody is awaiting a reply on, either means the server hung
    up (a restart, an idle timeout) or sent something nobody asked for: the
    connection must not carry the next command. ``sock`` is anything with a
    ``fileno()`` (a socket, a TLS socket, asyncio's transport socket). A
    connection asked before each of its commands keeps its check, so that each
    look is one ``poll`` call (no poller made and registered every time).
    """
    # poll, not select: select cannot watch descriptors numbered 1024 and up.
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
    except (OSError, ValueError):
        return _gone
    poll = poller.poll

    def waiting() -> bool:
        try:
            return bool(poll(0))
        except OSError:
            return True

    return waiting


def _gone() -> bool:
    """The check of a socket that cannot be watched (closed): treat it as hung up."""
    return True


def input_waiting(sock: Any) -> bool:
    """Whether ``sock`` has input or an end-of-file waiting, or is gone (:func:`input_watch`)."""
    return input_watch(sock)()


def open_socket(plan: ConnectionPlan, *, connect_timeout: float | None) -> socket.socket:
    """Connect a TCP socket (trying every address the host resolves to) or a UNIX socket."""
    address = plan.address
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection(address, timeout=connect_timeout)
    try:
        apply_socket_options(sock, plan)
    except BaseException:
        sock.close()
        raise
    return sock


@attrs.frozen
class TCPTransport:
    """Unencrypted TCP, the way memcached is usually reached inside a private network.

    Args:
        no_delay: set ``TCP_NODELAY`` so small requests leave at once (memcached
            traffic is request/response; Nagle's algorithm only adds latency).
        keepalive: ``True`` for :class:`Keepalive` defaults, a :class:`Keepalive`
            for your own timing, or ``False``/``None`` to leave keepalive off.

    Example:
        >>> TCPTransport(keepalive=True)
        TCPTransport(no_delay=True, keepalive=Keepalive(idle=60, interval=10, count=5))
    """

    no_delay: bool = True
    keepalive: Keepalive | None = attrs.field(default=None, converter=_to_keepalive)

    def plan(self, address: Address) -> ConnectionPlan:
        """How to open a connection to ``address``: plain, with this transport's options."""
        return ConnectionPlan(address, no_delay=self.no_delay, keepalive=self.keepalive)

    def connect(
        self, address: Address, *, connect_timeout: float | None, timeout: float | None
    ) -> socket.socket:
        """Open a connected socket; see :meth:`Transport.connect`."""
        sock = open_socket(self.plan(address), connect_timeout=connect_timeout)
        sock.settimeout(timeout)
        return sock
