"""memcached's protocol with no I/O in it: request encoders and one incremental reply parser.

Every I/O engine (the sync :class:`~layered_cache.Client` is one) speaks
memcached through this package and only this package:
:mod:`~layered_cache.protocol.requests` builds the bytes of each command,
:class:`~layered_cache.protocol.replies.ReplyParser` turns the bytes that
come back into replies. Neither imports :mod:`socket` or
:mod:`asyncio`; they are tested byte by byte without a server.
"""

from layered_cache.protocol import replies
from layered_cache.protocol.replies import *  # noqa: F403 - the parser and its replies

__all__ = replies.__all__
