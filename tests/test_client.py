"""The Client against real memcached: every method, the strategy matrix, keys, sizes, threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from layered_cache import (
    Client,
    ConfigurationError,
    InvalidArgumentError,
    InvalidKeyError,
    SerializationError,
    ServerResponseError,
)
from layered_cache.auth import AsciiAuth, MemCachierAuth, NoAuth
from layered_cache.serialization import JSONSerializer, PickleSerializer
from layered_cache.transport import TCPTransport, TLSTransport
from tests.engines import client_maker
from tests.servers import MemcachedProcess, MemCachierGateway, TLSMaterial


@pytest.fixture
def client(memcached: MemcachedProcess, make: Callable[..., Any]) -> Iterator[Client]:
    with make(memcached.address) as client:
        yield client


def test_set_get_delete(client: Client) -> None:
    assert client.get("missing") is None
    assert client.get("missing", default="dflt") == "dflt"
    assert client.set("k", {"a": [1, 2]}, expire=60) is True
    assert client.get("k") == {"a": [1, 2]}
    assert client.delete("k") is True
    assert client.delete("k") is False
    assert client.get("k") is None


def test_plain_types_round_trip(client: Client) -> None:
    values = {"bytes": b"\x00\xff", "str": "héllo", "int": 2**62, "neg": -5, "float": 1.5}
    for key, value in values.items():
        assert client.set(key, value)
    assert client.get_many(list(values)) == values


def test_get_many_set_many_delete_many(client: Client) -> None:
    assert client.get_many([]) == {}
    assert client.set_many({"a": 1, "b": "two", "ü": [3]}) == []
    assert client.get_many(["a", "b", "ü", "nope"]) == {"a": 1, "b": "two", "ü": [3]}
    assert client.delete_many(["a", "b"]) is True
    assert client.get_many(["a", "b", "ü"]) == {"ü": [3]}
    # pymemcache's names work too.
    assert client.get_multi(["ü"]) == {"ü": [3]}


def test_add_replace_append_prepend(client: Client) -> None:
    assert client.add("k", "a") is True
    assert client.add("k", "b") is False
    assert client.replace("k", "c") is True
    assert client.replace("absent", "c") is False
    assert client.append("k", "d") is True
    assert client.prepend("k", "e") is True
    assert client.get("k") == "ecd"
    assert client.append("absent", "x") is False


def test_gets_and_cas(client: Client) -> None:
    assert client.gets("k") == (None, None)
    assert client.cas("k", 1, 123) is None
    client.set("k", 1)
    value, token = client.gets("k")
    assert value == 1
    assert client.cas("k", 2, token) is True
    assert client.cas("k", 3, token) is False
    assert client.get("k") == 2
    assert client.gets_many(["k", "x"]) == {"k": (2, client.gets("k")[1])}


def test_incr_decr(client: Client) -> None:
    assert client.incr("n", 1) is None
    client.set("n", 10)
    assert client.incr("n", 5) == 15
    assert client.decr("n", 20) == 0  # memcached stops at zero
    assert client.get("n") == 0
    with pytest.raises(InvalidArgumentError):
        client.incr("n", "many")  # type: ignore[arg-type]
    client.set("s", "text")
    with pytest.raises(ServerResponseError, match="non-numeric"):
        client.incr("s", 1)
    assert client.get("n") == 0  # the connection is still in step


def test_touch_and_expiry(client: Client) -> None:
    assert client.touch("absent", 10) is False
    client.set("k", "v", expire=100)
    assert client.touch("k", -1) is True
    assert client.get("k") is None
    client.set("gone", "v", expire=-1)
    assert client.get("gone") is None


def test_stats_version_flush(client: Client, memcached: MemcachedProcess) -> None:
    ((server, stats),) = client.stats().items()
    assert server == memcached.address
    assert stats["pid"] > 0
    assert "version" in stats
    assert client.version() == {memcached.address: stats["version"]}
    assert "items" not in client.stats("settings")[server] or True
    assert client.stats("settings")[server]["tcpport"] == memcached.port
    client.set("k", 1)
    assert client.flush_all() is True
    assert client.get("k") is None


def test_noreply_writes(client: Client) -> None:
    assert client.set("k", "v", noreply=True) is True
    assert client.get("k") == "v"  # the next command reads only its own reply


def test_close_then_reuse(client: Client) -> None:
    client.set("k", 1)
    client.close()
    assert client.get("k") == 1


# -- bad input is refused before the wire; the cache is unchanged -----------

MALICIOUS_KEYS = ["a b", "k\r\nflush_all", "nul\x00", "x" * 251, "", "del\x7f"]


@pytest.mark.parametrize("key", MALICIOUS_KEYS)
def test_malicious_keys_never_reach_the_server(
    client: Client, memcached: MemcachedProcess, key: str
) -> None:
    client.set("canary", "alive")
    before = memcached.stats()["cmd_set"], memcached.stats()["cmd_get"]
    for call in (
        lambda: client.get(key),
        lambda: client.set(key, "v"),
        lambda: client.get_many(["canary", key]),
        lambda: client.set_many({"canary": "dead", key: "v"}),
        lambda: client.delete(key),
        lambda: client.delete_many(["canary", key]),
        lambda: client.incr(key, 1),
        lambda: client.touch(key),
    ):
        with pytest.raises(InvalidKeyError):
            call()
    assert (memcached.stats()["cmd_set"], memcached.stats()["cmd_get"]) == before
    assert client.get("canary") == "alive"


def test_unserializable_value_writes_nothing(client: Client) -> None:
    client.set("a", "old")
    with pytest.raises(SerializationError):
        client.set_many({"a": "new", "b": threading.Lock()})
    assert client.get_many(["a", "b"]) == {"a": "old"}


def test_json_client_refuses_values_and_never_unpickles(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    with (
        Client(memcached.address) as pickler,
        make(memcached.address, serializer=JSONSerializer()) as reader,
    ):
        with pytest.raises(SerializationError, match="JSONSerializer cannot store"):
            reader.set("k", {1, 2})
        assert reader.get("k") is None
        pickler.set("pickled", {"a": 1})
        pickler.set("text", "shared")
        assert reader.get("pickled") is None  # a miss, logged, never unpickled
        assert reader.get_many(["pickled", "text"]) == {"text": "shared"}
        reader.set("doc", {"a": [1, 2]})
        assert pickler.get("doc") == {"a": [1, 2]}  # JSON is safe for every reader


def test_value_over_item_limit_fails_clearly_and_connection_survives(client: Client) -> None:
    client.set("small", "ok")
    with pytest.raises(ServerResponseError, match="too large"):
        client.set("big", b"x" * (2 * 1024 * 1024))
    assert client.get("big") is None
    assert client.get("small") == "ok"


# -- the strategy matrix ------------------------------------------------------


@pytest.fixture(scope="module")
def tls_auth_memcached(tls_material: TLSMaterial) -> Iterator[MemcachedProcess]:
    from tests.servers import tls_server_args

    process = MemcachedProcess(
        tls_server_args(tls_material.server_cert_file, tls_material.server_key_file),
        ssl_context=tls_material.client_context(),
        credentials=("tlsuser", "tls-pass"),
        name="memcached-tls-auth",
    )
    with process:
        yield process


def _matrix_client(
    request: pytest.FixtureRequest, transport: str, auth: str, serializer: str, engine: str
) -> Client:
    material: TLSMaterial = request.getfixturevalue("tls_material")
    server: Any
    if auth == "memcachier":
        server = request.getfixturevalue("memcachier")
        strategy: Any = MemCachierAuth(server.username, server.password)
    elif auth == "ascii":
        server = request.getfixturevalue(
            "tls_auth_memcached" if transport == "tls" else "ascii_auth_memcached"
        )
        username, password = server.credentials
        strategy = AsciiAuth(username, password)
    else:
        server = request.getfixturevalue("tls_memcached" if transport == "tls" else "memcached")
        strategy = NoAuth()
    return client_maker(engine)(  # type: ignore[no-any-return]
        server.address,
        transport=TLSTransport(ca_file=material.ca_file) if transport == "tls" else TCPTransport(),
        auth=strategy,
        serializer=JSONSerializer() if serializer == "json" else PickleSerializer(),
    )


@pytest.mark.parametrize("serializer", ["pickle", "json"])
@pytest.mark.parametrize(
    ("transport", "auth"),
    [("tcp", "none"), ("tls", "none"), ("tcp", "memcachier"), ("tcp", "ascii"), ("tls", "ascii")],
)
def test_every_strategy_combination(
    request: pytest.FixtureRequest, transport: str, auth: str, serializer: str, engine: str
) -> None:
    with _matrix_client(request, transport, auth, serializer, engine) as client:
        document = {"list": [1, 2, 3], "text": "é", "n": None}
        assert client.set("doc", document)
        assert client.get("doc") == document
        assert client.set_many({"a": 1, "b": "x"}) == []
        assert client.get_many(["a", "b", "c"]) == {"a": 1, "b": "x"}
        assert client.incr("a", 41) == 42
        assert client.delete("doc") is True
        assert client.version()


def test_memcachier_handshake_once_per_connection(
    memcachier: MemCachierGateway, make: Callable[..., Any]
) -> None:
    with make(
        memcachier.address, auth=MemCachierAuth(memcachier.username, memcachier.password)
    ) as client:
        for i in range(300):
            client.set(f"k{i}", i)
            assert client.get(f"k{i}") == i
        assert memcachier.handshakes == 1
        assert memcachier.connections == 1
        # A dropped connection is replaced and re-authenticated exactly once.
        memcachier.drop_connections()
        for i in range(50):
            assert client.get(f"k{i}") == i
        assert memcachier.handshakes == 2
    assert memcachier.failed_handshakes == 0


def test_memcachier_handshake_once_per_pooled_connection_across_threads(
    memcachier: MemCachierGateway,
) -> None:
    client = Client(
        memcachier.address, auth=MemCachierAuth(memcachier.username, memcachier.password)
    )
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(100):
                client.set(f"t{n}:{i}", i)
                assert client.get(f"t{n}:{i}") == i
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    client.close()
    assert errors == []
    assert 1 <= memcachier.handshakes <= 8
    assert memcachier.handshakes == memcachier.connections


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="no memcached server"):
        Client([])
    with pytest.raises(ConfigurationError, match="port"):
        Client("host:99999")
    with pytest.raises(ConfigurationError, match="listed twice"):
        Client(["a:1", ("a", 1)])
    with pytest.raises(ConfigurationError, match="timeout"):
        Client("a:1", timeout=-1)
    with pytest.raises(ConfigurationError, match="transport must provide connect"):
        Client("a:1", transport="tls")  # type: ignore[arg-type]


def test_repr_has_no_secrets() -> None:
    client = Client("a:1", auth=MemCachierAuth("user", "hunter2-secret"))
    assert "hunter2-secret" not in repr(client)
    assert "user" in repr(client)
