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


FRAGMENTS = ("orders", "messages", "recommendations")


def dashboard(request: HttpRequest, user_id: int) -> JsonResponse:
    """Per-user fragments, each cached in the user's namespace (rendered once per generation)."""
    space = cache.namespace(f"user:{user_id}")
    return JsonResponse(
        {
            name: space.get_or_set(name, lambda name=name: f"{name} #{next(_renders)}", 300)
            for name in FRAGMENTS
        }
    )


def dashboard_changed(request: HttpRequest, user_id: int) -> JsonResponse:
    """Something about the user changed: every fragment of theirs is stale at once."""
    cache.namespace(f"user:{user_id}").clear()
    return JsonResponse({"invalidated": user_id})


async def adashboard(request: HttpRequest, user_id: int) -> JsonResponse:
    """The async dashboard, on the same namespaces."""
    space = cache.namespace(f"user:{user_id}")
    return JsonResponse(
        {
            name: await space.aget_or_set(name, lambda name=name: f"{name} #{next(_renders)}", 300)
            for name in FRAGMENTS
        }
    )
