"""What layered_cache takes from pymemcache. If a release moves it, these fail first, and loudly.

Only the serde flag convention is used at run time (wire compatibility with
Django's ``PyMemcacheCache``); the placement hash is checked against
pymemcache's own. Nothing else of pymemcache, and none of its private API.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pymemcache import serde
from pymemcache.client.rendezvous import RendezvousHash

import layered_cache

PACKAGE = Path(layered_cache.__file__).parent


def test_flag_convention_is_pymemcaches() -> None:
    # Django's PyMemcacheCache writes with these flags; we read and write the same.
    assert (serde.FLAG_BYTES, serde.FLAG_PICKLE, serde.FLAG_INTEGER, serde.FLAG_LONG) == (
        0,
        1,
        2,
        4,
    )
    assert (serde.FLAG_COMPRESSED, serde.FLAG_TEXT) == (8, 16)


def test_pymemcache_is_imported_by_few_modules_and_never_privately() -> None:
    importers: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pymemcache"):
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.startswith("pymemcache")]
            if names:
                importers.setdefault(str(path.relative_to(PACKAGE)), []).extend(names)
    assert len(importers) <= 3, importers
    private = [
        name
        for names in importers.values()
        for name in names
        if "._" in name or name.split(".")[-1].startswith("_")
    ]
    assert private == []


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
