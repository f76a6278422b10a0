"""The sync engine: blocking sockets, a pool per server, and :class:`~layered_cache.Client`.

It performs the steps of the shared flows (:mod:`layered_cache.core.operations`)
with plain sockets; threads share one client and its pools.
"""
