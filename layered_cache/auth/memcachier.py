"""MemCachier's ASCII authentication: a ``set`` of the password under the username."""

from __future__ import annotations

from typing import Any

import attrs

from layered_cache.auth._base import (
    HandshakeFlow,
    expect_stored,
    refuse_unsafe_password,
    refuse_unsafe_username,
)

__all__ = ["MemCachierAuth"]

_SCHEME = "MemCachierAuth"


def _check_username(_instance: object, _attribute: object, value: Any) -> None:
    refuse_unsafe_username(_SCHEME, value)


def _check_password(_instance: object, _attribute: object, value: Any) -> None:
    refuse_unsafe_password(_SCHEME, value)


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
    _request: bytes = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        secret = self.password.encode("utf-8")
        request = b"set %s 0 0 %d\r\n%s\r\n" % (self.username.encode("utf-8"), len(secret), secret)
        object.__setattr__(self, "_request", request)

    def handshake(self, server: str) -> HandshakeFlow:
        """Send the credentials as a ``set``; anything but ``STORED`` is a refusal."""
        reply = yield self._request
        expect_stored(reply, scheme=_SCHEME, server=server, username=self.username)
