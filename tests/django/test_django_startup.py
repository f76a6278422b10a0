"""With ``layered_cache.django`` installed, a process with a wrong ``CACHES`` refuses to start.

Each test starts a fresh Python, as a web server starts a worker: Django is set up by
``get_wsgi_application()`` from a settings module written for the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django_helpers import BACKEND, ENV_VARS

from layered_cache.django.checks import check_cache

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-SECRET-value"
BOOT = "from django.core.wsgi import get_wsgi_application; get_wsgi_application(); print('booted')"


def boot(
    tmp_path: Path, caches: dict[str, Any], script: str | list[str] = BOOT, **settings: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (default: start a worker; a list: arguments of python) on settings with
    ``caches``; say how it went."""
    lines = [
        'SECRET_KEY = "startup-tests-only"',
        "INSTALLED_APPS = " + repr(settings.pop("INSTALLED_APPS", ["layered_cache.django"])),
        f"CACHES = {caches!r}",
        *(f"{name} = {value!r}" for name, value in settings.items()),
    ]
    (tmp_path / "startup_settings.py").write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if name not in ENV_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    env["DJANGO_SETTINGS_MODULE"] = "startup_settings"
    return subprocess.run(
        [sys.executable, *(["-c", script] if isinstance(script, str) else script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def entry(**options: Any) -> dict[str, Any]:
    return {"BACKEND": BACKEND, "LOCATION": "127.0.0.1:11211", "OPTIONS": options}


def test_a_good_configuration_boots(tmp_path: Path) -> None:
    result = boot(tmp_path, {"default": entry(serializer="json")})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "booted\n"


def test_a_wrong_entry_stops_the_worker_with_the_checks_message(tmp_path: Path) -> None:
    bad = entry(transport="ssl", username="app", password=SECRET)
    result = boot(tmp_path, {"default": entry(), "sessions": bad})
    assert result.returncode == 1
    assert "booted" not in result.stdout
    [expected] = check_cache("sessions", bad)
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"layered_cache.django.options.CacheConfigurationError: {expected}")
    assert last.startswith(
        "layered_cache.django.options.CacheConfigurationError: CACHES['sessions']: "
        "(layered_cache.E001) OPTIONS[\"transport\"]: unknown transport 'ssl' "
        "(did you mean 'tls'?)"
    )
    assert SECRET not in result.stderr


def test_every_wrong_entry_is_named(tmp_path: Path) -> None:
    caches = {
        "default": {**entry(), "LOCATION": ""},
        "other": entry(timeout=0),
        "fine": entry(),
    }
    result = boot(tmp_path, caches)
    assert result.returncode == 1
    assert "CacheConfigurationError: CACHES['default']: (layered_cache.E005) no memcached" in (
        result.stderr
    )
    assert "\nCACHES['other']: (layered_cache.E006) " in result.stderr
    assert "CACHES['fine']" not in result.stderr


def test_warnings_do_not_stop_a_worker(tmp_path: Path) -> None:
    # JSON behind the cache middleware is a warning for manage.py check, not a boot failure.
    middleware = ["django.middleware.cache.UpdateCacheMiddleware"]
    result = boot(tmp_path, {"default": entry(serializer="json")}, MIDDLEWARE=middleware)
    assert result.returncode == 0, result.stderr


def test_the_validation_can_be_turned_off(tmp_path: Path) -> None:
    # E.g. collectstatic in an image build, where the environment naming the servers is absent.
    caches = {"default": {"BACKEND": BACKEND}}
    assert boot(tmp_path, caches).returncode == 1
    result = boot(tmp_path, caches, LAYERED_CACHE_VALIDATE_AT_STARTUP=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("installed", [[], ["django.contrib.contenttypes"]])
def test_without_the_app_the_worker_boots_and_the_cache_fails_when_used(
    tmp_path: Path, installed: list[str]
) -> None:
    caches = {"default": entry(transport="ssl")}
    result = boot(tmp_path, caches, INSTALLED_APPS=installed)
    assert result.returncode == 0, result.stderr
    script = BOOT + "; from django.core.cache import cache; cache.get('k')"
    used = boot(tmp_path, caches, script, INSTALLED_APPS=installed)
    assert used.stdout == "booted\n"
    assert "unknown transport 'ssl' (did you mean 'tls'?)" in used.stderr.splitlines()[-1]


def test_manage_py_check_reports_what_the_worker_would_stop_on(tmp_path: Path) -> None:
    bad = entry(transport="ssl")
    stopped = boot(tmp_path, {"default": bad})
    checked = boot(tmp_path, {"default": bad}, ["-m", "django", "check"])
    assert stopped.returncode == 1
    line = stopped.stderr.strip().splitlines()[-1].split(": ", 1)[1]
    assert checked.returncode == 1
    assert "SystemCheckError: System check identified some issues" in checked.stderr
    assert line in checked.stderr
