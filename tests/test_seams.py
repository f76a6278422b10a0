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
