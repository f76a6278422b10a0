"""Django app config: installing ``"layered_cache.django"`` enables the system checks."""

from django.apps import AppConfig

__all__ = ["LayeredCacheConfig"]


class LayeredCacheConfig(AppConfig):
    """Registers :mod:`layered_cache.django.checks` when Django starts.

    Add ``"layered_cache.django"`` to ``INSTALLED_APPS``; the app has no
    models, views or migrations.
    """

    name = "layered_cache.django"
    label = "layered_cache"
    verbose_name = "layered_cache"

    def ready(self) -> None:
        """Import the checks module, whose import registers the checks."""
        from layered_cache.django import checks  # noqa: F401, PLC0415
