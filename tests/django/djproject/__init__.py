"""A minimal Django project whose views use the cache, driven by Django's test client."""
