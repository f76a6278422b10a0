"""``layered-cache check --discovery``: the nodes behind a configuration endpoint, each checked."""

from __future__ import annotations

import json

import pytest

from layered_cache.cli import EXIT_FAILED, EXIT_OK, main
from tests.cluster_endpoint import ConfigEndpoint
from tests.servers import MemcachedProcess


def test_check_lists_and_checks_the_nodes(
    endpoint: ConfigEndpoint,
    three_memcached: list[MemcachedProcess],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b, _ = three_memcached
    assert main(["check", "--discovery", "elasticache", endpoint.address]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"NODES  {endpoint.address}  2 node(s) from {endpoint.address}")
    assert [line.split()[1] for line in lines[1:]] == [a.address, b.address]
    assert main(["check", "--json", "--discovery", "memorystore", endpoint.address]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert [result["server"] for result in report] == [a.address, b.address]


def test_an_endpoint_that_does_not_answer_fails_the_check(
    endpoint: ConfigEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.go_down()
    assert main(["check", "--discovery", "elasticache", endpoint.address]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert out.startswith(f"FAIL  {endpoint.address}  discovery failed: ElastiCache discovery")
    assert main(["check", "--json", "--discovery", "elasticache", endpoint.address]) == EXIT_FAILED
    assert json.loads(capsys.readouterr().out)["discovery"]["ok"] is False
