"""Pipelined batches over TLS, against memcached's own TLS mode (``-Z``), on both engines.

memcached's TLS mode (before 1.6.39) stalls on a pipeline whose TLS records end
inside a command; the clients write a TLS pipeline cut at command boundaries
(:mod:`layered_cache.protocol.framing`). Every batch here, large values or small,
meta or classic, on one server (one exchange) or two (the sync engine's batch
path), must come back whole and well within its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from layered_cache.protocol.framing import TLS_RECORD_SIZE
from layered_cache.transport import TLSTransport
from tests.servers import MemcachedProcess, ServerGroup, TLSMaterial, start_tls_memcached

# (values, bytes each): the shapes that stalled before (records ending inside
# commands), and shapes that did not.
SHAPES = {
    "80x3000": (80, 3000),
    "400x500": (400, 500),
    "20x24000": (20, 24000),
    "3x100000": (3, 100_000),
    "2000x10": (2000, 10),
    "5x10": (5, 10),
}
TIMEOUT = 3.0


@pytest.fixture(scope="module")
def tls_servers(tls_material: TLSMaterial) -> Iterator[list[MemcachedProcess]]:
    group = ServerGroup()
    try:
        yield [group.add(start_tls_memcached(tls_material)) for _ in range(2)]
    finally:
        group.close()


def _nodes(client: Any) -> Any:
    inner = getattr(client, "aclient", client)  # the async facade's AsyncClient
    return inner._nodes.values()


@pytest.fixture(params=["one server", "two servers"])
def servers(request: pytest.FixtureRequest, tls_servers: list[MemcachedProcess]) -> list[str]:
    for server in tls_servers:
        server.flush()
    chosen = tls_servers[:1] if request.param == "one server" else tls_servers
    return [str(server.address) for server in chosen]


@pytest.fixture(params=["meta", "classic"])
def tls_client(
    request: pytest.FixtureRequest,
    make: Callable[..., Any],
    servers: list[str],
    tls_material: TLSMaterial,
) -> Any:
    client = make(servers, transport=TLSTransport(ca_file=tls_material.ca_file), timeout=TIMEOUT)
    if request.param == "classic":
        # As if the servers did not speak meta: pipelined classic ``set`` commands.
        for node in _nodes(client):
            node.meta = False
    return client


@pytest.mark.parametrize("shape", list(SHAPES))
def test_batches_come_back_whole(tls_client: Any, shape: str) -> None:
    count, size = SHAPES[shape]
    values = {f"tls:{shape}:{i}": "v" * size + str(i) for i in range(count)}
    keys = list(values)
    started = time.monotonic()
    assert tls_client.set_many(values) == []
    assert tls_client.get_many(keys) == values
    found = tls_client.gets_many(keys)
    assert {key: value for key, (value, _) in found.items()} == values
    assert all(token for _, token in found.values())  # each with its CAS token
    assert tls_client.delete_many(keys) is True
    assert tls_client.get_many(keys) == {}
    # A stall would have run into the timeout: these are loopback round trips.
    assert time.monotonic() - started < TIMEOUT


def _eventually(read: Callable[[], Any], expected: Any) -> None:
    """``read()`` comes to answer ``expected`` well within the timeout.

    (A ``noreply`` batch is not waited for, and the next call may go out on
    another connection, which memcached serves independently.)
    """
    deadline = time.monotonic() + TIMEOUT
    while (found := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert found == expected


def test_noreply_batches_land(tls_client: Any) -> None:
    values = {f"tls:quiet:{i}": "q" * 3000 for i in range(80)}
    keys = list(values)
    tls_client.set_many(values, noreply=True)
    _eventually(lambda: tls_client.get_many(keys), values)
    tls_client.delete_many(keys, noreply=True)
    _eventually(lambda: tls_client.get_many(keys), {})


def _quiet_batch_client(
    make: Callable[..., Any], server: MemcachedProcess, tls_material: TLSMaterial
) -> Any:
    """A new client whose first exchange will be a ``noreply`` batch (classic: no meta probe)."""
    client = make(
        [str(server.address)], transport=TLSTransport(ca_file=tls_material.ca_file), timeout=TIMEOUT
    )
    for node in _nodes(client):
        node.meta = False
    return client


def _connections_opened(server: MemcachedProcess) -> int:
    return int(server.stats()["total_connections"])


def test_unread_session_tickets_are_not_a_hang_up(
    make: Callable[..., Any], tls_servers: list[MemcachedProcess], tls_material: TLSMaterial
) -> None:
    """A TLS 1.3 server's session tickets, unread after a ``noreply`` first command, wait on the
    socket; the connection still carries the next command.

    (Replacing it would reset it, and the server would drop the ``noreply``
    commands it had not read yet.)
    """
    server = tls_servers[0]
    server.flush()
    client = _quiet_batch_client(make, server, tls_material)
    values = {f"tls:tickets:{i}": "t" * 3000 for i in range(80)}
    before = _connections_opened(server)
    client.set_many(values, noreply=True)
    time.sleep(0.2)  # the tickets have arrived (a loopback round trip after the handshake)
    assert client.get_many(list(values)) == values  # at once: read after the batch, in order
    assert _connections_opened(server) - before == 2  # the client's one, and this stats call's


@pytest.mark.parametrize("round_", range(10))
def test_closing_right_after_noreply_writes_loses_none(
    make: Callable[..., Any],
    tls_servers: list[MemcachedProcess],
    tls_material: TLSMaterial,
    round_: int,
) -> None:
    """Closing the client just after ``noreply`` writes still lets the server carry them all out."""
    server = tls_servers[0]
    server.flush()
    client = _quiet_batch_client(make, server, tls_material)
    values = {f"tls:closing:{round_}:{i}": "c" * 3000 for i in range(80)}
    client.set_many(values, noreply=True)
    client.close()
    reader = make([str(server.address)], transport=TLSTransport(ca_file=tls_material.ca_file))
    assert reader.get_many(list(values)) == values


def test_closing_waits_once_for_a_server_that_does_not_answer(
    tls_servers: list[MemcachedProcess], tls_material: TLSMaterial
) -> None:
    """Several connections left ``noreply`` by threads wait for the server together: a
    paused server costs ``close()`` about one ``timeout``, not one per connection."""
    from layered_cache import Client

    server = tls_servers[0]
    timeout = 0.5
    client = Client(
        [str(server.address)], transport=TLSTransport(ca_file=tls_material.ca_file), timeout=timeout
    )
    for node in _nodes(client):
        node.meta = False
    start = threading.Barrier(4)

    def write(i: int) -> None:
        start.wait()
        client.set_many({f"tls:paused:{i}:{j}": "p" * 3000 for j in range(20)}, noreply=True)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (node,) = _nodes(client)
    assert len(node.pool.idle) > 1  # (threads met on the pool: several connections)
    server.pause()
    try:
        started = time.monotonic()
        client.close()
        took = time.monotonic() - started
    finally:
        server.resume()
    assert timeout * 0.8 < took < timeout * 2  # waited for the server, once
    assert not node.pool.idle


def test_mixed_sizes_in_one_pipeline(tls_client: Any) -> None:
    sizes = [1, 16384, 700, 40_000, 3000, 16300, 9000, 0, 17000, 50] * 6
    values = {f"tls:mixed:{i}": "m" * size for i, size in enumerate(sizes)}
    assert tls_client.set_many(values) == []
    assert tls_client.get_many(list(values)) == values


class RecordServer:
    """A TLS endpoint that decrypts one record at a time and keeps each record's plaintext.

    It answers ``MN`` to a record ending in ``mn`` (the meta probe, the end of a
    quiet pipeline) and ``END`` to one ending in a ``get`` line: enough for the
    clients' ``set_many`` and ``get_many``. Only its view of the records is
    what a real memcached cannot give.
    """

    def __init__(self, material: TLSMaterial) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(material.server_cert_file, material.server_key_file)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.records: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                sock, _ = self.listener.accept()
                threading.Thread(target=self._connection, args=(sock,), daemon=True).start()

    def _connection(self, sock: socket.socket) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
        raw = stream = b""
        handshaken = False
        with sock, contextlib.suppress(OSError):
            while True:
                if not handshaken:
                    try:
                        tls.do_handshake()
                        handshaken = True
                    except ssl.SSLWantReadError:
                        pass
                sock.sendall(outgoing.read())
                while len(raw) < 5 or len(raw) < 5 + int.from_bytes(raw[3:5], "big"):
                    data = sock.recv(65536)
                    if not data:
                        return
                    raw += data
                size = 5 + int.from_bytes(raw[3:5], "big")
                incoming.write(raw[:size])  # one record, no more
                raw = raw[size:]
                if handshaken:
                    plain = b""
                    with contextlib.suppress(ssl.SSLWantReadError):
                        while chunk := tls.read(65536):
                            plain += chunk
                    if plain:
                        self.records.append(plain)
                        stream += plain
                        last_line = stream[:-2].rsplit(b"\r\n", 1)[-1]
                        if stream.endswith(b"\r\n") and last_line == b"mn":
                            tls.write(b"MN\r\n")
                        elif stream.endswith(b"\r\n") and last_line.startswith(b"get "):
                            tls.write(b"END\r\n")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def record_server(tls_material: TLSMaterial) -> Iterator[RecordServer]:
    server = RecordServer(tls_material)
    yield server
    server.close()


def test_each_write_is_whole_records(
    make: Callable[..., Any], record_server: RecordServer, tls_material: TLSMaterial
) -> None:
    """Both engines' TLS writes (asyncio's TLS transport included) end records there."""
    client = make(
        record_server.address, transport=TLSTransport(ca_file=tls_material.ca_file), timeout=5
    )
    sizes = [3000] * 30 + [40_000, 10, 16384, 500] + [100] * 200
    values = {f"rec:{i}": b"r" * size for i, size in enumerate(sizes)}
    assert client.set_many(values) == []
    keys = [f"long-key-of-a-get-line:{i}" for i in range(2000)]
    assert client.get_many(keys) == {}
    stream = b"".join(record_server.records)
    commands = []  # (start, end) of each command the server received
    offset = 0
    while offset < len(stream):
        line_end = stream.find(b"\r\n", offset) + 2
        words = stream[offset:line_end].split()
        end = line_end + (int(words[2]) + 2 if words[0] == b"ms" else 0)
        commands.append((offset, end))
        offset = end
    offset = 0
    for record in record_server.records:
        offset += len(record)
        # A record ends with a command, or inside one longer than a record.
        start, end = next((s, e) for s, e in commands if s < offset <= e)
        assert offset == end or end - start > TLS_RECORD_SIZE
    assert len(record_server.records) < 30  # commands gathered, not one record each


def test_concurrent_async_calls_written_together(
    tls_servers: list[MemcachedProcess], tls_material: TLSMaterial
) -> None:
    """The asyncio engine writes concurrent calls' requests together: cut over TLS too."""
    from layered_cache import AsyncClient

    tls_servers[0].flush()
    values = {f"tls:together:{i}": "t" * 3000 for i in range(80)}

    async def main() -> list[Any]:
        async with AsyncClient(
            str(tls_servers[0].address),
            transport=TLSTransport(ca_file=tls_material.ca_file),
            timeout=TIMEOUT,
        ) as client:
            stored = await asyncio.gather(*(client.set(k, v) for k, v in values.items()))
            found = await asyncio.gather(*(client.get(k) for k in values))
            return [stored, found]

    stored, found = asyncio.run(main())
    assert stored == [True] * len(values)
    assert found == list(values.values())
