"""Settings of the test project. Tests replace ``CACHES`` with ``override_settings``."""

SECRET_KEY = "layered-cache-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
INSTALLED_APPS = ["layered_cache.django", "djproject"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "djproject.urls"
# In memory: only the async pickling tests use it (tests/django/test_django_async.py).
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}
