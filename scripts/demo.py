"""A tour of layered_cache against local memcached servers this script starts and stops.

Run it with ``bash scripts/demo.sh`` (which sets everything up first). It starts,
on 127.0.0.1 only: a plain memcached, a TLS memcached (certificates made on the
fly), a memcached with ASCII authentication (``-Y``), and a small gateway that
speaks MemCachier's authentication in front of a memcached. Then it shows the
programmatic client with each strategy, the asyncio client, and the Django
backend configured the way a settings file would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from layered_cache import AsyncClient, AuthenticationError, Client, InvalidKeyError  # noqa: E402
from layered_cache.auth import AsciiAuth, MemCachierAuth  # noqa: E402
from layered_cache.observability import OperationEvent  # noqa: E402
from layered_cache.serialization import JSONSerializer  # noqa: E402
from layered_cache.transport import TLSTransport  # noqa: E402
from tests.servers import (  # noqa: E402
    MemcachedProcess,
    MemCachierGateway,
    ServerGroup,
    TLSMaterial,
    tls_server_args,
)


def say(text: str = "") -> None:
    print(text, flush=True)


def heading(text: str) -> None:
    say()
    say(f"== {text} " + "=" * max(0, 70 - len(text)))


class Servers(NamedTuple):
    plain: MemcachedProcess
    tls: MemcachedProcess
    ascii_auth: MemcachedProcess
    gateway: MemCachierGateway
    ca_file: str


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    group = ServerGroup()
    material = TLSMaterial()
    gateway = None
    try:
        plain = group.add(MemcachedProcess(name="plain")).start()
        tls = group.add(
            MemcachedProcess(
                tls_server_args(material.server_cert_file, material.server_key_file),
                ssl_context=material.client_context(),
                name="tls",
            )
        ).start()
        ascii_auth = group.add(
            MemcachedProcess(credentials=("demo-user", "demo-password"), name="ascii-auth")
        ).start()
        upstream = group.add(MemcachedProcess(name="behind-gateway")).start()
        gateway = MemCachierGateway(upstream, "memcachier-user", "memcachier-password")
        gateway.start()
        yield Servers(plain, tls, ascii_auth, gateway, material.ca_file)
    finally:
        if gateway is not None:
            gateway.stop()
        group.close()
        material.close()


def programmatic(env: Servers) -> None:
    plain, tls, ascii_auth, gateway, ca_file = env

    clients = {
        "TCP, no auth, pickle": Client(plain.address),
        "TLS (verified), no auth": Client(tls.address, transport=TLSTransport(ca_file=ca_file)),
        "TCP, memcached -Y ASCII auth": Client(
            ascii_auth.address, auth=AsciiAuth("demo-user", "demo-password")
        ),
        "TCP, MemCachier auth": Client(
            gateway.address, auth=MemCachierAuth("memcachier-user", "memcachier-password")
        ),
        "TCP, JSON serializer": Client(plain.address, serializer=JSONSerializer()),
    }
    heading("The programmatic client, one strategy combination per line")
    for label, client in clients.items():
        with client:
            started = time.perf_counter()
            client.set("demo:profile", {"name": "Ada", "langs": ["py", "c"]}, expire=60)
            value = client.get("demo:profile")
            client.set_many({"demo:a": 1, "demo:b": 2})
            total = client.incr("demo:a", 41)
            elapsed = (time.perf_counter() - started) * 1000
            say(f"  {label:32} get -> {value!r:42} incr -> {total}  ({elapsed:.1f} ms)")
    say(f"  MemCachier handshakes seen by the gateway: {gateway.handshakes} (one per connection)")

    heading("Bad input never reaches the wire")
    with Client(plain.address) as client:
        try:
            client.set("demo key\r\nflush_all", "x")
        except InvalidKeyError as exc:
            say(f"  InvalidKeyError: {exc}")
    with Client(gateway.address, auth=MemCachierAuth("memcachier-user", "wrong")) as client:
        try:
            client.get("k")
        except AuthenticationError as exc:
            say(f"  AuthenticationError: {exc}")

    heading("Several servers: keys spread as Django's PyMemcacheCache spreads them")
    with Client([plain.address, gateway.upstream.address]) as client:
        for key in ("user:1", "user:2", "user:3", "user:4"):
            say(f"  {key} lives on {client.server_for(key)}")

    heading("Long keys, namespaces, and what a listener sees")
    events: list[OperationEvent] = []

    def listener(event: object) -> None:
        if isinstance(event, OperationEvent):
            events.append(event)

    with Client(plain.address, key_policy="hash", listeners=[listener]) as client:
        query = "search:" + "a user's long query, with spaces " * 10
        client.set(query, ["result 1", "result 2"])
        say(f"  a {len(query)}-character key with spaces: get -> {client.get(query)!r}")
        user = client.namespace("user:42")
        user.set_many({"profile": "Ada", "cart": ["book"]})
        before = user.get_many(["profile", "cart"])
        user.invalidate()
        after = user.get_many(["profile", "cart"])
        say(f"  namespace user:42: {before} -> invalidate() -> {after}")
    hits = sum(event.hits for event in events)
    say(
        f"  the listener saw {len(events)} exchanges ({hits} hits), e.g. "
        f"{events[1].operation!r} on {events[1].server} in {events[1].duration * 1e6:.0f} µs "
        "(keys stay out of events unless include_keys=True)"
    )


def asyncio_client(env: Servers) -> None:
    heading("The asyncio client: the same strategies, natively async")
    plain, tls, gateway = env.plain, env.tls, env.gateway

    async def tour() -> None:
        async with (
            AsyncClient(plain.address, max_connections=4) as client,
            AsyncClient(tls.address, transport=TLSTransport(ca_file=env.ca_file)) as secure,
            AsyncClient(
                gateway.address, auth=MemCachierAuth("memcachier-user", "memcachier-password")
            ) as authenticated,
        ):
            await client.set("demo:async", {"from": "asyncio"})
            say(f"  plain: get -> {await client.get('demo:async')!r}")
            started = time.perf_counter()
            answers = await asyncio.gather(*(client.get("demo:async") for _ in range(200)))
            elapsed = (time.perf_counter() - started) * 1000
            connections = plain.stats()["curr_connections"]
            say(
                f"  200 concurrent gets in {elapsed:.1f} ms, all equal: "
                f"{all(a == answers[0] for a in answers)}; server connections: {connections} "
                "(max_connections=4, plus the demo's own)"
            )
            await secure.set("demo:tls", "over asyncio's TLS")
            say(f"  TLS (verified): get -> {await secure.get('demo:tls')!r}")
            await authenticated.set("demo:auth", "after a MemCachier handshake")
            say(f"  MemCachier auth: get -> {await authenticated.get('demo:auth')!r}")

            async def compute() -> str:
                await asyncio.sleep(0.05)
                return "computed once"

            await client.delete("demo:herd")
            herd = await asyncio.gather(
                *(client.get_or_set("demo:herd", compute) for _ in range(20))
            )
            say(f"  20 concurrent get_or_set on a miss: {set(herd)!r}")
        # The sync client reads what the asyncio one wrote: same placement, same bytes.
        with Client(plain.address) as sync:
            say(f"  the sync Client reads it back: {sync.get('demo:async')!r}")

    asyncio.run(tour())


def django_backend(env: Servers) -> None:
    heading("The Django backend, configured as in settings.py")
    try:
        import django
        from django.conf import settings
    except ImportError:
        say("  Django is not installed: pip install 'layered-cache[django]'")
        return
    try:
        import layered_cache.django  # noqa: F401
    except ImportError as exc:
        say(f"  The Django backend is not available: {exc}")
        return
    plain, tls, gateway = env.plain, env.tls, env.gateway
    caches = {
        "default": {
            "BACKEND": "layered_cache.django.MemcacheCache",
            "LOCATION": plain.address,
            "OPTIONS": {"no_delay": True, "connect_timeout": 2, "timeout": 2},
        },
        "tls": {
            "BACKEND": "layered_cache.django.MemcacheCache",
            "LOCATION": tls.address,
            "OPTIONS": {"transport": "tls", "ca_file": env.ca_file},
        },
    }
    # The seed's configuration: nothing but environment variables (as on Heroku).
    os.environ["MEMCACHIER_SERVERS"] = gateway.address
    os.environ["MEMCACHIER_USERNAME"] = "memcachier-user"
    os.environ["MEMCACHIER_PASSWORD"] = "memcachier-password"
    caches["memcachier"] = {"BACKEND": "layered_cache.django.MemcacheCache"}
    settings.configure(CACHES=caches, INSTALLED_APPS=["layered_cache.django"])
    django.setup()
    from django.core.cache import caches as django_caches

    for alias in caches:
        cache = django_caches[alias]
        cache.set("visits", 0)
        cache.incr("visits")
        cache.set_many({"a": 1, "b": [2, 3]}, timeout=30)
        say(
            f"  CACHES[{alias!r}]: incr -> {cache.get('visits')}, "
            f"get_many -> {cache.get_many(['a', 'b', 'c'])}"
        )
        cache.close()  # Django does this after every request; the connection stays pooled


def main() -> int:
    say("Starting local memcached servers (plain, TLS, ASCII auth, MemCachier gateway)...")
    with servers() as env:
        programmatic(env)
        asyncio_client(env)
        django_backend(env)
    say()
    say("All servers stopped. Next: bash scripts/test.sh runs the whole suite.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
