"""Key placement over several servers: rendezvous hashing, exactly as pymemcache's HashClient.

Same nodes, same hash (murmur3, seed 0), same tie-break: a key lands on the
server Django's ``PyMemcacheCache`` would pick for the same server list, so
both can share a fleet. Adding a fourth server to three moves about a quarter
of the keys, the minimum.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from pymemcache.client.rendezvous import RendezvousHash

__all__ = ["Ring"]

_PLACEMENT_CACHE_SIZE = 1 << 16


class Ring:
    """Maps a key to the name of the server that holds it."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        hasher = RendezvousHash(nodes=list(names))
        # Hashing is pure Python (several microseconds a key); hot keys repeat,
        # so remembering recent placements removes most of that cost.
        self.node_for: Callable[[object], str] = functools.lru_cache(maxsize=_PLACEMENT_CACHE_SIZE)(
            hasher.get_node
        )
