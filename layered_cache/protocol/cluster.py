"""A configuration endpoint's cluster configuration: the request and its body, bytes only.

AWS ElastiCache for Memcached and Google Cloud Memorystore for Memcached both
answer ``config get cluster`` on their configuration (discovery) endpoint
with the same shape::

    CONFIG cluster 0 <length>\\r\\n
    <version>\\n
    <hostname>|<ip>|<port> <hostname>|<ip>|<port> ...\\n
    \\r\\n
    END\\r\\n

The reply parser (:data:`~layered_cache.protocol.replies.Expect.CONFIG`)
returns the ``<length>`` bytes of the body; :func:`parse_cluster_config`
reads the version and the nodes out of it. ElastiCache engines older than
1.4.14 keep the same body under the key ``AmazonElastiCache:cluster``
(:data:`LEGACY_CLUSTER_KEY`, read with a plain ``get``).
"""

from __future__ import annotations

from typing import Final, NamedTuple

from layered_cache.protocol.replies import ProtocolError

__all__ = [
    "CONFIG_GET_CLUSTER",
    "LEGACY_CLUSTER_KEY",
    "ClusterConfig",
    "ClusterNode",
    "parse_cluster_config",
]

#: ``config get cluster``, read with :data:`~layered_cache.protocol.replies.Expect.CONFIG`.
CONFIG_GET_CLUSTER: Final = b"config get cluster\r\n"
#: Where ElastiCache engines before 1.4.14 keep the configuration (``get`` it).
LEGACY_CLUSTER_KEY: Final = b"AmazonElastiCache:cluster"


class ClusterNode(NamedTuple):
    """One node of the list: its DNS name (may be empty), its IP address (may be empty), port."""

    hostname: str
    ip: str
    port: int


class ClusterConfig(NamedTuple):
    """The configuration version (raised by the service on every change) and the nodes."""

    version: int
    nodes: tuple[ClusterNode, ...]


def parse_cluster_config(body: bytes) -> ClusterConfig:
    """Read the version line and the node list of a ``config get cluster`` body.

    Raises:
        ProtocolError: the body is not a version line followed by
            ``hostname|ip|port`` entries (the message shows what was wrong).

    Example:
        >>> parse_cluster_config(b"12\\nnode1.example|10.0.0.1|11211 |10.0.0.2|11211\\n")
        ClusterConfig(version=12, nodes=(ClusterNode(hostname='node1.example', \
ip='10.0.0.1', port=11211), ClusterNode(hostname='', ip='10.0.0.2', port=11211)))
    """
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("a cluster configuration that is not ASCII") from None
    # The version line ends with LF alone; the node line with LF (then the CRLF
    # the parser already consumed). Tolerate CRLF and blank lines all the same.
    lines = [line.strip() for line in text.replace("\r", "").split("\n") if line.strip()]
    if not lines:
        raise ProtocolError("an empty cluster configuration (no version, no nodes)")
    if not lines[0].isdigit() or len(lines[0]) > 20:
        raise ProtocolError(
            f"a cluster configuration version that is not a number: {lines[0][:40]!r}"
        )
    if len(lines) > 2:
        raise ProtocolError("a cluster configuration with more than a version line and a node line")
    nodes = tuple(_node(entry) for entry in (lines[1].split() if len(lines) == 2 else []))
    return ClusterConfig(int(lines[0]), nodes)


def _node(entry: str) -> ClusterNode:
    parts = entry.split("|")
    if len(parts) != 3:
        raise ProtocolError(f"a cluster node that is not hostname|ip|port: {entry[:80]!r}")
    hostname, ip, port_text = parts
    if not (hostname or ip):
        raise ProtocolError(f"a cluster node with neither hostname nor IP: {entry[:80]!r}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ProtocolError(f"a cluster node with a bad port: {entry[:80]!r}")
    return ClusterNode(hostname, ip, int(port_text))
