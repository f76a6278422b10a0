"""Authenticators: what a new connection proves before its first command.

Example:
    >>> from layered_cache.auth import MemCachierAuth
    >>> MemCachierAuth("user", "secret")
    MemCachierAuth(username='user')
"""

from layered_cache.auth._base import Authenticator, HandshakeFlow
from layered_cache.auth.ascii import AsciiAuth
from layered_cache.auth.memcachier import MemCachierAuth
from layered_cache.auth.none import NoAuth

__all__ = ["AsciiAuth", "Authenticator", "HandshakeFlow", "MemCachierAuth", "NoAuth"]
