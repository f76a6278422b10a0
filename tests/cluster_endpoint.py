"""A configuration endpoint in front of real memcached nodes, as ElastiCache and Memorystore have.

:class:`ConfigEndpoint` listens on ``127.0.0.1:<free port>`` (a
:class:`~tests.harness.ThreadedProxy`). A connection whose first command is
``config ...`` is a discovery connection: ``config get cluster`` is answered
with the current node list, in the shape the AWS documentation gives (the
version line ends with LF alone; the node line, space-separated
``hostname|ip|port`` entries, ends with LF, then CR LF; then ``END``)::

    CONFIG cluster 0 <length of the two lines>\\r\\n
    <version>\\n
    <hostname>|<ip>|<port> <hostname>|<ip>|<port>\\n
    \\r\\n
    END\\r\\n

Any other ``config`` command is answered ``ERROR`` (what memcached says to a
command it does not know). Every other connection is piped to the first node
(ElastiCache's configuration endpoint is a DNS name of one of the nodes, and
memcached commands work on it).

A test changes the cluster with :meth:`set_nodes` / :meth:`add_node` /
:meth:`remove_node` (each bumps the version, as the services do on every
change) and takes the endpoint down and back up with :meth:`go_down` /
:meth:`come_back` (while down, connections are accepted and closed at once:
no answer). ``config_requests`` counts the ``config get cluster`` answered.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterable
from typing import Any

from tests.harness import Link, ThreadedProxy, counter, pipe_both_ways

__all__ = ["ConfigEndpoint", "cluster_reply"]

_MAX_LINE = 4096


def cluster_reply(version: int, nodes: Iterable[tuple[str, str, int]]) -> bytes:
    """The exact bytes of a ``config get cluster`` answer."""
    node_line = " ".join(f"{host}|{ip}|{port}" for host, ip, port in nodes)
    body = f"{version}\n{node_line}\n".encode("ascii")
    return b"CONFIG cluster 0 %d\r\n" % len(body) + body + b"\r\nEND\r\n"


def _entry(node: Any, hostname: str | None) -> tuple[str, str, int]:
    if isinstance(node, tuple):
        if len(node) == 3:
            return node
        host, port = node
    else:
        host, port = node.host, node.port
    return (hostname if hostname is not None else host, host, port)


class ConfigEndpoint(ThreadedProxy[Link]):
    """The configuration endpoint of a test cluster (see the module docstring).

    Args:
        nodes: the cluster's memcached nodes (objects with ``host`` and ``port``,
            ``(host, port)`` pairs, or ``(hostname, ip, port)`` triples).
        hostname: the hostname field of each entry (default: the node's IP,
            as Memorystore lists them).
        version: the first configuration version.
        ssl_context: a server context: the endpoint speaks TLS (as ElastiCache does with
            in-transit encryption); other connections are piped in plain TCP.
        upstream: where other connections are piped (default: the first node; give a
            plain memcached when the nodes speak TLS).
    """

    config_requests = counter("config get cluster requests answered.")

    def __init__(
        self,
        nodes: Iterable[Any],
        *,
        hostname: str | None = None,
        version: int = 1,
        ssl_context: ssl.SSLContext | None = None,
        upstream: tuple[str, int] | None = None,
    ) -> None:
        self._hostname = hostname
        self._nodes = [_entry(node, hostname) for node in nodes]
        if not self._nodes:
            raise ValueError("a cluster needs a node to start with")
        first = self._nodes[0]
        super().__init__(
            upstream or (first[1], first[2]), name="config-endpoint", ssl_context=ssl_context
        )
        self.version = version
        self._down = threading.Event()

    # -- the cluster, changed from the test's thread ----------------------------------------
    @property
    def nodes(self) -> list[tuple[str, str, int]]:
        """The entries listed now."""
        return list(self._nodes)

    def set_nodes(self, nodes: Iterable[Any], *, bump: bool = True) -> None:
        """List ``nodes`` from now on (and bump the version)."""
        self._nodes = [_entry(node, self._hostname) for node in nodes]
        if bump:
            self.version += 1

    def add_node(self, node: Any) -> None:
        """Add a node (the version goes up)."""
        self.set_nodes([*self._nodes, _entry(node, self._hostname)])

    def remove_node(self, node: Any) -> None:
        """Remove a node (the version goes up)."""
        gone = _entry(node, self._hostname)
        self.set_nodes([entry for entry in self._nodes if entry[1:] != gone[1:]])

    def go_down(self) -> None:
        """Answer nothing: accept connections and close them at once."""
        self._down.set()

    def come_back(self) -> None:
        """Answer again."""
        self._down.clear()

    def reply(self) -> bytes:
        """What ``config get cluster`` answers now."""
        return cluster_reply(self.version, self._nodes)

    # -- per connection (on the endpoint's loop) --------------------------------------------
    def new_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Link:
        return Link(client_reader=reader, client=writer)

    def admit(self, link: Link) -> bool:
        if self._down.is_set():
            link.close(rst=True)
            return False
        return True

    async def serve(self, link: Link) -> None:
        reader, writer = link.client_reader, link.client
        first = await reader.readuntil(b"\r\n")
        if first.startswith(b"config "):
            line = first
            while line:
                if self._down.is_set():
                    return
                if line == b"config get cluster\r\n":
                    self.count("config_requests")
                    writer.write(self.reply())
                else:
                    writer.write(b"ERROR\r\n")
                await writer.drain()
                try:
                    line = await reader.readuntil(b"\r\n")
                except asyncio.IncompleteReadError:
                    return
            return
        up_reader, up_writer = await self.connect_upstream(link, 5.0)
        up_writer.write(first)
        await up_writer.drain()
        await pipe_both_ways(reader, writer, up_reader, up_writer)

    def __repr__(self) -> str:
        where = self.address if self._port is not None else "not started"
        return f"<ConfigEndpoint {where} version {self.version}: {len(self._nodes)} node(s)>"
