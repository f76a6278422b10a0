"""What the sync and the asyncio client have in common apart from I/O.

:class:`BaseClient` holds the checked options (:mod:`layered_cache.core.config`),
the flows (:class:`~layered_cache.core.operations.Operations`) over the
engine's server objects, and everything that does not touch the network:
placement, counters, the repr. Each engine adds only its driver and its
public methods (``def`` for one, ``async def`` for the other).
"""

from __future__ import annotations

import copy
from typing import Generic, Self

from layered_cache.auth._base import Authenticator
from layered_cache.core.config import ClientConfig, ServerEntry, server_entry
from layered_cache.core.membership import DiscoveryStatus, Membership, reconcile
from layered_cache.core.namespaces import NamespaceFlows
from layered_cache.core.operations import N, Operations
from layered_cache.discovery._base import Found
from layered_cache.serialization._base import Serializer
from layered_cache.transport._base import Address, Transport

__all__ = ["BaseClient"]

Key = str | bytes


class BaseClient(Generic[N]):
    """The engine-independent half of a client (see the module docstring)."""

    #: The transport the client was built with (defaults filled in).
    transport: Transport
    #: The authenticator the client was built with.
    auth: Authenticator
    #: The serializer the client was built with.
    serializer: Serializer
    #: Seconds allowed to connect and authenticate (None waits forever).
    connect_timeout: float | None
    #: Seconds allowed for an exchange with a server (None waits forever).
    timeout: float | None
    #: Fail-silent mode.
    ignore_exceptions: bool
    #: The key policy (``"strict"`` refuses keys memcached cannot take, ``"hash"`` digests them).
    key_policy: str
    #: Seconds a namespace's generation, once read, is used without asking memcached again.
    namespace_cache_ttl: float

    def __init__(self, config: ClientConfig, nodes: dict[str, N]) -> None:
        self._config = config
        self.transport = config.transport
        self.auth = config.auth
        self.serializer = config.serializer
        self.connect_timeout = config.connect_timeout
        self.timeout = config.timeout
        self.ignore_exceptions = config.fail_silent.enabled
        self._fail_silent = config.fail_silent
        self._nodes = nodes
        self.key_policy = config.keys.name
        self.namespace_cache_ttl = config.namespace_cache_ttl
        #: None unless something listens: the engines test it once per call.
        self._observer = config.observer
        self._ops: Operations[N] = self._operations(nodes)
        self._membership: Membership = config.membership

    def _operations(self, nodes: dict[str, N]) -> Operations[N]:
        """The flows over ``nodes`` with this client's codec, policies and observer."""
        config = self._config
        return Operations(config.codec, nodes, config.fail_silent, config.keys, config.observer)

    def _over(self, ops: Operations[N]) -> Self:
        """This client over other flows: a namespace's key layout, for one call.

        A shallow copy: the same servers, policies and driver; the listeners
        are the flows' own (none for flows that report nothing).
        """
        view = copy.copy(self)
        view._ops = ops
        view._observer = ops.observer
        return view

    def _namespace_flows(self, name: str | bytes) -> NamespaceFlows[Self]:
        """The namespace ``name`` of this client, for its engine's namespace view."""
        return NamespaceFlows(lambda: self._ops, self._over, name, self.namespace_cache_ttl)

    # -- discovery ------------------------------------------------------------------

    @property
    def discovery(self) -> DiscoveryStatus:
        """What discovery has found so far (nodes, version, last lookup, last error)."""
        return self._membership.status(self.servers)

    def _new_node(self, entry: ServerEntry) -> N:
        """The engine's server object for a node discovery found."""
        raise NotImplementedError

    def _adopt(self, found: Found) -> bool:
        """Swap in the nodes ``found`` lists, retire the nodes that left; True if they changed.

        A retired node closes its idle connections at once, and each busy one when
        its call ends.

        The swap is one assignment of the client's flows (placement included), so
        a call sees either the old ring or the new one, never a mix; calls in
        flight finish on the node they started on.
        """
        membership = self._membership
        config = self._config

        def build(address: Address) -> N:
            return self._new_node(server_entry(address, config.policy, membership, config.observer))

        with membership.lock:
            change = reconcile(self._nodes, found.nodes, build)
            membership.succeeded(found, changed=change is not None)
            if change is None:
                return False
            nodes, removed = change
            self._nodes = nodes
            self._ops = self._operations(nodes)
        for node in removed:
            node.retire()
        return True

    @property
    def servers(self) -> list[str]:
        """The servers, as ``host:port`` strings, in the order given."""
        return [node.name for node in self._nodes.values()]

    def server_for(self, key: Key) -> str:
        """The server (``host:port``) that holds ``key``."""
        return self._ops.node(key).name

    @property
    def ignored_errors(self) -> int:
        """How many calls fail-silent mode has answered with a miss or False so far."""
        return self._fail_silent.count

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.servers!r}, transport={self.transport!r}, "
            f"auth={self.auth!r}, serializer={self.serializer!r})"
        )
