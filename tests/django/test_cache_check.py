"""``manage.py cache_check`` against real memcached: every layered_cache cache, each server.

Most tests run the command in-process with Django's ``call_command`` (which skips the
system checks); a few run ``python -m django cache_check`` as a real subprocess with a
settings module of their own, as a deployment script would.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test.utils import override_settings
from django_helpers import BACKEND, ENV_VARS

from tests.servers import MemcachedProcess, MemCachierGateway, TLSMaterial

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
WRONG_PASSWORD = "wrong-Pa55word-never-shown"

OK_LINE = re.compile(
    r"^OK    (?P<alias>\S+) +(?P<server>\S+) +version (?P<version>\S+)  "
    r"connect \d+\.\d\d ms  latency \d+\.\d\d ms$"
)

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run() -> Run:
    """``run(*args, caches=CACHES)`` -> ``(exit status, stdout, stderr)`` of ``call_command``."""

    def run(*args: str, caches: dict[str, dict[str, Any]]) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with override_settings(CACHES=caches):
            try:
                call_command("cache_check", *args, stdout=out, stderr=err)
            except CommandError as exc:
                err.write(f"CommandError: {exc}\n")
                return exc.returncode, out.getvalue(), err.getvalue()
        return 0, out.getvalue(), err.getvalue()

    return run


def tcp(server: MemcachedProcess, **options: Any) -> dict[str, Any]:
    return {"BACKEND": BACKEND, "LOCATION": server.address, "OPTIONS": options}


def tls(server: MemcachedProcess, ca_file: str, **options: Any) -> dict[str, Any]:
    return tcp(server, transport="tls", ca_file=ca_file, **options)


def memcachier_entry(gateway: MemCachierGateway, password: str | None = None) -> dict[str, Any]:
    return {
        "BACKEND": BACKEND,
        "LOCATION": gateway.address,
        "USERNAME": gateway.username,
        "PASSWORD": gateway.password if password is None else password,
    }


def fail_line(out: str, alias: str, server: str, kind: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(lines) == 1, out
    assert re.match(rf"^FAIL  {re.escape(alias)} +{re.escape(server)}  {kind}: ", lines[0]), lines
    return lines[0]


# -- success ------------------------------------------------------------------------------


def test_tcp_tls_and_memcachier_caches_pass_and_others_are_skipped(
    run: Run,
    memcached: MemcachedProcess,
    tls_memcached: MemcachedProcess,
    tls_material: TLSMaterial,
    memcachier: MemCachierGateway,
) -> None:
    caches = {
        "default": tcp(memcached),
        "tls": tls(tls_memcached, tls_material.ca_file),
        "memcachier": memcachier_entry(memcachier),
        "local": {"BACKEND": LOCMEM},
    }
    code, out, err = run(caches=caches)
    assert code == 0, out + err
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 4, out
    matches = [OK_LINE.match(line) for line in lines[:3]]
    assert all(matches), out
    assert [(m["alias"], m["server"]) for m in matches if m] == [
        ("default", memcached.address),
        ("tls", tls_memcached.address),
        ("memcachier", memcachier.address),
    ]
    assert {m["version"] for m in matches if m} == {memcached.stats()["version"]}
    assert lines[3] == f"SKIP  local       {LOCMEM} is not a layered_cache backend"
    # Columns line up.
    assert len({line.index(" version") for line in lines[:3]}) == 1
    assert memcachier.handshakes == 1
    assert memcachier.password not in out
    # The check value was deleted again; application keys were not touched.
    assert memcached.stats()["curr_items"] == "0"


def test_json(
    run: Run, three_memcached: list[MemcachedProcess], tls_memcached: MemcachedProcess
) -> None:
    caches = {
        "default": {"BACKEND": BACKEND, "LOCATION": [s.address for s in three_memcached]},
        "local": {"BACKEND": LOCMEM},
    }
    code, out, _ = run("--json", caches=caches)
    assert code == 0
    report = json.loads(out)
    assert list(report) == ["default", "local"]
    default = report["default"]
    assert default["backend"] == BACKEND
    assert default["ok"] is True
    assert (default["skipped"], default["error"]) == (None, None)
    assert [server["server"] for server in default["servers"]] == [
        s.address for s in three_memcached
    ]
    assert all(server["ok"] and server["latency_ms"] > 0 for server in default["servers"])
    assert report["local"] == {
        "backend": LOCMEM,
        "ok": None,
        "skipped": f"{LOCMEM} is not a layered_cache backend",
        "error": None,
        "discovery": None,
        "servers": [],
    }


def test_only_the_aliases_given_and_a_subclass_of_the_backend(
    run: Run, memcached: MemcachedProcess, fresh_memcached: MemcachedProcess
) -> None:
    fresh_memcached.kill()  # "broken" is not asked for, so it does not matter
    caches = {
        "default": {"BACKEND": LOCMEM},
        "mine": {**tcp(memcached), "BACKEND": "djproject.backends.MyCache"},
        "broken": tcp(fresh_memcached),
    }
    code, out, _ = run("mine", "mine", caches=caches)
    assert code == 0, out
    [line] = out.splitlines()
    match = OK_LINE.match(line)
    assert match, line
    assert (match["alias"], match["server"]) == ("mine", memcached.address)


def test_unknown_alias_contacts_nothing(run: Run, fresh_memcached: MemcachedProcess) -> None:
    caches = {"default": tcp(fresh_memcached)}
    before = fresh_memcached.stats()["total_connections"]
    code, out, err = run("default", "sessions", caches=caches)
    assert code == 2
    assert out == ""
    assert "unknown cache alias 'sessions'; CACHES has 'default'" in err
    # Only the harness's own stats connections.
    assert int(fresh_memcached.stats()["total_connections"]) == int(before) + 1


def test_nothing_to_check(run: Run) -> None:
    code, out, err = run(caches={"default": {"BACKEND": LOCMEM}})
    assert code == 0
    assert out.startswith("SKIP  default  ")
    assert "nothing was checked" in err


# -- each kind of failure -----------------------------------------------------------------


def test_refused_and_the_other_servers_still_checked(
    run: Run, memcached: MemcachedProcess, fresh_memcached: MemcachedProcess
) -> None:
    fresh_memcached.kill()
    caches = {
        "default": {"BACKEND": BACKEND, "LOCATION": [fresh_memcached.address, memcached.address]}
    }
    code, out, err = run(caches=caches)
    assert code == 1
    first, second = out.splitlines()
    assert "refused the connection" in fail_line(
        first, "default", fresh_memcached.address, "refused"
    )
    assert OK_LINE.match(second), second
    assert err.splitlines()[-1] == "CommandError: 1 of 2 server(s) failed the check"


def test_fail_silent_mode_does_not_hide_a_failure(
    run: Run, fresh_memcached: MemcachedProcess
) -> None:
    fresh_memcached.kill()
    code, out, _ = run(caches={"default": tcp(fresh_memcached, ignore_exceptions=True)})
    assert code == 1
    fail_line(out, "default", fresh_memcached.address, "refused")


def test_tls_untrusted_certificate(
    run: Run, tls_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    caches = {"default": tls(tls_memcached, tls_material.untrusted_ca_file)}
    code, out, _ = run(caches=caches)
    assert code == 1
    line = fail_line(out, "default", tls_memcached.address, "tls")
    assert "certificate" in line
    assert '[hint: OPTIONS["ca_file"] trusts the authority' in line


def test_plain_tcp_to_a_tls_server(run: Run, tls_memcached: MemcachedProcess) -> None:
    code, out, _ = run(caches={"default": tcp(tls_memcached, timeout=1)})
    assert code == 1
    assert '"transport": "tls"' in out


@pytest.mark.parametrize("scheme", ["memcachier", "ascii"])
def test_wrong_password(
    run: Run,
    scheme: str,
    memcachier: MemCachierGateway,
    ascii_auth_memcached: MemcachedProcess,
) -> None:
    if scheme == "memcachier":
        entry = memcachier_entry(memcachier, WRONG_PASSWORD)
        address, username = memcachier.address, memcachier.username
    else:
        address, username = ascii_auth_memcached.address, ascii_auth_memcached.username or ""
        entry = {
            **tcp(ascii_auth_memcached, auth="ascii"),
            "USERNAME": username,
            "PASSWORD": WRONG_PASSWORD,
        }
    code, out, err = run(caches={"default": entry})
    assert code == 1
    line = fail_line(out, "default", address, "auth")
    assert f"user {username!r}" in line
    assert "check the username and password" in line
    code, json_out, json_err = run("--json", caches={"default": entry})
    assert code == 1
    assert json.loads(json_out)["default"]["servers"][0]["kind"] == "auth"
    assert WRONG_PASSWORD not in out + err + json_out + json_err


def test_server_requiring_auth_without_credentials(
    run: Run, ascii_auth_memcached: MemcachedProcess
) -> None:
    code, out, _ = run(caches={"default": tcp(ascii_auth_memcached)})
    assert code == 1
    line = fail_line(out, "default", ascii_auth_memcached.address, "auth")
    assert 'set OPTIONS["auth"]' in line


def test_timeout_on_a_paused_server(run: Run, fresh_memcached: MemcachedProcess) -> None:
    fresh_memcached.pause()
    try:
        code, out, _ = run(caches={"default": tcp(fresh_memcached, timeout=0.2)})
    finally:
        fresh_memcached.resume()
    assert code == 1
    line = fail_line(out, "default", fresh_memcached.address, "timeout")
    assert "within 0.2 s" in line
    assert 'OPTIONS["timeout"]' in line


def test_a_wrong_configuration_is_reported_without_its_password(
    run: Run, memcached: MemcachedProcess
) -> None:
    caches = {
        "default": tcp(memcached),
        "broken": {**tcp(memcached, transport="tsl"), "PASSWORD": WRONG_PASSWORD},
    }
    code, out, err = run("--json", caches=caches)
    assert code == 1
    report = json.loads(out)
    assert report["default"]["ok"] is True
    assert report["broken"]["ok"] is False
    assert "unknown transport 'tsl'" in report["broken"]["error"]
    assert report["broken"]["error"].endswith("[layered_cache.E001]")
    assert "the configuration of 'broken' is wrong" in err
    code, out, err = run(caches=caches)
    assert out.splitlines()[1].startswith('FAIL  broken   config: OPTIONS["transport"]')
    assert WRONG_PASSWORD not in out + err


# -- manage.py in a real process ----------------------------------------------------------


@pytest.fixture
def manage(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``manage(caches, *args)``: ``python -m django cache_check *args`` with those CACHES."""
    env = {key: value for key, value in os.environ.items() if key not in ENV_VARS}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(HERE), str(ROOT)])

    def manage(caches: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "check_settings.py").write_text(
            f"from djproject.settings import *  # noqa: F403\n\nCACHES = {caches!r}\n"
        )
        return subprocess.run(
            [sys.executable, "-m", "django", "cache_check", "--settings", "check_settings", *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
            cwd=tmp_path,
        )

    return manage


def test_manage_py_success_failure_and_usage(
    manage: Callable[..., subprocess.CompletedProcess[str]],
    memcached: MemcachedProcess,
    fresh_memcached: MemcachedProcess,
    memcachier: MemCachierGateway,
) -> None:
    fresh_memcached.kill()
    caches = {
        "default": tcp(memcached),
        "memcachier": memcachier_entry(memcachier),
        "gone": tcp(fresh_memcached),
    }
    done = manage(caches, "default", "memcachier")
    assert done.returncode == 0, done.stderr
    assert [OK_LINE.match(line) is not None for line in done.stdout.splitlines()] == [True, True]
    assert done.stderr == ""

    done = manage(caches)
    assert done.returncode == 1
    assert done.stdout.splitlines()[2].startswith(f"FAIL  gone        {fresh_memcached.address}")
    # Django prints the CommandError; the client's own warnings are not repeated.
    assert done.stderr == "CommandError: 1 of 3 server(s) failed the check\n"
    assert memcachier.password not in done.stdout + done.stderr

    done = manage(caches, "nope")
    assert done.returncode == 2
    assert "unknown cache alias 'nope'" in done.stderr


def test_manage_py_runs_the_cache_system_checks_first(
    manage: Callable[..., subprocess.CompletedProcess[str]], memcached: MemcachedProcess
) -> None:
    caches = {"default": {**tcp(memcached, transport="tsl"), "PASSWORD": WRONG_PASSWORD}}
    done = manage(caches)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "layered_cache.E001" in done.stderr
    assert "SystemCheckError" in done.stderr
    assert WRONG_PASSWORD not in done.stderr
