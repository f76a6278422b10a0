"""pymemcache's private API we rely on. If a release moves it, these fail first, and loudly."""

from __future__ import annotations

import inspect

from pymemcache.client import base
from pymemcache.client.rendezvous import RendezvousHash

from layered_cache._connection import Connection


def test_connect_seam_exists() -> None:
    # Every command connects lazily through _connect() when sock is None.
    source = inspect.getsource(base.Client._fetch_cmd) + inspect.getsource(base.Client._store_cmd)
    assert "self._connect()" in source
    assert "self.sock is None" in source
    assert Connection._connect is not base.Client._connect


def test_check_key_seam_exists() -> None:
    assert list(inspect.signature(base.Client.check_key).parameters) == [
        "self",
        "key",
        "key_prefix",
    ]
    source = inspect.getsource(base.Client._fetch_cmd)
    assert "self.check_key(" in source


def test_rendezvous_hash_naming() -> None:
    hasher = RendezvousHash(nodes=["a:1", "b:2"])
    assert hasher.get_node("key") in {"a:1", "b:2"}


def test_placement_hash_equals_pymemcache(  # the C hash must agree byte for byte
) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from pymemcache.client.murmur3 import murmur3_32

    from layered_cache._ring import Ring, murmur3

    @settings(max_examples=500, deadline=None)
    @given(st.text(max_size=80))
    def check(text: str) -> None:
        assert murmur3(text) == murmur3_32(text)

    check()
    names = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211", "[::1]:11211"]
    reference = RendezvousHash(nodes=list(names))
    ring = Ring(names)
    for i in range(2000):
        key = f":1:user:{i}:ü{i * 7}"
        assert ring.node_for(key) == reference.get_node(key)
