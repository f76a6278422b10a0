"""The configuration-endpoint lookup shared by ElastiCache and Memorystore discovery.

Both services answer ``config get cluster`` on a stable endpoint with a
version and a ``hostname|ip|port`` node list
(:mod:`layered_cache.protocol.cluster`). The lookup asks each endpoint in
turn, on a connection of its own, until one answers with a usable list.
"""

from __future__ import annotations

from typing import Any, Literal

from layered_cache.discovery._base import Ask, Conversation, DiscoveryFlow, Found
from layered_cache.errors import ConfigurationError, DiscoveryError, LayeredCacheError
from layered_cache.protocol import ErrorReply, Expect, ProtocolError
from layered_cache.protocol.cluster import (
    CONFIG_GET_CLUSTER,
    LEGACY_CLUSTER_KEY,
    ClusterConfig,
    ClusterNode,
    parse_cluster_config,
)
from layered_cache.protocol.requests import get as get_request
from layered_cache.transport import format_address
from layered_cache.transport._base import Address

__all__ = ["NodeAddress", "check_use", "endpoint_lookup"]

#: Which field of ``hostname|ip|port`` the client connects to.
NodeAddress = Literal["hostname", "ip"]


def check_use(value: object) -> NodeAddress:
    """``value`` if it is ``"hostname"`` or ``"ip"``, else raise ConfigurationError."""
    if value == "hostname":
        return "hostname"
    if value == "ip":
        return "ip"
    raise ConfigurationError(
        f'use must be "hostname" (connect to each node by its DNS name; needed to verify '
        f'TLS certificates) or "ip" (by its address), not {value!r}'
    )


def _conversation(*, legacy: bool) -> Conversation:
    """``config get cluster``; on engines that do not know it, the legacy key (if allowed)."""
    reply: Any = yield CONFIG_GET_CLUSTER, Expect.CONFIG
    if isinstance(reply, ErrorReply) and reply.code == b"ERROR" and legacy:
        # ElastiCache before 1.4.14: the same body, stored under a key.
        values: Any = yield get_request([LEGACY_CLUSTER_KEY]), Expect.VALUES
        if isinstance(values, list):
            return values[0][2] if values else b""
        reply = values
    if isinstance(reply, ErrorReply):
        text = (reply.code + b" " + reply.message).strip()[:80].decode("ascii", "replace")
        raise ProtocolError(f"it answered {text!r} to config get cluster")
    if not isinstance(reply, bytes):
        raise ProtocolError("it closed the connection instead of answering config get cluster")
    return reply


def _address(node: ClusterNode, use: NodeAddress) -> Address:
    if use == "ip":
        return (node.ip or node.hostname, node.port)
    return (node.hostname or node.ip, node.port)


def endpoint_lookup(
    seeds: tuple[Address, ...], *, use: NodeAddress, legacy: bool, service: str
) -> DiscoveryFlow:
    """Ask each endpoint in turn; the first usable node list wins.

    Raises:
        DiscoveryError: no endpoint answered with a usable list (each one's
            problem is in the message).
    """
    problems = []
    for seed in seeds:
        name = format_address(seed)
        try:
            body = yield Ask(seed, _conversation(legacy=legacy))
            config: ClusterConfig = parse_cluster_config(body)
        except (LayeredCacheError, ProtocolError) as exc:
            text = str(exc)
            problems.append(text if text.startswith(name) else f"{name}: {text}")
            continue
        if not config.nodes:
            problems.append(f"{name}: the configuration (version {config.version}) lists no node")
            continue
        nodes = tuple(dict.fromkeys(_address(node, use) for node in config.nodes))
        return Found(nodes, config.version, name)
    endpoints = tuple(format_address(seed) for seed in seeds)
    raise DiscoveryError(
        f"{service} discovery found no node list: " + "; ".join(problems), endpoints=endpoints
    )
