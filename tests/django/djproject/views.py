"""Views that use the cache the ways applications do."""

from __future__ import annotations

import itertools

from django.core.cache import cache, caches
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import cache_page

_renders = itertools.count(1)

#: Every backend object the visits view used (tests check how many Django made).
seen_backends: list[object] = []


def visits(request: HttpRequest) -> JsonResponse:
    """Count requests with add + incr, and remember the last visitor with set."""
    cache.add("visits", 0, timeout=None)
    count = cache.incr("visits")
    previous = cache.get("last-visitor")
    cache.set("last-visitor", request.GET.get("name", "anonymous"))
    seen_backends.append(caches["default"])
    return JsonResponse({"visits": count, "previous": previous})


def profile(request: HttpRequest, user_id: int) -> JsonResponse:
    """An expensive lookup memoized with get_or_set (a dict value: pickled)."""
    data = cache.get_or_set(
        f"profile:{user_id}", lambda: {"id": user_id, "render": next(_renders)}, 60
    )
    return JsonResponse(data)


@cache_page(60)
def page(request: HttpRequest) -> HttpResponse:
    """A whole response cached by Django's cache middleware (a pickled HttpResponse)."""
    response = HttpResponse(f"render #{next(_renders)}")
    response.set_cookie("flavour", "chocolate")
    return response
