"""Settings of the test project. Tests replace ``CACHES`` with ``override_settings``."""

SECRET_KEY = "layered-cache-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
INSTALLED_APPS = ["layered_cache.django"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "djproject.urls"
DATABASES: dict[str, dict[str, str]] = {}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}
