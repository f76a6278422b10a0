"""A project's own subclass of the backend (checked like the backend itself)."""

from layered_cache.django import MemcacheCache


class MyCache(MemcacheCache):
    """A subclass, as projects write to add methods."""
