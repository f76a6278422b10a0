"""memcached's own ASCII authentication (``memcached -Y authfile``, memcached 1.5.15+)."""

from __future__ import annotations

import attrs

from layered_cache.auth._base import (
    HandshakeFlow,
    password_check,
    set_handshake,
    set_request,
    username_check,
)

__all__ = ["AsciiAuth"]

_SCHEME = "AsciiAuth"


# The authfile holds "user:password" lines, so a colon cannot be part of a name.
_check_username = username_check(_SCHEME, extra=":")
_check_password = password_check(_SCHEME, forbidden="\r\n\x00")


@attrs.frozen
class AsciiAuth:
    """Authenticate against memcached started with ``-Y authfile``.

    Every new connection first sends ``set <key> 0 0 <n>\\r\\n<username> <password>\\r\\n``;
    memcached answers ``STORED`` when the pair is in its authfile and refuses
    every other command until then. The key is ignored by the server.

    Args:
        username: a user from the authfile (no whitespace, control characters or ``:``).
        password: that user's password; never shown in a repr, error or log.
        key: the key the ``set`` names (any valid key; memcached ignores it).

    Raises:
        ConfigurationError: the username or password could break the protocol.

    Example:
        >>> AsciiAuth("app", "secret")
        AsciiAuth(username='app', key='auth')
    """

    username: str = attrs.field(validator=_check_username)
    password: str = attrs.field(repr=False, validator=_check_password)
    key: str = attrs.field(default="auth", validator=_check_username)
    #: The handshake's ``set`` request (it holds the password: never shown).
    set_request: bytes = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        data = f"{self.username} {self.password}".encode()
        object.__setattr__(self, "set_request", set_request(self.key, data))

    def handshake(self, server: str) -> HandshakeFlow:
        """Send ``username password`` as a ``set``; anything but ``STORED`` is a refusal."""
        return set_handshake(self, scheme=_SCHEME, server=server)
