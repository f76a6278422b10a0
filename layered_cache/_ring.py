"""Key placement over several servers: rendezvous hashing, exactly as pymemcache's HashClient.

Same nodes, same hash (murmur3, seed 0, over ``"<node>-<key>"``), same
tie-break: a key lands on the server Django's ``PyMemcacheCache`` would pick
for the same server list, so both can share a fleet. Adding a fourth server to
three moves about a quarter of the keys, the minimum.

pymemcache hashes in pure Python (several microseconds per server per key);
here the same function runs in C (``mmh3``), and recent placements are
remembered, so hot keys cost a dictionary lookup.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import mmh3

__all__ = ["Ring", "murmur3"]

_PLACEMENT_CACHE_SIZE = 1 << 16


def murmur3(text: str) -> int:
    """pymemcache's ``murmur3_32(text)``, computed in C.

    pymemcache's pure-Python version hashes the low byte of each character
    (``ord(ch) & 0xFF``); encoding to Latin-1 gives exactly those bytes.
    """
    try:
        data = text.encode("latin-1")
    except UnicodeEncodeError:
        data = bytes(ord(ch) & 0xFF for ch in text)
    return mmh3.hash(data, 0, signed=False)


class Ring:
    """Maps a key to the name of the server that holds it."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.node_for: Callable[[object], str] = functools.lru_cache(maxsize=_PLACEMENT_CACHE_SIZE)(
            self._place
        )

    def _place(self, key: object) -> str:
        # Highest random weight wins; ties go to the greater name (as pymemcache does).
        best_score = -1
        winner = ""
        for name in self.names:
            score = murmur3(f"{name}-{key}")
            if score > best_score:
                best_score, winner = score, name
            elif score == best_score:
                winner = max(name, winner)
        return winner
