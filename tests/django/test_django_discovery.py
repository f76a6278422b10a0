"""``OPTIONS["discovery"]``: a Django cache whose LOCATION is a configuration endpoint."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test.utils import override_settings
from django_helpers import BACKEND

from layered_cache.discovery import DNSDiscovery, ElastiCacheDiscovery, MemorystoreDiscovery
from layered_cache.django import CacheConfigurationError
from layered_cache.django.options import parse_cache_config
from tests.cluster_endpoint import ConfigEndpoint
from tests.servers import MemcachedProcess


@pytest.fixture
def endpoint(three_memcached: list[MemcachedProcess]) -> Iterator[ConfigEndpoint]:
    with ConfigEndpoint(three_memcached[:2]) as gateway:
        yield gateway


def entry(location: str, **options: Any) -> dict[str, Any]:
    return {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": options}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("elasticache", ElastiCacheDiscovery()),
        ({"class": "elasticache", "interval": 30}, ElastiCacheDiscovery(interval=30)),
        ("layered_cache.discovery.MemorystoreDiscovery", MemorystoreDiscovery()),
        (MemorystoreDiscovery(interval=5), MemorystoreDiscovery(interval=5)),
        ({"class": "dns", "interval": 10}, DNSDiscovery(interval=10)),
    ],
)
def test_the_forms_of_the_option(spec: object, expected: object) -> None:
    config = parse_cache_config(
        "mycluster.abc123.cfg.use1.cache.amazonaws.com:11211",
        {"OPTIONS": {"discovery": spec}},
        environ={},
    )
    assert config.discovery == expected
    assert config.servers == ("mycluster.abc123.cfg.use1.cache.amazonaws.com:11211",)


def test_a_flat_interval_goes_to_the_strategy() -> None:
    config = parse_cache_config(
        "cfg:11211", {"OPTIONS": {"discovery": "elasticache", "interval": 15}}, environ={}
    )
    assert config.discovery == ElastiCacheDiscovery(interval=15)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("aws", "unknown discovery strategy 'aws'"),
        ({"class": "elasticache", "interval": -5}, "interval must be a number"),
        ({"class": "memorystore", "use": "name"}, "use must be"),
    ],
)
def test_mistakes_are_named(spec: object, problem: str) -> None:
    with pytest.raises(CacheConfigurationError, match=problem):
        parse_cache_config("cfg:11211", {"OPTIONS": {"discovery": spec}}, environ={})


def test_the_cache_follows_the_cluster(
    endpoint: ConfigEndpoint, three_memcached: list[MemcachedProcess]
) -> None:
    a, b, c = three_memcached
    settings = {
        "default": entry(endpoint.address, discovery={"class": "elasticache", "interval": 0.2})
    }
    with override_settings(CACHES=settings):
        cache = caches["default"]
        deadline = time.monotonic() + 5
        while sorted(cache.client.servers) != sorted([a.address, b.address]):
            assert time.monotonic() < deadline, cache.client.discovery
            time.sleep(0.02)
        cache.set("greeting", "hello")
        assert cache.get("greeting") == "hello"
        endpoint.add_node(c)

        async def follow() -> Any:
            await cache.aset("async", 1)
            while len(cache.async_client.servers) != 3:
                assert time.monotonic() < deadline + 5, cache.async_client.discovery
                await asyncio.sleep(0.02)
            return await cache.aget("async")

        assert asyncio.run(follow()) in (1, None)  # None: its key moved to the new node
        while len(cache.client.servers) != 3:
            assert time.monotonic() < deadline + 5
            time.sleep(0.02)


def run_check(*args: str, caches: dict[str, Any]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with override_settings(CACHES=caches):
        try:
            call_command("cache_check", *args, stdout=out, stderr=err)
        except CommandError as exc:
            return exc.returncode, out.getvalue(), err.getvalue() + str(exc)
    return 0, out.getvalue(), err.getvalue()


def test_cache_check_shows_the_discovered_nodes(
    endpoint: ConfigEndpoint, three_memcached: list[MemcachedProcess]
) -> None:
    a, b, _ = three_memcached
    settings = {"default": entry(endpoint.address, discovery="elasticache")}
    code, out, _ = run_check(caches=settings)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"NODES  default  {endpoint.address}  2 node(s) from ")
    assert f"(version {endpoint.version})" in lines[0]
    assert [line.split()[2] for line in lines[1:]] == [a.address, b.address]
    assert all(line.startswith("OK") for line in lines[1:])

    code, out, _ = run_check("--json", caches=settings)
    report = json.loads(out)["default"]
    assert report["discovery"]["nodes"] == [a.address, b.address]
    assert report["discovery"]["version"] == endpoint.version
    assert [server["server"] for server in report["servers"]] == [a.address, b.address]


def test_cache_check_reports_an_endpoint_that_does_not_answer(endpoint: ConfigEndpoint) -> None:
    endpoint.go_down()
    settings = {"default": entry(endpoint.address, discovery="elasticache")}
    code, out, err = run_check(caches=settings)
    assert code == 1
    assert out.startswith(f"FAIL  default  {endpoint.address}  discovery failed: ")
    assert "discovery found no node list for 'default'" in err
