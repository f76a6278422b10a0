"""The diagnosis both checkers share: results, hints in each front end's terms, a probe.

The checkers' own output is tested end to end in ``tests/test_cli.py`` and
``tests/django/test_cache_check.py``; here, what they get from
:mod:`layered_cache.diagnostics`.
"""

from __future__ import annotations

import pytest

from layered_cache import CacheTimeoutError, cli
from layered_cache.diagnostics import (
    HINTS,
    CheckResult,
    Hint,
    Probe,
    check_server,
    classify_error,
    hint_for,
)
from layered_cache.serialization import JSONSerializer
from layered_cache.transport import TCPTransport
from tests.servers import MemcachedProcess, free_port


def test_the_cli_reexports_the_diagnosis() -> None:
    assert cli.check_server is check_server
    assert cli.CheckResult is CheckResult
    assert cli.classify_error is classify_error


@pytest.mark.parametrize("hint", HINTS, ids=lambda hint: f"{hint.kind}:{hint.clues[0]}")
def test_every_hint_speaks_both_vocabularies(hint: Hint) -> None:
    command_line, settings = hint.text("command line"), hint.text("settings")
    assert "--" in command_line or "drop the TLS options" in command_line
    assert "OPTIONS" in settings or '"transport"' in settings


@pytest.mark.parametrize(
    ("kind", "reason", "expected"),
    [
        ("tls", "h:1: TLS failed: hostname mismatch", "--server-hostname NAME"),
        ("tls", "h:1: TLS failed: IP address mismatch", "--server-hostname NAME"),
        ("auth", "h:1 refused the credentials", "check the user name"),
        ("auth", "h:1: CLIENT_ERROR unauthenticated", "the server requires authentication"),
        ("refused", "h:1 refused the connection", None),
    ],
)
def test_hint_for_matches_the_first_rule(kind: str, reason: str, expected: str | None) -> None:
    found = hint_for(kind, reason)
    assert found is None if expected is None else found is not None and found.startswith(expected)


def test_hints_in_settings_terms() -> None:
    assert hint_for("tls", "self-signed certificate", "settings") == (
        'OPTIONS["ca_file"] trusts the authority that signed the certificate'
    )


def test_summary_of_a_failure_with_a_hint() -> None:
    result = Probe(terms="settings").failure(
        ("h", 1), CacheTimeoutError("h:1 did not answer", server="h:1")
    )
    assert result.server == "h:1"
    assert result.summary() == (
        "timeout: h:1 did not answer [hint: the server is stalled or a firewall drops "
        'packets; see OPTIONS["timeout"]]'
    )


def test_probe_checks_and_reads_stats(memcached: MemcachedProcess) -> None:
    probe = Probe(serializer=JSONSerializer(), timeout=1.0)
    address = (memcached.host, memcached.port)
    result = probe.check(address)
    assert result.ok, result
    assert result.server == memcached.address
    assert result.summary().startswith(f"version {result.version}  connect ")
    assert "pid" in probe.stats(address)


def test_check_server_reports_a_refused_connection() -> None:
    port = free_port()
    result = check_server(
        ("127.0.0.1", port),
        transport=TCPTransport(),
        auth=Probe().auth,
        serializer=Probe().serializer,
        connect_timeout=1.0,
        timeout=1.0,
    )
    assert (result.ok, result.kind, result.hint) == (False, "refused", None)
    assert result.to_json()["reason"] == f"127.0.0.1:{port} refused the connection"
