"""The public names: complete, sorted, importable."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "layered_cache",
    "layered_cache.errors",
    "layered_cache.transport",
    "layered_cache.auth",
    "layered_cache.diagnostics",
    "layered_cache.serialization",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__)
    for public in module.__all__:
        assert hasattr(module, public), public


def test_design_names() -> None:
    from layered_cache import AuthenticationError, Client, ConfigurationError, LayeredCacheError
    from layered_cache.auth import AsciiAuth, MemCachierAuth, NoAuth
    from layered_cache.serialization import JSONSerializer, PickleSerializer
    from layered_cache.transport import TCPTransport, TLSTransport

    assert issubclass(AuthenticationError, LayeredCacheError)
    assert issubclass(ConfigurationError, ValueError)
    assert all([Client, AsciiAuth, MemCachierAuth, NoAuth, JSONSerializer, PickleSerializer])
    assert all([TCPTransport, TLSTransport])


def test_core_does_not_import_django() -> None:
    import subprocess
    import sys

    code = "import sys, layered_cache, layered_cache.sync.client; print('django' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
