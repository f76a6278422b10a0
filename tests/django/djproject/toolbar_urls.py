"""URLs of the debug-toolbar tests: views calling the cache, sync and async, and the toolbar."""

from __future__ import annotations

from debug_toolbar.toolbar import debug_toolbar_urls
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.urls import path

PAGE = "<html><body><p>{}</p></body></html>"


def sync_view(request: HttpRequest) -> HttpResponse:
    """Five user calls: set, get (hit), get (miss), get_many (1 hit, 2 misses), get_or_set."""
    cache.set("greeting", "hello")
    cache.get("greeting")
    cache.get("nobody-here")
    cache.get_many(["greeting", "absent-1", "absent-2"])
    cache.get_or_set("computed", lambda: 42)
    return HttpResponse(PAGE.format("sync"))


async def async_view(request: HttpRequest) -> HttpResponse:
    """Async calls, which the stock cache panel does not see."""
    await cache.aset("async-key", 1)
    await cache.aget("async-key")
    await cache.aget_or_set("async-computed", 7)
    return HttpResponse(PAGE.format("async"))


urlpatterns = [
    path("sync/", sync_view),
    path("async/", async_view),
    *debug_toolbar_urls(),
]
