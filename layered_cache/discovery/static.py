"""StaticDiscovery: the servers given are the nodes, for good (the default)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import attrs

from layered_cache.discovery._base import Found
from layered_cache.transport import format_address
from layered_cache.transport._base import Address

__all__ = ["StaticDiscovery"]


@attrs.frozen
class StaticDiscovery:
    """The servers passed to the client are its nodes; nothing is ever looked up.

    The default, and the behaviour of every client without ``discovery``.
    """

    @property
    def interval(self) -> float:
        """Always 0 (there is nothing to refresh)."""
        return 0.0

    def lookup(self, seeds: tuple[Address, ...]) -> Generator[Any, Any, Found]:
        """The seeds themselves (no step)."""
        yield from ()  # a flow like every lookup, with no step
        return Found(seeds, None, ", ".join(format_address(seed) for seed in seeds))
