"""MemCachier's ASCII authentication: a ``set`` of the password under the username."""

from __future__ import annotations

import attrs

from layered_cache.auth._base import (
    HandshakeFlow,
    password_check,
    set_handshake,
    set_request,
    username_check,
)

__all__ = ["MemCachierAuth"]

_SCHEME = "MemCachierAuth"


_check_username = username_check(_SCHEME)
_check_password = password_check(_SCHEME)


@attrs.frozen
class MemCachierAuth:
    """Authenticate the way MemCachier's ASCII endpoint expects.

    Every new connection first sends ``set <username> 0 0 <length>\\r\\n<password>\\r\\n``
    and must get ``STORED`` back. The password is length-prefixed, so any
    characters are safe in it; the username must be a valid memcached key.

    Args:
        username: the MemCachier username (``MEMCACHIER_USERNAME`` on Heroku).
        password: the MemCachier password; never shown in a repr, error or log.

    Raises:
        ConfigurationError: the username could break the protocol, or the password is empty.

    Example:
        >>> MemCachierAuth("user", "secret")
        MemCachierAuth(username='user')
    """

    username: str = attrs.field(validator=_check_username)
    password: str = attrs.field(repr=False, validator=_check_password)
    #: The handshake's ``set`` request (it holds the password: never shown).
    set_request: bytes = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        request = set_request(self.username, self.password.encode("utf-8"))
        object.__setattr__(self, "set_request", request)

    def handshake(self, server: str) -> HandshakeFlow:
        """Send the credentials as a ``set``; anything but ``STORED`` is a refusal."""
        return set_handshake(self, scheme=_SCHEME, server=server)
