"""Django management commands of ``layered_cache.django`` (found through ``INSTALLED_APPS``)."""
