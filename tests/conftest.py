"""Shared pytest fixtures: real memcached processes (plain, TLS, mTLS, auth) and a MemCachier
gateway, all on 127.0.0.1.

Processes are session-scoped for speed; the fixtures tests use are function-scoped views
over them that hand each test a clean cache (``flush_all``; a process a test stopped or
paused is restarted/resumed first).  Tests that stop, pause, kill or reconfigure a server
take ``fresh_memcached`` / ``memcached_factory`` instead.  Everything started is stopped at
the end (``ServerGroup`` stops all session processes in parallel), also after failures.
A missing ``memcached`` binary fails the tests that need it; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.engines import ENGINES, client_maker
from tests.servers import (
    HarnessError,
    MemcachedProcess,
    MemCachierGateway,
    ServerGroup,
    TLSMaterial,
    find_memcached,
    tls_server_args,
)

AUTH_USERNAME = "alice"
AUTH_PASSWORD = "s3cret-pass"
MEMCACHIER_USERNAME = "memcachier-user"
MEMCACHIER_PASSWORD = "gateway-secret"


def _require_memcached() -> None:
    """Fail (never skip) with instructions when there is no memcached binary."""
    try:
        find_memcached()
    except HarnessError as exc:
        message = str(exc)
    else:
        return
    pytest.fail(message, pytrace=False)


def _start(group: ServerGroup, what: str, process: MemcachedProcess) -> MemcachedProcess:
    """Register ``process`` for cleanup, start it, turn a failure into a readable pytest.fail."""
    _require_memcached()
    group.add(process)
    try:
        process.start()
    except HarnessError as exc:
        message = f"could not start {what}:\n{exc}"
    else:
        return process
    pytest.fail(message, pytrace=False)


def _clean(process: MemcachedProcess, what: str) -> MemcachedProcess:
    """Per-test view: make sure ``process`` runs (same port) and is empty."""
    try:
        process.ensure_running()
        process.flush()
    except (HarnessError, OSError) as exc:
        message = f"could not reset {what} for this test:\n{exc!r}"
    else:
        return process
    pytest.fail(message, pytrace=False)


# -- session-scoped processes ------------------------------------------------------------
@pytest.fixture(scope="session")
def server_group() -> Iterator[ServerGroup]:
    """Owner of every session-scoped memcached; stops them all (in parallel) at session end."""
    group = ServerGroup()
    yield group
    group.close()


@pytest.fixture(scope="session")
def tls_material() -> Iterator[TLSMaterial]:
    """CA, server/client/wrong-host certificates and an unrelated CA, as PEM files."""
    material = TLSMaterial()
    yield material
    material.close()


@pytest.fixture(scope="session")
def memcached_session(server_group: ServerGroup) -> MemcachedProcess:
    """The session's plain-TCP memcached (not flushed; prefer ``memcached``)."""
    return _start(server_group, "plain memcached", MemcachedProcess(name="memcached"))


@pytest.fixture(scope="session")
def tls_memcached_session(tls_material: TLSMaterial, server_group: ServerGroup) -> MemcachedProcess:
    """The session's TLS memcached (not flushed; prefer ``tls_memcached``)."""
    args = tls_server_args(tls_material.server_cert_file, tls_material.server_key_file)
    process = MemcachedProcess(
        args, ssl_context=tls_material.client_context(), name="memcached-tls"
    )
    return _start(server_group, "TLS memcached", process)


@pytest.fixture(scope="session")
def mtls_memcached_session(
    tls_material: TLSMaterial, server_group: ServerGroup
) -> MemcachedProcess:
    """The session's mutual-TLS memcached (not flushed; prefer ``mtls_memcached``)."""
    args = tls_server_args(
        tls_material.server_cert_file,
        tls_material.server_key_file,
        ca_file=tls_material.ca_file,
        verify_mode=2,
    )
    process = MemcachedProcess(
        args, ssl_context=tls_material.client_context(client_cert=True), name="memcached-mtls"
    )
    return _start(server_group, "mutual-TLS memcached", process)


@pytest.fixture(scope="session")
def wrong_host_tls_memcached_session(
    tls_material: TLSMaterial, server_group: ServerGroup
) -> MemcachedProcess:
    """The session's TLS memcached with a certificate for ``wrong.example`` only."""
    args = tls_server_args(tls_material.wrong_host_cert_file, tls_material.wrong_host_key_file)
    process = MemcachedProcess(
        args,
        ssl_context=tls_material.client_context(),
        server_hostname=TLSMaterial.WRONG_HOSTNAME,
        name="memcached-wrong-host",
    )
    return _start(server_group, "wrong-hostname TLS memcached", process)


@pytest.fixture(scope="session")
def ascii_auth_memcached_session(server_group: ServerGroup) -> MemcachedProcess:
    """The session's ``-Y`` ASCII-auth memcached (not flushed; prefer ``ascii_auth_memcached``)."""
    process = MemcachedProcess(
        credentials=(AUTH_USERNAME, AUTH_PASSWORD), name="memcached-ascii-auth"
    )
    return _start(server_group, "ASCII-auth memcached", process)


@pytest.fixture(scope="session")
def three_memcached_session(server_group: ServerGroup) -> list[MemcachedProcess]:
    """Three plain memcached processes for multi-server tests (not flushed)."""
    return [
        _start(server_group, f"memcached #{i}", MemcachedProcess(name=f"memcached-{i}"))
        for i in range(3)
    ]


@pytest.fixture(scope="session")
def memcachier_session(server_group: ServerGroup) -> Iterator[MemCachierGateway]:
    """The session's MemCachier gateway over its own memcached (counters not reset)."""
    upstream = _start(
        server_group, "memcached behind the MemCachier gateway", MemcachedProcess(name="upstream")
    )
    gateway = MemCachierGateway(upstream, MEMCACHIER_USERNAME, MEMCACHIER_PASSWORD)
    try:
        gateway.start()
    except HarnessError as exc:
        message = f"could not start the MemCachier gateway:\n{exc}"
    else:
        try:
            yield gateway
        finally:
            gateway.stop()
        return
    pytest.fail(message, pytrace=False)


# -- per-test views: a clean cache for every test -----------------------------------------
@pytest.fixture
def memcached(memcached_session: MemcachedProcess) -> MemcachedProcess:
    """A running plain memcached, flushed for this test (shared: do not stop/pause it)."""
    return _clean(memcached_session, "memcached")


@pytest.fixture
def tls_memcached(tls_memcached_session: MemcachedProcess) -> MemcachedProcess:
    """A running TLS memcached (cert for 127.0.0.1/localhost), flushed for this test."""
    return _clean(tls_memcached_session, "TLS memcached")


@pytest.fixture
def mtls_memcached(mtls_memcached_session: MemcachedProcess) -> MemcachedProcess:
    """A running memcached requiring a client cert from ``tls_material.ca_file``, flushed."""
    return _clean(mtls_memcached_session, "mutual-TLS memcached")


@pytest.fixture
def wrong_host_tls_memcached(
    wrong_host_tls_memcached_session: MemcachedProcess,
) -> MemcachedProcess:
    """A running TLS memcached whose certificate names only ``wrong.example``, flushed."""
    return _clean(wrong_host_tls_memcached_session, "wrong-hostname TLS memcached")


@pytest.fixture
def ascii_auth_memcached(ascii_auth_memcached_session: MemcachedProcess) -> MemcachedProcess:
    """A running ``-Y`` memcached, flushed; ``.username``/``.password`` are the credentials."""
    return _clean(ascii_auth_memcached_session, "ASCII-auth memcached")


@pytest.fixture
def three_memcached(three_memcached_session: list[MemcachedProcess]) -> list[MemcachedProcess]:
    """Three running plain memcached processes, all flushed for this test."""
    return [_clean(process, process.name) for process in three_memcached_session]


@pytest.fixture
def memcachier(memcachier_session: MemCachierGateway) -> MemCachierGateway:
    """The MemCachier gateway: earlier connections dropped, upstream flushed, counters zeroed.

    ``.username``/``.password`` hold the credentials, ``.upstream`` the memcached behind it.
    """
    upstream = memcachier_session.upstream
    assert isinstance(upstream, MemcachedProcess)
    _clean(upstream, "memcached behind the MemCachier gateway")
    memcachier_session.drop_connections()
    memcachier_session.reset_counts()
    return memcachier_session


@pytest.fixture
def memcached_factory() -> Iterator[Callable[..., MemcachedProcess]]:
    """``factory(extra_args=(), **MemcachedProcess kwargs)`` -> a started, test-owned memcached.

    Every process it made is SIGKILLed and cleaned up when the test ends (pass or fail).
    """
    _require_memcached()
    group = ServerGroup()

    def factory(extra_args: tuple[str, ...] | list[str] = (), **kwargs: Any) -> MemcachedProcess:
        process = MemcachedProcess(extra_args, **kwargs)
        return _start(group, process.name, process)

    try:
        yield factory
    finally:
        for process in group.processes:
            process.kill()
        group.close()


@pytest.fixture
def fresh_memcached(memcached_factory: Callable[..., MemcachedProcess]) -> MemcachedProcess:
    """A plain memcached owned by this test alone: restart, pause, kill it at will."""
    return memcached_factory(name="fresh-memcached")


# -- both engines ---------------------------------------------------------------------------
@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each test that takes it (or ``make``) runs on the sync and on the asyncio engine."""
    return str(request.param)


@pytest.fixture
def make(engine: str) -> Iterator[Callable[..., Any]]:
    """``make(servers, **options)``: a ``Client``, or an ``AsyncClient`` behind a sync facade.

    Every client made is closed (and a facade's event loop with it) after the test.
    """
    maker = client_maker(engine)
    made: list[Any] = []

    def factory(*args: Any, **kwargs: Any) -> Any:
        client = maker(*args, **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.__exit__(None, None, None)
