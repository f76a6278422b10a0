"""The example shop with Django's per-site cache: every anonymous GET page cached for a minute."""

from shop.settings import *  # noqa: F403
from shop.settings import MIDDLEWARE

MIDDLEWARE = [
    "django.middleware.cache.UpdateCacheMiddleware",  # first
    *MIDDLEWARE,
    "django.middleware.cache.FetchFromCacheMiddleware",  # last
]
CACHE_MIDDLEWARE_ALIAS = "default"
CACHE_MIDDLEWARE_SECONDS = 60
CACHE_MIDDLEWARE_KEY_PREFIX = "shop"
