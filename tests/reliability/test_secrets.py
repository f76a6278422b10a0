"""Configuration failures and secrets.

TLS and authentication refusals are mistakes to fix, not outages to ride out: they raise on
every call, also in fail-silent mode.  Passwords, signing keys and key passwords never show
in an exception (message, repr, chain, formatted traceback), a log record (captured at
DEBUG, on every logger), or the ``repr()`` of any object the client holds.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
import types
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from layered_cache import (
    AuthenticationError,
    CacheConnectionError,
    Client,
    ConfigurationError,
    LayeredCacheError,
    TLSError,
)
from layered_cache.auth import AsciiAuth, MemCachierAuth
from layered_cache.serialization import PickleSerializer, SignedPickleSerializer
from layered_cache.transport import TLSTransport
from tests.servers import MemcachedProcess, MemCachierGateway, TLSMaterial

WRONG_PASSWORD = "Wr0ng-pa55word-7c1e"
SIGNING_KEY = "signing-key-5f2d-0123456789abcdef"
KEY_PASSWORD = "pem-key-pa55-93a1"
SHORT_KEY = "too-short-key"
OLD_KEY = "old-signing-key-4b7e-fedcba9876543210"

#: Calls that each run the handshake on a new connection (nothing is pooled after a refusal).
CALLS: dict[str, Callable[[Client], Any]] = {
    "get": lambda client: client.get("k"),
    "get_many": lambda client: client.get_many(["k", "j"]),
    "set": lambda client: client.set("k", {"v": 1}),
    "set_many": lambda client: client.set_many({"k": 1, "j": 2}),
    "delete": lambda client: client.delete("k"),
    "incr": lambda client: client.incr("n", 1),
    "touch": lambda client: client.touch("k"),
}


def _raised(call: Callable[[], Any]) -> BaseException:
    """The exception ``call`` raised (this frame holds no secret in its locals)."""
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("the call did not raise")


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _exception_texts(exc: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(exc))]
    for link in _chain(exc):
        texts += [str(link), repr(link), repr(link.args), repr(vars(link))]
    return texts


def _record_texts(records: list[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = []
    for record in records:
        texts += [formatter.format(record), repr(record.args), repr(record.msg)]
        if record.exc_info and record.exc_info[1] is not None:
            texts += _exception_texts(record.exc_info[1])
    return texts


def _children(obj: object) -> list[object]:
    if isinstance(obj, str | bytes | int | float | type | types.ModuleType | types.CodeType):
        return []
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, list | tuple | set | frozenset | deque):
        return list(obj)
    if isinstance(obj, types.FunctionType):
        cells = [cell.cell_contents for cell in obj.__closure__ or () if cell.cell_contents]
        return [*cells, *(obj.__defaults__ or ())]
    if isinstance(obj, types.MethodType):
        return [obj.__self__, obj.__func__]
    children: list[object] = []
    wrapped = getattr(obj, "__wrapped__", None)
    if wrapped is not None:
        children.append(wrapped)
    with contextlib.suppress(TypeError):
        children.append(vars(obj))
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            with contextlib.suppress(AttributeError):
                children.append(getattr(obj, slot))
    return children


def _reachable(root: object, limit: int = 20_000) -> Iterator[object]:
    """Every object reachable from ``root`` through attributes, containers and closures."""
    seen = {id(root)}
    todo = [root]
    while todo and len(seen) < limit:
        obj = todo.pop()
        yield obj
        for child in _children(obj):
            if id(child) not in seen:
                seen.add(id(child))
                todo.append(child)


def _holder_reprs(root: object) -> list[str]:
    """repr() of every reachable object of a class of ours or pymemcache's (the holders)."""
    reprs = []
    for obj in _reachable(root):
        module = type(obj).__module__ or ""
        if module.startswith(("layered_cache", "pymemcache")):
            reprs.append(repr(obj))
    return reprs


def _assert_hidden(secrets: list[str], texts: list[str]) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"a secret leaked into: {text[:300]!r}"


# -- refusals always raise, also in fail-silent mode -------------------------------------------


#: kind of refusal -> (server fixture, Client options for it, the error every call raises)
REFUSALS: dict[str, tuple[str, Callable[[Any, TLSMaterial], dict[str, Any]], type]] = {
    "ascii-wrong-password": (
        "ascii_auth_memcached",
        lambda server, _: {"auth": AsciiAuth(server.username, WRONG_PASSWORD)},
        AuthenticationError,
    ),
    "memcachier-wrong-password": (
        "memcachier",
        lambda gateway, _: {"auth": MemCachierAuth(gateway.username, WRONG_PASSWORD)},
        AuthenticationError,
    ),
    # "CLIENT_ERROR unauthenticated": a server answer, not an outage.
    "ascii-missing-auth": ("ascii_auth_memcached", lambda server, _: {}, LayeredCacheError),
    "untrusted-ca": (
        "tls_memcached",
        lambda _, tls: {"transport": TLSTransport(ca_file=tls.untrusted_ca_file)},
        TLSError,
    ),
    "wrong-hostname": (
        "wrong_host_tls_memcached",
        lambda _, tls: {"transport": TLSTransport(ca_file=tls.ca_file)},
        TLSError,
    ),
    "mtls-without-certificate": (
        "mtls_memcached",
        lambda _, tls: {"transport": TLSTransport(ca_file=tls.ca_file)},
        TLSError,
    ),
    "tls-to-plain-server": (
        "memcached",
        lambda _, tls: {"transport": TLSTransport(ca_file=tls.ca_file)},
        TLSError,
    ),
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_refusals_raise_on_every_call_even_in_fail_silent_mode(
    kind: str,
    request: pytest.FixtureRequest,
    tls_material: TLSMaterial,
    client_factory: Callable[..., Client],
) -> None:
    fixture, options, expected = REFUSALS[kind]
    server = request.getfixturevalue(fixture)
    client = client_factory(
        server.address, ignore_exceptions=True, timeout=2.0, **options(server, tls_material)
    )
    for _ in range(2):  # never turned into a skipped server answering quietly
        for name, call in CALLS.items():
            error = _raised(lambda call=call: call(client))
            assert isinstance(error, expected), f"{name}: {error!r}"
            assert not isinstance(error, CacheConnectionError) or isinstance(error, TLSError)
    assert client.ignored_errors == 0


# -- secrets never shown -----------------------------------------------------------------------


@pytest.fixture
def encrypted_client_key(tls_material: TLSMaterial, tmp_path: Path) -> str:
    """The client certificate's key, encrypted with ``KEY_PASSWORD``."""
    key = serialization.load_pem_private_key(
        Path(tls_material.client_key_file).read_bytes(), password=None
    )
    path = tmp_path / "client-encrypted.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    path.chmod(0o600)
    return str(path)


def test_failed_authentication_shows_no_password(
    ascii_auth_memcached: MemcachedProcess,
    memcachier: MemCachierGateway,
    caplog: pytest.LogCaptureFixture,
    client_factory: Callable[..., Client],
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [WRONG_PASSWORD, ascii_auth_memcached.password, memcachier.password]
    assert all(secrets)
    clients = [
        client_factory(
            ascii_auth_memcached.address,
            auth=AsciiAuth(ascii_auth_memcached.username, WRONG_PASSWORD),
            ignore_exceptions=True,
        ),
        client_factory(
            memcachier.address,
            auth=MemCachierAuth(memcachier.username, WRONG_PASSWORD),
            ignore_exceptions=True,
        ),
    ]
    texts: list[str] = []
    for client in clients:
        for call in CALLS.values():
            error = _raised(lambda call=call, client=client: call(client))
            assert isinstance(error, AuthenticationError)
            assert WRONG_PASSWORD not in str(error)
            texts += _exception_texts(error)
        texts += _holder_reprs(client)
    # Working clients, with connections in their pools, hold the right passwords.
    good = [
        client_factory(
            ascii_auth_memcached.address,
            auth=AsciiAuth(ascii_auth_memcached.username, ascii_auth_memcached.password),
        ),
        client_factory(
            memcachier.address, auth=MemCachierAuth(memcachier.username, memcachier.password)
        ),
    ]
    for client in good:
        assert client.set("k", "v")
        assert client.get("k") == "v"
        texts += [repr(client), *_holder_reprs(client)]
    texts += _record_texts(caplog.records)
    _assert_hidden(secrets, texts)


def test_refused_login_traceback_with_locals_shows_no_password(
    ascii_auth_memcached: MemcachedProcess, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(
        ascii_auth_memcached.address,
        auth=AsciiAuth(ascii_auth_memcached.username, WRONG_PASSWORD),
    )
    error = _raised(lambda: client.get("k"))
    assert isinstance(error, AuthenticationError)
    rendered = "".join(
        traceback.TracebackException.from_exception(error, capture_locals=True).format()
    )
    assert WRONG_PASSWORD not in rendered


def test_tls_failures_and_key_passwords_stay_hidden(
    mtls_memcached: MemcachedProcess,
    tls_memcached: MemcachedProcess,
    tls_material: TLSMaterial,
    encrypted_client_key: str,
    caplog: pytest.LogCaptureFixture,
    client_factory: Callable[..., Client],
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    # A wrong key password is a configuration error that does not repeat the password.
    error = _raised(
        lambda: TLSTransport(
            ca_file=tls_material.ca_file,
            cert_file=tls_material.client_cert_file,
            key_file=encrypted_client_key,
            key_password=WRONG_PASSWORD,
        )
    )
    assert isinstance(error, ConfigurationError)
    texts += _exception_texts(error)
    # The right one works, and is not shown by anything the client holds.
    transport = TLSTransport(
        ca_file=tls_material.ca_file,
        cert_file=tls_material.client_cert_file,
        key_file=encrypted_client_key,
        key_password=KEY_PASSWORD,
    )
    client = client_factory(mtls_memcached.address, transport=transport)
    assert client.set("k", "v")
    assert client.get("k") == "v"
    texts += [repr(client), repr(transport), *_holder_reprs(client)]
    # A TLS refusal by a server, with that transport, shows no password either.
    refused = client_factory(
        tls_memcached.address,
        transport=TLSTransport(
            ca_file=tls_material.untrusted_ca_file,
            cert_file=tls_material.client_cert_file,
            key_file=encrypted_client_key,
            key_password=KEY_PASSWORD,
        ),
        ignore_exceptions=True,
    )
    error = _raised(lambda: refused.get("k"))
    assert isinstance(error, TLSError)
    texts += _exception_texts(error) + _holder_reprs(refused)
    texts += _record_texts(caplog.records)
    _assert_hidden([KEY_PASSWORD, WRONG_PASSWORD], texts)


def test_signing_keys_stay_hidden(
    memcached: MemcachedProcess,
    caplog: pytest.LogCaptureFixture,
    client_factory: Callable[..., Client],
) -> None:
    caplog.set_level(logging.DEBUG)
    serializer = SignedPickleSerializer(SIGNING_KEY, fallback_keys=[OLD_KEY])
    client = client_factory(memcached.address, serializer=serializer)
    forger = client_factory(
        memcached.address, serializer=SignedPickleSerializer("an-attackers-guess-0000000000")
    )
    plain = client_factory(memcached.address, serializer=PickleSerializer())
    assert client.set("k", {"safe": True})
    assert client.get("k") == {"safe": True}
    assert forger.set("forged", {"admin": True})
    assert plain.set("unsigned", {"admin": True})
    # Refused values are logged misses; the log says why, never with which key.
    assert client.get("forged") is None
    assert client.get("unsigned") is None
    assert client.get_many(["forged", "unsigned", "k"]) == {"k": {"safe": True}}
    refusals = [r for r in caplog.records if r.name == "layered_cache"]
    assert len(refusals) >= 2
    short = _raised(lambda: SignedPickleSerializer(SHORT_KEY))
    assert isinstance(short, ConfigurationError)
    texts = [repr(serializer), repr(client), *_holder_reprs(client)]
    texts += _exception_texts(short) + _record_texts(caplog.records)
    _assert_hidden([SIGNING_KEY, OLD_KEY, SHORT_KEY], texts)
