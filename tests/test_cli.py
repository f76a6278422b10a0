"""The ``layered-cache`` command against real memcached: check and stats, success and each failure.

Most tests call :func:`layered_cache.cli.main` in-process (output through
``capsys``); a few run ``python -m layered_cache`` and the installed console
script as real subprocesses.
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

import pytest

from layered_cache import CacheConnectionError, ServerUnavailableError, __version__
from layered_cache.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, classify_error, main
from tests.servers import LOOPBACK, MemcachedProcess, MemCachierGateway, TLSMaterial

CREDENTIAL_VARS = (
    "MEMCACHE_SERVERS",
    "MEMCACHIER_SERVERS",
    "MEMCACHE_USERNAME",
    "MEMCACHIER_USERNAME",
    "MEMCACHE_PASSWORD",
    "MEMCACHIER_PASSWORD",
    "NO_COLOR",
)

OK_LINE = re.compile(
    r"^OK    (?P<server>\S+) +version (?P<version>\S+)  "
    r"connect \d+\.\d\d ms  latency \d+\.\d\d ms$"
)

Run = Callable[..., tuple[int, str, str]]


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own MEMCACHE_*/MEMCACHIER_* settings must not leak into the tests.

    Standard input is not a terminal either (not even under ``pytest -s``), so
    nothing ever waits for a password to be typed.
    """
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO())


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*argv)`` -> ``(exit status, stdout, stderr)`` of an in-process ``main``."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _fail_line(out: str, server: str, kind: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(lines) == 1, out
    assert re.match(rf"^FAIL  {re.escape(server)}  {kind}: ", lines[0]), lines[0]
    return lines[0]


# -- check: success ---------------------------------------------------------------------


def test_check_tcp(run: Run, fresh_memcached: MemcachedProcess) -> None:
    # A server of its own, so that its counters show exactly what the check did.
    code, out, err = run("check", fresh_memcached.address)
    assert code == EXIT_OK
    assert err == ""
    match = OK_LINE.match(out.rstrip("\n"))
    assert match, out
    assert match["server"] == fresh_memcached.address
    assert "\x1b[" not in out  # no colors when stdout is not a terminal
    stats = fresh_memcached.stats()
    assert match["version"] == stats["version"]
    assert (stats["cmd_set"], stats["get_hits"], stats["delete_hits"]) == ("1", "3", "1")
    assert stats["curr_items"] == "0"  # the check value was deleted again


def test_check_json_with_json_serializer(run: Run, memcached: MemcachedProcess) -> None:
    code, out, _ = run("check", "--json", "--serializer", "json", memcached.address)
    assert code == EXIT_OK
    [result] = json.loads(out)
    assert result["server"] == memcached.address
    assert result["ok"] is True
    assert result["version"].startswith("1.6")
    assert result["connect_ms"] > 0
    assert result["latency_ms"] > 0
    assert result["kind"] is None
    assert result["reason"] is None


def test_check_tls_with_ca_file(
    run: Run, tls_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    code, out, _ = run("check", "--ca-file", tls_material.ca_file, tls_memcached.address)
    assert code == EXIT_OK
    assert OK_LINE.match(out.rstrip("\n")), out


def test_check_mutual_tls(
    run: Run, mtls_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    code, out, _ = run(
        "check",
        "--tls",
        "--ca-file",
        tls_material.ca_file,
        "--cert-file",
        tls_material.client_cert_file,
        "--key-file",
        tls_material.client_key_file,
        mtls_memcached.address,
    )
    assert code == EXIT_OK
    assert OK_LINE.match(out.rstrip("\n")), out


def test_check_memcachier_entirely_from_environment(
    run: Run, memcachier: MemCachierGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Heroku's add-on variables only: servers, credentials, and MemCachier auth implied.
    monkeypatch.setenv("MEMCACHIER_SERVERS", memcachier.address)
    monkeypatch.setenv("MEMCACHIER_USERNAME", memcachier.username)
    monkeypatch.setenv("MEMCACHIER_PASSWORD", memcachier.password)
    code, out, err = run("check")
    assert code == EXIT_OK, out + err
    assert OK_LINE.match(out.rstrip("\n")), out
    assert memcachier.handshakes == 1
    assert memcachier.password not in out + err


def test_check_ascii_auth(
    run: Run, ascii_auth_memcached: MemcachedProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    username, password = ascii_auth_memcached.credentials or ("", "")
    monkeypatch.setenv("CACHE_SECRET", password)
    code, out, err = run(
        "check",
        "--auth",
        "ascii",
        "--username",
        username,
        "--password-env",
        "CACHE_SECRET",
        ascii_auth_memcached.address,
    )
    assert code == EXIT_OK, out + err
    assert OK_LINE.match(out.rstrip("\n")), out
    assert password not in out + err


def test_memcache_variables_win_over_memcachier_ones(
    run: Run,
    ascii_auth_memcached: MemcachedProcess,
    fresh_memcached: MemcachedProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    username, password = ascii_auth_memcached.credentials or ("", "")
    fresh_memcached.kill()
    monkeypatch.setenv("MEMCACHE_SERVERS", ascii_auth_memcached.address)
    monkeypatch.setenv("MEMCACHIER_SERVERS", fresh_memcached.address)
    monkeypatch.setenv("MEMCACHE_USERNAME", username)
    monkeypatch.setenv("MEMCACHIER_USERNAME", "someone-else")
    monkeypatch.setenv("MEMCACHE_PASSWORD", password)
    monkeypatch.setenv("MEMCACHIER_PASSWORD", "not-the-password")
    code, out, err = run("check", "--auth", "ascii")
    assert code == EXIT_OK, out + err
    assert ascii_auth_memcached.address in out


def test_environment_families_are_never_mixed(
    run: Run,
    fresh_memcached: MemcachedProcess,
    memcached: MemcachedProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # MEMCACHE_SERVERS is set, so the MEMCACHIER_* credentials are not read:
    # no MemCachier handshake ("set user ...", which memcached would store).
    monkeypatch.setenv("MEMCACHE_SERVERS", fresh_memcached.address)
    monkeypatch.setenv("MEMCACHIER_SERVERS", memcached.address)
    monkeypatch.setenv("MEMCACHIER_USERNAME", "heroku-user")
    monkeypatch.setenv("MEMCACHIER_PASSWORD", "heroku-password")
    code, out, _ = run("check")
    assert code == EXIT_OK, out
    assert fresh_memcached.address in out
    assert fresh_memcached.stats()["curr_items"] == "0"
    # A MEMCACHE_* credential alone hides MEMCACHIER_SERVERS, and says so.
    monkeypatch.delenv("MEMCACHE_SERVERS")
    monkeypatch.setenv("MEMCACHE_USERNAME", "user")
    code, out, err = run("check")
    assert code == EXIT_USAGE
    assert "MEMCACHIER_SERVERS is not read because MEMCACHE_* variables are set" in err


def test_password_without_user_name(
    run: Run, memcached: MemcachedProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMCACHE_PASSWORD", "lonely-secret")
    code, out, err = run("check", "--environment-credentials", memcached.address)
    assert code == EXIT_USAGE
    assert "--auth memcachier needs a user name: --username NAME or MEMCACHE_USERNAME" in err
    assert "lonely-secret" not in out + err


def test_auth_none_ignores_credentials_in_environment(
    run: Run, fresh_memcached: MemcachedProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    memcached = fresh_memcached
    monkeypatch.setenv("MEMCACHE_USERNAME", "user")
    monkeypatch.setenv("MEMCACHE_PASSWORD", "secret")
    code, out, _ = run("check", "--auth", "none", memcached.address)
    assert code == EXIT_OK, out
    assert memcached.stats()["curr_items"] == "0"


def test_environment_credentials_are_not_sent_to_servers_from_the_command_line(
    run: Run, fresh_memcached: MemcachedProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    memcached = fresh_memcached
    monkeypatch.setenv("MEMCACHIER_USERNAME", "prod-user")
    monkeypatch.setenv("MEMCACHIER_PASSWORD", "prod-secret")
    # The credentials were exported for MemCachier's servers, not for this one: a
    # MemCachier handshake ("set prod-user ...") would make plain memcached store the
    # password as an item, readable by anyone.
    code, out, err = run("check", memcached.address)
    assert code == EXIT_OK, out
    assert memcached.stats()["curr_items"] == "0"
    assert memcached.command(b"get prod-user\r\n") == b"END\r\n"
    assert (
        "note: MEMCACHIER_USERNAME and MEMCACHIER_PASSWORD are set but not used: the servers "
        "come from the command line, not MEMCACHIER_SERVERS" in err
    )
    assert "--auth SCHEME (or --environment-credentials)" in err
    assert "prod-secret" not in out + err
    # Asked for explicitly, they are used (and plain memcached shows why that is unwise).
    code, out, err = run("check", "--environment-credentials", memcached.address)
    assert code == EXIT_OK, out
    assert "note:" not in err
    assert memcached.stats()["curr_items"] == "1"


def test_password_prompt_when_interactive(
    run: Run, ascii_auth_memcached: MemcachedProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    username, password = ascii_auth_memcached.credentials or ("", "")
    prompts: list[str] = []

    def getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return password

    monkeypatch.setattr("getpass.getpass", getpass)
    monkeypatch.setattr("sys.stdin", _Terminal())
    args = ("check", "--auth", "ascii", "--username", username, ascii_auth_memcached.address)
    code, out, err = run(*args)
    assert code == EXIT_OK, out + err
    assert prompts == [f"Password for {username}: "]
    assert password not in out + err


def test_several_servers_one_line_each_in_order(
    run: Run, three_memcached: list[MemcachedProcess], fresh_memcached: MemcachedProcess
) -> None:
    first, second, third = three_memcached
    fresh_memcached.kill()
    # A comma list, options between servers, and a duplicate (checked once).
    code, out, _ = run(
        "check",
        f"{first.address},{fresh_memcached.address}",
        "--timeout",
        "1",
        second.address,
        third.address,
        first.address,
    )
    assert code == EXIT_FAILED
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["OK", first.address],
        ["FAIL", fresh_memcached.address],
        ["OK", second.address],
        ["OK", third.address],
    ]
    # Columns line up.
    assert len({line.index(" version") for line in lines if line.startswith("OK")}) == 1


# -- check: each kind of failure --------------------------------------------------------


def test_dns_failure(run: Run) -> None:
    server = "no-such-host.invalid:11211"
    code, out, err = run("check", server)
    assert code == EXIT_FAILED
    assert "cannot resolve" in _fail_line(out, server, "dns")
    assert "Traceback" not in out + err


def test_refused(run: Run, fresh_memcached: MemcachedProcess) -> None:
    fresh_memcached.kill()
    code, out, _ = run("check", fresh_memcached.address)
    assert code == EXIT_FAILED
    assert "refused the connection" in _fail_line(out, fresh_memcached.address, "refused")


def test_timeout(run: Run, fresh_memcached: MemcachedProcess) -> None:
    fresh_memcached.pause()
    try:
        code, out, _ = run("check", "--timeout", "0.2", fresh_memcached.address)
    finally:
        fresh_memcached.resume()
    assert code == EXIT_FAILED
    assert "within 0.2 s" in _fail_line(out, fresh_memcached.address, "timeout")


def test_tls_untrusted_certificate(
    run: Run, tls_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    code, out, _ = run("check", "--ca-file", tls_material.untrusted_ca_file, tls_memcached.address)
    assert code == EXIT_FAILED
    line = _fail_line(out, tls_memcached.address, "tls")
    assert "certificate" in line
    assert "--ca-file" in line  # the hint


def test_tls_wrong_hostname_then_server_hostname(
    run: Run, wrong_host_tls_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    address = wrong_host_tls_memcached.address
    code, out, _ = run("check", "--ca-file", tls_material.ca_file, address)
    assert code == EXIT_FAILED
    assert "--server-hostname" in _fail_line(out, address, "tls")
    code, out, _ = run(
        "check",
        "--ca-file",
        tls_material.ca_file,
        "--server-hostname",
        TLSMaterial.WRONG_HOSTNAME,
        address,
    )
    assert code == EXIT_OK, out


def test_mutual_tls_without_client_certificate(
    run: Run, mtls_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    code, out, _ = run("check", "--ca-file", tls_material.ca_file, mtls_memcached.address)
    assert code == EXIT_FAILED
    assert "--cert-file" in _fail_line(out, mtls_memcached.address, "tls")


def test_no_verify_warns_and_connects(run: Run, wrong_host_tls_memcached: MemcachedProcess) -> None:
    code, out, err = run("check", "--no-verify", wrong_host_tls_memcached.address)
    assert code == EXIT_OK, out
    assert err.startswith("layered-cache: warning: TLS without full verification")


def test_plain_tcp_to_a_tls_server_and_tls_to_a_plain_one(
    run: Run, tls_memcached: MemcachedProcess, memcached: MemcachedProcess
) -> None:
    code, out, _ = run("check", tls_memcached.address)
    assert code == EXIT_FAILED
    assert "--tls" in out
    code, out, _ = run("check", "--tls", memcached.address)
    assert code == EXIT_FAILED
    _fail_line(out, memcached.address, "tls")


@pytest.mark.parametrize("scheme", ["memcachier", "ascii"])
def test_wrong_password(
    run: Run,
    scheme: str,
    memcachier: MemCachierGateway,
    ascii_auth_memcached: MemcachedProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if scheme == "memcachier":
        address, username = memcachier.address, memcachier.username
    else:
        address, username = ascii_auth_memcached.address, ascii_auth_memcached.username or ""
    monkeypatch.setenv("MEMCACHE_USERNAME", username)
    monkeypatch.setenv("MEMCACHE_PASSWORD", "wrong-Pa55word")
    code, out, err = run("check", "--auth", scheme, address)
    assert code == EXIT_FAILED
    line = _fail_line(out, address, "auth")
    assert f"user {username!r}" in line
    assert "wrong-Pa55word" not in out + err
    code, out, err = run("check", "--json", "--auth", scheme, address)
    assert json.loads(out)[0]["kind"] == "auth"
    assert "wrong-Pa55word" not in out + err


def test_server_requiring_auth_without_credentials(
    run: Run, ascii_auth_memcached: MemcachedProcess
) -> None:
    code, out, _ = run("check", ascii_auth_memcached.address)
    assert code == EXIT_FAILED
    assert "--auth" in _fail_line(out, ascii_auth_memcached.address, "auth")


# -- usage and configuration errors -----------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check"], "no servers"),
        (["check", "host:port:x"], "needs brackets"),
        (["check", "host:99999"], "port must be"),
        (["check", "--timeout", "0", "h"], "--timeout"),
        (["check", "--connect-timeout", "soon", "h"], "--connect-timeout"),
        (["check", "--auth", "ascii", "h"], "needs a user name"),
        (["check", "--auth", "none", "--username", "u", "h"], "--auth none"),
        (["check", "--username", "u", "h"], "no password for user 'u'"),
        (["check", "--auth", "kerberos", "h"], "invalid choice"),
        (["check", "--cert-file", "/no/such.pem", "h"], "no such file"),
        (["check", "--tls", "--key-file", __file__, "h"], "key_file needs cert_file"),
        (["check", "--bogus", "h"], "unrecognized arguments: --bogus"),
        (["stats", "--group", "reset", "h"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_usage_errors_exit_2(run: Run, argv: list[str], message: str) -> None:
    code, out, err = run(*argv)
    assert code == EXIT_USAGE
    assert out == ""
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--password", "hunter2-secret", "h"],
        ["check", "--password=hunter2-secret", "h"],
        ["check", "--passwd=hunter2-secret", "h"],
        ["check", "--username", "u", "--password-env", "hunter2-secret", "h"],
    ],
)
def test_password_on_the_command_line_is_refused_and_not_echoed(run: Run, argv: list[str]) -> None:
    code, out, err = run(*argv)
    assert code == EXIT_USAGE
    assert "hunter2-secret" not in out + err


def test_help_and_version(run: Run) -> None:
    code, out, _ = run("--version")
    assert code == EXIT_OK
    assert out.startswith(f"layered-cache {__version__} (pymemcache ")
    code, out, _ = run("check", "--help")
    assert code == EXIT_OK
    for option in ("--tls", "--ca-file", "--auth", "--password-env", "--serializer", "--timeout"):
        assert option in out
    assert "--password " not in out.replace("--password-env", "")


# -- stats ------------------------------------------------------------------------------


def test_stats_table(run: Run, three_memcached: list[MemcachedProcess]) -> None:
    first, second, _ = three_memcached
    for server in (first, second):
        server.command(b"stats reset\r\n")  # hit counters from earlier tests
    first.command(b"set cli-k 0 0 1\r\nx\r\n")
    first.command(b"get cli-k\r\n", until=b"END\r\n")
    first.command(b"get cli-missing\r\n", until=b"END\r\n")
    code, out, err = run("stats", first.address, second.address)
    assert code == EXIT_OK, err
    summary, table = out.split("\n\n")
    # The summary first: hit ratio and evictions, as each server sees them.
    top, *servers = summary.splitlines()
    assert top.split() == ["server", "hit", "ratio", "gets", "evictions", "items"]
    assert servers[0].split()[:4] == [first.address, "50.0%", "2", "0"]
    assert servers[1].split()[:2] == [second.address, "-"]
    header, *rows = table.splitlines()
    assert header.split() == ["stat", first.address, second.address]
    names = [row.split()[0] for row in rows]
    assert names == sorted(names)
    assert rows[names.index("pid")].split() == ["pid", str(first.pid), str(second.pid)]
    version = first.stats()["version"]
    assert rows[names.index("version")].split() == ["version", version, version]
    # Columns line up under their header.
    column = header.index(second.address)
    assert all(row[column - 2 : column] == "  " for row in rows)


def test_stats_group_as_json(run: Run, memcached: MemcachedProcess) -> None:
    code, out, _ = run("stats", "--group", "settings", "--json", memcached.address)
    assert code == EXIT_OK
    report = json.loads(out)
    assert list(report) == [memcached.address]
    assert report[memcached.address]["tcpport"] == memcached.port
    assert report[memcached.address]["item_size_max"] == 1024 * 1024


def test_stats_with_a_dead_server(
    run: Run, memcached: MemcachedProcess, fresh_memcached: MemcachedProcess
) -> None:
    fresh_memcached.kill()
    code, out, err = run("stats", "--json", memcached.address, fresh_memcached.address)
    assert code == EXIT_FAILED
    assert list(json.loads(out)) == [memcached.address]
    assert f"FAIL  {fresh_memcached.address}  refused: " in err


def test_stats_with_auth_from_environment(
    run: Run, memcachier: MemCachierGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMCACHE_SERVERS", memcachier.address)
    monkeypatch.setenv("MEMCACHE_USERNAME", memcachier.username)
    monkeypatch.setenv("MEMCACHE_PASSWORD", memcachier.password)
    code, out, err = run("stats")
    assert code == EXIT_OK, err
    assert memcachier.address in out.split("\n\n")[1].splitlines()[0]
    assert memcachier.password not in out + err


# -- presentation -----------------------------------------------------------------------


def test_colors_only_on_a_terminal(
    memcached: MemcachedProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)  # here: pytest resets it after fixtures
    monkeypatch.setenv("TERM", "xterm")
    assert main(["check", memcached.address]) == EXIT_OK
    assert terminal.getvalue().startswith("\x1b[32mOK  \x1b[0m  ")
    monkeypatch.setenv("NO_COLOR", "1")
    terminal.seek(0)
    terminal.truncate()
    assert main(["check", memcached.address]) == EXIT_OK
    assert "\x1b[" not in terminal.getvalue()


def test_classify_other_errors() -> None:
    unavailable = ServerUnavailableError("h:1 is being skipped", server="h:1")
    assert classify_error(unavailable) == ("unavailable", "h:1 is being skipped")
    dropped = CacheConnectionError("h:1 closed the connection", server="h:1")
    assert classify_error(dropped) == ("connection", "h:1 closed the connection")
    assert classify_error(RuntimeError("boom\nagain")) == ("error", "RuntimeError: boom again")


# -- real processes ---------------------------------------------------------------------


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    env.update(extra)
    return env


def _console_script() -> Path:
    script = Path(sys.executable).parent / "layered-cache"
    assert script.exists(), (
        f"{script} is missing: install the package (pip install -e .) to get the console script"
    )
    return script


def test_python_m_layered_cache(memcached: MemcachedProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "layered_cache", "check", memcached.address],
        capture_output=True,
        text=True,
        timeout=30,
        env=_subprocess_env(),
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert OK_LINE.match(done.stdout.rstrip("\n")), done.stdout
    assert done.stderr == ""


def test_console_script(
    memcached: MemcachedProcess, fresh_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    fresh_memcached.kill()
    done = subprocess.run(
        [str(_console_script()), "check", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        env=_subprocess_env(MEMCACHE_SERVERS=f"{memcached.address} {fresh_memcached.address}"),
        check=False,
    )
    assert done.returncode == EXIT_FAILED, done.stderr
    first, second = done.stdout.splitlines()
    assert OK_LINE.match(first), first
    assert second.startswith(f"FAIL  {fresh_memcached.address}  refused: ")
    assert done.stderr == ""  # nothing logged on top of the FAIL line, no traceback

    version = subprocess.run(
        [str(_console_script()), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert version.stdout.startswith(f"layered-cache {__version__} ")

    usage = subprocess.run(
        [str(_console_script()), "check", "--ca-file", tls_material.ca_file],
        capture_output=True,
        text=True,
        timeout=30,
        env=_subprocess_env(),
        check=False,
    )
    assert usage.returncode == EXIT_USAGE
    assert "no servers" in usage.stderr
    assert LOOPBACK not in usage.stdout
