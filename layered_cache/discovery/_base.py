"""The discovery contract: where a client's node list comes from, and how often it is asked.

A discovery strategy does no I/O itself. :meth:`Discovery.lookup` returns a
*flow* (a generator, as an authenticator's handshake is): it yields the
steps it needs, an engine performs them and sends back the answers, and the
flow returns the node list it found (:class:`Found`). The sync
:class:`~layered_cache.Client` performs the steps on a background thread,
the :class:`~layered_cache.AsyncClient` on its event loop; the strategy is
the same object for both.

Steps:

- :class:`Ask`: open a connection to ``address`` (through the client's
  transport, authenticated by its authenticator), run ``conversation`` on
  it (it yields ``(request bytes, Expect kind)`` pairs and receives each
  reply, an :class:`~layered_cache.protocol.replies.ErrorReply` included), close it,
  and answer with what the conversation returned.
- :class:`Call`: call ``function`` (a blocking one, such as a DNS resolver)
  and answer with its result. The asyncio engine runs it in a worker thread,
  so the event loop never waits on it.

A failed step is thrown into the flow (a :class:`~layered_cache.LayeredCacheError`
for :class:`Ask`, whatever the function raised for :class:`Call`); the flow
may try another endpoint, or raise :class:`~layered_cache.errors.DiscoveryError`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, NamedTuple, Protocol, TypeAlias

from layered_cache.errors import ConfigurationError
from layered_cache.transport._base import Address

__all__ = [
    "Ask",
    "Call",
    "Conversation",
    "Discovery",
    "DiscoveryFlow",
    "Found",
    "check_interval",
]

#: Yields ``(request, Expect kind)`` pairs, receives each reply; returns the conversation's result.
Conversation: TypeAlias = Generator[tuple[bytes, int], Any, Any]


class Ask(NamedTuple):
    """Run ``conversation`` on a new connection to ``address``; answered with its result."""

    address: Address
    conversation: Conversation


class Call(NamedTuple):
    """Call ``function()`` (it may block); answered with its result."""

    function: Callable[[], Any]


class Found(NamedTuple):
    """What a lookup found.

    Attributes:
        nodes: the memcached nodes to spread keys over, in the order found.
        version: the configuration version the endpoint reported (None when
            the source has none, as DNS).
        source: where the list came from, for diagnostics (``host:port`` of the
            endpoint that answered, or the names resolved).
    """

    nodes: tuple[Address, ...]
    version: int | None
    source: str


#: A lookup: yields :class:`Ask` and :class:`Call` steps, returns :class:`Found`.
DiscoveryFlow: TypeAlias = Generator[Ask | Call, Any, Found]


class Discovery(Protocol):
    """Where a client's memcached nodes come from.

    The client is given *seeds* (its ``servers`` argument: a configuration
    endpoint, or names to resolve) and starts with them as its nodes. Every
    :attr:`interval` seconds, and soon after a node fails, it runs
    :meth:`lookup` in the background and, when the list changed, swaps its
    hash ring at once: connections to nodes that stay are kept, those to
    removed nodes are closed. A lookup that fails keeps the last good list.
    Cache calls never wait for a lookup.
    """

    @property
    def interval(self) -> float:
        """Seconds between two background lookups (0 means never; only ``refresh()`` looks)."""
        ...

    def lookup(self, seeds: tuple[Address, ...]) -> DiscoveryFlow:
        """Return the flow that finds the nodes, starting from ``seeds``."""
        ...


def check_interval(value: object) -> float:
    """``value`` as a float if it is a number of seconds >= 0, else raise ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigurationError(
            f"discovery interval must be a number of seconds >= 0 (0: never refresh in the "
            f"background), not {value!r}"
        )
    return float(value)
