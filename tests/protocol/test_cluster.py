"""``config get cluster``: the reply as the AWS and Google documentation give it, split anywhere."""

from __future__ import annotations

import pytest

from layered_cache.protocol import ErrorReply, Expect, ProtocolError, ReplyParser
from layered_cache.protocol.cluster import ClusterNode, parse_cluster_config

# Two nodes, in the shape of the AWS documentation's example: the version line
# ends with LF, the node line with LF and then CR LF.
AWS_BODY = (
    b"12\n"
    b"myCluster.pc4ldq.0001.use1.cache.amazonaws.com|10.82.235.120|11211 "
    b"myCluster.pc4ldq.0002.use1.cache.amazonaws.com|10.80.249.27|11211\n"
)
AWS_REPLY = b"CONFIG cluster 0 %d\r\n" % len(AWS_BODY) + AWS_BODY + b"\r\nEND\r\n"
# Memorystore lists each node as ip|ip|port.
MEMORYSTORE_BODY = b"3\n10.0.0.2|10.0.0.2|11211 10.0.0.3|10.0.0.3|11211\n"


def parse(data: bytes, step: int = 1) -> object:
    parser = ReplyParser()
    parser.expect(Expect.CONFIG)
    for start in range(0, len(data), step):
        parser.feed(data[start : start + step])
        reply = parser.next_reply()
        if reply is not None:
            assert parser.idle
            return reply
    raise AssertionError("incomplete")


@pytest.mark.parametrize("step", [1, 2, 7, 1000])
def test_the_documented_reply_split_anywhere(step: int) -> None:
    assert parse(AWS_REPLY, step) == AWS_BODY


def test_version_and_nodes() -> None:
    config = parse_cluster_config(AWS_BODY)
    assert config.version == 12
    assert config.nodes == (
        ClusterNode("myCluster.pc4ldq.0001.use1.cache.amazonaws.com", "10.82.235.120", 11211),
        ClusterNode("myCluster.pc4ldq.0002.use1.cache.amazonaws.com", "10.80.249.27", 11211),
    )
    assert parse_cluster_config(MEMORYSTORE_BODY).nodes[1] == ClusterNode(
        "10.0.0.3", "10.0.0.3", 11211
    )


@pytest.mark.parametrize("extra", [-1, 1, 2])
def test_a_length_that_counts_the_line_ends_differently(extra: int) -> None:
    # Whether the stated length includes the final LF (or the CR LF) varies by
    # reading of the docs; the body is read either way.
    data = b"CONFIG cluster 0 %d\r\n" % (len(AWS_BODY) + extra) + AWS_BODY + b"\r\nEND\r\n"
    body = parse(data)
    assert isinstance(body, bytes)
    assert parse_cluster_config(body) == parse_cluster_config(AWS_BODY)


def test_errors_and_no_configuration() -> None:
    assert parse(b"ERROR\r\n") == ErrorReply(b"ERROR", b"")
    assert parse(b"END\r\n") == b""
    with pytest.raises(ProtocolError, match="config get"):
        parse(b"VALUE k 0 1\r\n")
    with pytest.raises(ProtocolError, match="longer than its header"):
        parse(b"CONFIG cluster 0 2\r\n12\nnode|ip|1\n\r\nEND\r\n", step=1000)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty"),
        (b"x\nh|i|1\n", "not a number"),
        (b"1\nh|i\n", "hostname|ip|port"),
        (b"1\n||11211\n", "neither hostname nor IP"),
        (b"1\nh|i|99999\n", "bad port"),
        (b"1\nh|i|1\nmore\n", "more than"),
        ("1\nh\u00e9|i|1\n".encode(), "not ASCII"),
    ],
)
def test_malformed_bodies(body: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        parse_cluster_config(body)


def test_a_cluster_without_nodes() -> None:
    assert parse_cluster_config(b"5\n\n").nodes == ()
