"""A small shop that uses Django's cache features on layered_cache (see the docs' guide)."""
