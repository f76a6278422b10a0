"""Transports: how bytes travel to memcached (plain TCP or TLS).

Example:
    >>> from layered_cache.transport import TLSTransport
    >>> TLSTransport(server_hostname="cache.internal").server_hostname
    'cache.internal'
"""

from layered_cache.transport._base import Address, Transport, format_address
from layered_cache.transport.tcp import ConnectionPlan, Keepalive, TCPTransport
from layered_cache.transport.tls import InsecureTLSWarning, TLSTransport

__all__ = [
    "Address",
    "ConnectionPlan",
    "InsecureTLSWarning",
    "Keepalive",
    "TCPTransport",
    "TLSTransport",
    "Transport",
    "format_address",
]
