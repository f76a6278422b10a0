"""How the sync client's servers are built, and started afresh in a forked child.

:func:`server_node` makes a :class:`~layered_cache.sync.node.ServerNode` from
a checked server entry: its connection factory closes over the strategies
(transport, authenticator), never over the client, so a client can be
garbage collected while its nodes are still referenced.

A child process (gunicorn and Celery workers, multiprocessing) must not reuse
its parent's connections: :func:`on_fork_in_child` registers what each live
client does then (its pools start empty, its locks fresh).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable

from layered_cache.core.config import ClientConfig, ServerEntry
from layered_cache.core.observer import Observer
from layered_cache.sync.connection import Connection, close_in_order
from layered_cache.sync.discovery import Refresher
from layered_cache.sync.node import ServerNode
from layered_cache.sync.pool import ConnectionPool
from layered_cache.transport import format_address
from layered_cache.transport._base import Address

__all__ = [
    "close_all",
    "connection_factory",
    "endpoint_connector",
    "on_fork_in_child",
    "server_node",
]


def connection_factory(
    address: Address, config: ClientConfig, observer: Observer | None
) -> Callable[[], Connection]:
    """What opens (and authenticates) a new connection to ``address``, reported to ``observer``."""
    name = format_address(address)
    transport, auth = config.transport, config.auth
    connect_timeout, timeout = config.connect_timeout, config.timeout

    def connect() -> Connection:
        return Connection.open(
            address,
            name=name,
            transport=transport,
            auth=auth,
            connect_timeout=connect_timeout,
            timeout=timeout,
        )

    return connect if observer is None else observer.observed_connect(connect, name, auth)


def endpoint_connector(config: ClientConfig) -> Callable[[Address], Connection]:
    """What opens a connection to a discovery endpoint: unobserved (it is not a cache server)."""

    def connect(address: Address) -> Connection:
        return connection_factory(address, config, None)()

    return connect


def server_node(
    entry: ServerEntry, config: ClientConfig, refresher: Refresher, bounds: tuple[int, float | None]
) -> ServerNode:
    """The node of one server; ``bounds`` are its pool's ``(max_connections, pool_timeout)``."""
    connect = connection_factory(entry.address, config, config.observer)
    if config.membership.interval:
        plain_connect = connect

        def connect() -> Connection:
            # A new connection is where a closed (or forked) client comes back to
            # life: discovery restarts here, never on the hot path of a call.
            refresher.ensure_running()
            return plain_connect()

    return ServerNode(
        entry.address,
        entry.name,
        connect,
        entry.health,
        ConnectionPool(
            entry.name,
            max_connections=bounds[0],
            pool_timeout=bounds[1],
            max_idle=config.max_pool_size,
            idle_timeout=config.idle_timeout,
        ),
        timeout=config.timeout,
        observer=config.observer,
    )


def close_all(nodes: Iterable[ServerNode]) -> None:
    """Close the idle connections of ``nodes`` (busy ones close when they come back broken).

    They are closed in order (:func:`~layered_cache.sync.connection.close_in_order`):
    ``noreply`` commands just sent still reach the servers.
    """
    taken = [(node.pool, conn) for node in nodes for conn in node.pool.take_idle()]
    try:
        close_in_order([conn for _, conn in taken])
    finally:
        for pool, _ in taken:
            pool.forget()


# What each live client does in a forked child (held weakly: a dropped client is forgotten).
_in_child: set[weakref.WeakMethod[Callable[[], None]]] = set()


def on_fork_in_child(after_fork: Callable[[], None]) -> None:
    """Call the bound method ``after_fork`` in every child forked from now on, while its
    object lives."""
    _in_child.add(weakref.WeakMethod(after_fork, _in_child.discard))


def _after_fork_in_child() -> None:
    for method in list(_in_child):
        after_fork = method()
        if after_fork is not None:
            after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
