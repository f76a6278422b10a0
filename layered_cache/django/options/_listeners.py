"""``OPTIONS["listeners"]`` and ``OPTIONS["on_write_failure"]``: objects from dotted paths.

A listener may be given as a callable, an instance, or a dotted path to
either; a path to a class is instantiated with no arguments (so
``"layered_cache.observability.prometheus.PrometheusListener"`` works as it
is). Resolved once, when the ``CACHES`` entry is parsed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.utils.module_loading import import_string

from layered_cache.django.options._errors import E_VALUE, CacheConfigurationError

__all__ = ["resolve_listener_options"]


def _resolve(value: object, option: str) -> Any:
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            raise CacheConfigurationError(
                f"OPTIONS[{option!r}]: cannot import {value!r} ({exc}); give a dotted path "
                "to a callable or a class, or the object itself",
                check_id=E_VALUE,
            ) from exc
        if isinstance(value, type):
            value = value()
    if not callable(value):
        raise CacheConfigurationError(
            f"OPTIONS[{option!r}] takes callables (functions, instances with __call__, "
            f"or dotted paths to them), not {type(value).__name__}",
            check_id=E_VALUE,
        )
    return value


def resolve_listener_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with ``listeners`` and ``on_write_failure`` resolved to objects.

    Raises:
        CacheConfigurationError: a path does not import, or names no callable.
    """
    resolved = dict(options)
    listeners = resolved.get("listeners")
    if listeners is not None:
        if isinstance(listeners, str) or not isinstance(listeners, Iterable):
            raise CacheConfigurationError(
                "OPTIONS['listeners'] must be a list of callables or dotted paths, "
                f"not {type(listeners).__name__}",
                check_id=E_VALUE,
            )
        resolved["listeners"] = [_resolve(item, "listeners") for item in listeners]
    hook = resolved.get("on_write_failure")
    if hook is not None:
        resolved["on_write_failure"] = _resolve(hook, "on_write_failure")
    return resolved
