"""A project's own subclass of Django's cache middleware (the feature checks see through it)."""

from django.middleware.cache import CacheMiddleware


class MyCacheMiddleware(CacheMiddleware):
    """A subclass, as projects write to change what is cached."""
