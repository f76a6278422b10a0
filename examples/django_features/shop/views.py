"""The example shop's views: one for each of Django's cache features."""

import itertools

from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_page, never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_POST

PRODUCTS = {"tea": "Green tea", "cup": "Tea cup", "pot": "Teapot"}

# How often each piece was computed, shown in the pages to make caching visible.
_pages = itertools.count(1)
_bestsellers = itertools.count(1)
_prices = itertools.count(1)


def bestsellers() -> list[str]:
    """Expensive to compute: the catalogue caches it as a template fragment."""
    return [f"{PRODUCTS['tea']} (computed #{next(_bestsellers)})"]


def catalogue(request: HttpRequest) -> HttpResponse:
    """A page rendered at every request, whose sidebar is a cached fragment ({% cache %})."""
    context = {"products": PRODUCTS, "page": next(_pages), "bestsellers": bestsellers}
    return render(request, "shop/catalogue.html", context)


@cache_page(60)
def prices(request: HttpRequest) -> JsonResponse:
    """A whole response cached for a minute (in CACHES["default"]: pickled)."""
    return JsonResponse({"tea": 4.5, "cup": 12, "pot": 30, "computed": next(_prices)})


@never_cache
@ensure_csrf_cookie
def cart(request: HttpRequest) -> JsonResponse:
    """What this visitor's session holds; never cached, since it differs per visitor."""
    return JsonResponse({"items": request.session.get("cart", [])})


@never_cache
@require_POST
def add_to_cart(request: HttpRequest, item: str) -> JsonResponse:
    """Put ``item`` in the session's cart."""
    if item not in PRODUCTS:
        raise Http404(item)
    request.session["cart"] = [*request.session.get("cart", []), item]
    return JsonResponse({"items": request.session["cart"]})


async def visits(request: HttpRequest) -> JsonResponse:
    """An async view: the cache's a* methods, awaited."""
    await cache.aadd("shop:visits", 0, timeout=None)
    count = await cache.aincr("shop:visits")
    return JsonResponse({"visits": count})
