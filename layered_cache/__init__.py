"""layered_cache: a memcached client and Django cache backend built from three strategies.

transport (TCP, TLS) x auth (none, MemCachier, memcached ASCII auth) x
serializer (pickle, JSON), composed into one thread-safe :class:`Client`::

    from layered_cache import Client
    from layered_cache.auth import MemCachierAuth
    from layered_cache.transport import TLSTransport

    client = Client("mc1.example.com:11211", transport=TLSTransport(),
                    auth=MemCachierAuth("user", "secret"))
"""

from importlib.metadata import PackageNotFoundError, version

from layered_cache import errors
from layered_cache.aio.client import AsyncClient
from layered_cache.errors import *  # noqa: F403 - the exceptions are public here too
from layered_cache.sync.client import Client

try:
    __version__ = version("layered-cache")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = ["AsyncClient", "Client", "__version__"]
__all__ += errors.__all__
__all__.sort()
