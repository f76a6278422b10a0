"""The panel itself: it subclasses django-debug-toolbar's Panel (see the package docstring)."""

from __future__ import annotations

from typing import Any

import attrs
from django.core.exceptions import ImproperlyConfigured
from django.utils.html import format_html, format_html_join

try:
    from debug_toolbar.panels import Panel
except ImproperlyConfigured as exc:  # debug_toolbar reads Django's settings on import
    raise ImportError(
        f"layered_cache.django.toolbar.panel is imported by Django once its settings are set: {exc}"
    ) from exc

from layered_cache.django.toolbar import set_current_panel
from layered_cache.observability.events import HerdEvent, OperationEvent

__all__ = ["LayeredCachePanel"]


def _details(event: object) -> str:
    """The event's fields other than the server, never its key names."""
    kind = type(event)
    if not attrs.has(kind):
        return ""
    return ", ".join(
        f"{field.name}={getattr(event, field.name)!r}"
        for field in attrs.fields(kind)
        if field.name not in {"server", "key_names"}
    )


def _ms(value: float) -> str:
    # (format_html escapes its arguments into strings first: numbers are formatted here.)
    return f"{value:.3f}"


class LayeredCachePanel(Panel):
    """Exchanges, per-server timings, herd and connection events of the request."""

    is_async = True
    nav_title = "layered_cache"
    title = "layered_cache: exchanges with memcached"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[object] = []

    def enable_instrumentation(self) -> None:
        """Start collecting this request's events (:class:`ToolbarListener` hands them over)."""
        set_current_panel(self)

    def disable_instrumentation(self) -> None:
        """Stop collecting."""
        set_current_panel(None)

    def record(self, event: object) -> None:
        """Keep ``event`` for the panel (listeners run inline: a list append)."""
        self.events.append(event)

    def generate_stats(self, request: Any, response: Any) -> None:
        """Summarize the events into JSON-friendly stats (the toolbar stores them)."""
        operations = []
        servers: dict[str, dict[str, Any]] = {}
        herd = []
        other = []
        for event in self.events:
            if isinstance(event, OperationEvent):
                keys = ", ".join(event.key_names) if event.key_names is not None else ""
                operations.append(
                    {
                        "operation": event.operation,
                        "server": event.server,
                        "keys": event.keys,
                        "key_names": keys,
                        "hits": event.hits,
                        "misses": event.misses,
                        "ms": event.duration * 1000,
                        "error": event.error or "",
                    }
                )
                totals = servers.setdefault(
                    event.server, {"calls": 0, "hits": 0, "misses": 0, "errors": 0, "ms": 0.0}
                )
                totals["calls"] += 1
                totals["hits"] += event.hits
                totals["misses"] += event.misses
                totals["errors"] += event.error is not None
                totals["ms"] += event.duration * 1000
            elif isinstance(event, HerdEvent):
                herd.append(
                    {"kind": event.kind, "server": event.server, "waited_ms": event.waited * 1000}
                )
            else:
                other.append(
                    {
                        "event": type(event).__name__,
                        "server": getattr(event, "server", ""),
                        "details": _details(event),
                    }
                )
        self.record_stats(  # type: ignore[no-untyped-call]
            {
                "operations": operations,
                "servers": [{"server": name, **totals} for name, totals in servers.items()],
                "herd": herd,
                "other": other,
                "total_ms": sum(op["ms"] for op in operations),
            }
        )

    @property
    def nav_subtitle(self) -> str:
        """``"N exchanges in X ms"``."""
        stats = self.get_stats()  # type: ignore[no-untyped-call]
        count = len(stats.get("operations", []))
        return f"{count} exchange{'s' if count != 1 else ''} in {stats.get('total_ms', 0):.2f} ms"

    @property
    def content(self) -> str:
        """The panel's tables, as HTML (every value escaped)."""
        stats = self.get_stats()  # type: ignore[no-untyped-call]
        servers = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (s["server"], s["calls"], s["hits"], s["misses"], s["errors"], _ms(s["ms"]))
                for s in stats.get("servers", [])
            ),
        )
        operations = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    o["operation"],
                    o["server"],
                    o["keys"],
                    o["key_names"],
                    o["hits"],
                    o["misses"],
                    _ms(o["ms"]),
                    o["error"],
                )
                for o in stats.get("operations", [])
            ),
        )
        herd = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((h["kind"], h["server"], _ms(h["waited_ms"])) for h in stats.get("herd", [])),
        )
        other = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((o["event"], o["server"], o["details"]) for o in stats.get("other", [])),
        )
        return format_html(
            '<h4>Servers</h4><table class="layered-cache-servers"><thead><tr><th>Server</th>'
            "<th>Exchanges</th><th>Hits</th><th>Misses</th><th>Errors</th><th>Time (ms)</th>"
            "</tr></thead><tbody>{}</tbody></table>"
            '<h4>Exchanges</h4><table class="layered-cache-operations"><thead><tr>'
            "<th>Operation</th><th>Server</th><th>Keys</th><th>Key names</th><th>Hits</th>"
            "<th>Misses</th><th>Time (ms)</th><th>Error</th></tr></thead><tbody>{}</tbody></table>"
            '<h4>Herd</h4><table class="layered-cache-herd"><thead><tr><th>Event</th>'
            "<th>Server</th><th>Waited (ms)</th></tr></thead><tbody>{}</tbody></table>"
            '<h4>Connections and health</h4><table class="layered-cache-other"><thead><tr>'
            "<th>Event</th><th>Server</th><th>Details</th></tr></thead><tbody>{}</tbody></table>",
            servers,
            operations,
            herd,
            other,
        )
