"""DNSDiscovery: the servers' names, resolved again and again (nodes replaced behind a name)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import attrs

from layered_cache.discovery._base import Call, DiscoveryFlow, Found, check_interval
from layered_cache.errors import DiscoveryError
from layered_cache.transport import format_address
from layered_cache.transport._base import Address

__all__ = ["DNSDiscovery", "Resolver", "resolve_with_getaddrinfo"]

#: ``resolver(host, port)``: the addresses ``host`` has now, each an IP (the port
#: kept) or an ``(ip, port)`` pair.
Resolver = Callable[[str, int], Iterable[str | tuple[str, int]]]


def resolve_with_getaddrinfo(host: str, port: int) -> list[str]:
    """The system resolver: every address :func:`socket.getaddrinfo` gives for TCP, once each."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@attrs.frozen
class DNSDiscovery:
    """Resolve each server name every ``interval`` seconds; every address found is a node.

    For nodes replaced behind a stable name (a new machine, a new address),
    and for names that resolve to several nodes (a headless Kubernetes
    service). Servers given as IP addresses or UNIX sockets stay as they are.
    A lookup in which any name fails to resolve (or resolves to nothing)
    keeps the last good list: a DNS hiccup never empties the ring.

    Nodes are named by address on the hash ring. With TLS, certificates are
    checked against the name the transport is given
    (``TLSTransport(server_hostname=...)``), since the nodes are addresses.

    Args:
        interval: seconds between two lookups (default 30); 0 looks up only
            when ``refresh()`` is called.
        resolver: ``resolver(host, port)`` returning the addresses ``host``
            has now, each an IP address (the port kept) or an ``(ip, port)``
            pair (default: :func:`resolve_with_getaddrinfo`). It may block:
            the sync client calls it on its refresh thread, the asyncio client
            in a worker thread.

    Raises:
        ConfigurationError: an argument is invalid.
    """

    interval: float = attrs.field(default=30.0, converter=check_interval)
    resolver: Resolver = attrs.field(default=resolve_with_getaddrinfo, eq=False)

    def lookup(self, seeds: tuple[Address, ...]) -> DiscoveryFlow:
        """Resolve every named seed (one :class:`~layered_cache.discovery.Call` each)."""
        nodes: list[Address] = []
        names = []
        for seed in seeds:
            if isinstance(seed, str) or _is_ip(seed[0]):
                nodes.append(seed)
                continue
            host, port = seed
            names.append(format_address(seed))
            try:
                found: Any = yield Call(partial(self.resolver, host, port))
                addresses = [_address(item, port) for item in found]
            except Exception as exc:
                raise DiscoveryError(
                    f"DNS discovery could not resolve {host!r}: {exc}",
                    endpoints=tuple(format_address(s) for s in seeds),
                ) from exc
            if not addresses:
                raise DiscoveryError(
                    f"DNS discovery: {host!r} resolved to no address",
                    endpoints=tuple(format_address(s) for s in seeds),
                )
            nodes.extend(addresses)
        return Found(tuple(dict.fromkeys(nodes)), None, ", ".join(names) or "no names")


def _address(item: object, port: int) -> Address:
    if isinstance(item, str) and item:
        return (item, port)
    if (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], int)
    ):
        return (item[0], item[1])
    raise TypeError(f"the resolver gave {item!r}; it must give IP strings or (ip, port) pairs")
