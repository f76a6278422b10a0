"""A django-debug-toolbar panel of what layered_cache did during a request.

django-debug-toolbar's own cache panel shows the sync cache methods a view
called. :class:`~layered_cache.django.toolbar.panel.LayeredCachePanel` shows
what went over the wire, from the clients' events: every exchange (async calls
included), timings per server, ``get_or_set`` herd decisions, connections,
health changes and write failures. Keys are shown only if the cache was built
with ``include_keys``.

Enable it with the toolbar's settings and the cache's listener::

    DEBUG_TOOLBAR_PANELS = [
        # ... the toolbar's default panels ...
        "layered_cache.django.toolbar.panel.LayeredCachePanel",
    ]
    CACHES = {
        "default": {
            "BACKEND": "layered_cache.django.MemcacheCache",
            "LOCATION": "127.0.0.1:11211",
            "OPTIONS": {"listeners": ["layered_cache.django.toolbar.ToolbarListener"]},
        }
    }

The listener lives here, apart from the panel, so that a ``CACHES`` entry
naming it never imports django-debug-toolbar (which needs Django's settings
to import). It does nothing (one context-local lookup per event) unless a
request with the toolbar enabled runs in the same thread or task.
"""

from __future__ import annotations

from typing import Any

from asgiref.local import Local

__all__ = ["ToolbarListener", "current_panel", "set_current_panel"]

# Per thread and per task, like the toolbar's own cache panel.
_current = Local()


def current_panel() -> Any:
    """The panel collecting for the request running in this thread or task, or None."""
    return getattr(_current, "panel", None)


def set_current_panel(panel: Any) -> None:
    """Make ``panel`` (or None) the one collecting in this thread or task."""
    _current.panel = panel


class ToolbarListener:
    """A listener that hands each event to the current request's panel, if any."""

    def __call__(self, event: object) -> None:
        """Record ``event`` in the current request's panel (nothing outside such a request)."""
        panel = current_panel()
        if panel is not None:
            panel.record(event)

    def __repr__(self) -> str:
        return "ToolbarListener()"
