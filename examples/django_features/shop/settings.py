"""Settings of the example shop: sessions, cache_page, {% cache %} and an async view on memcached.

Run it with ``MEMCACHE_SERVERS=127.0.0.1:11211 python manage.py runserver`` after
``python manage.py migrate``. ``shop.settings_per_site`` adds the per-site cache.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-shop-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.sessions",
    "layered_cache.django",  # checks CACHES at start-up and in manage.py check
    "shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "shop.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
USE_TZ = True

CACHES = {
    "default": {
        "BACKEND": "layered_cache.django.MemcacheCache",
        "LOCATION": os.environ.get("MEMCACHE_SERVERS", "127.0.0.1:11211"),
        "OPTIONS": {
            # Pages (cache_page, the cache middleware) are HttpResponse objects: only
            # pickle holds them. Signed with SECRET_KEY, a pickle from anyone else is
            # never loaded.
            "serializer": "signed_pickle",
            # A memcached outage reads as misses and lost writes, not as errors.
            "ignore_exceptions": True,
            "connect_timeout": 0.5,
            "timeout": 0.5,
            # A server marked dead is tried again after 5 s (default 60).
            "dead_timeout": 5,
        },
    },
}

# Sessions in the database, read through the cache: they survive a memcached outage.
# "django.contrib.sessions.backends.cache" keeps them in memcached alone.
SESSION_ENGINE = os.environ.get("SESSION_ENGINE", "django.contrib.sessions.backends.cached_db")

# Warnings and errors (a failed request's traceback, a cache outage) to the console.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
