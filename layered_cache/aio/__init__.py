"""The asyncio engine: protocol-based connections, bounded pools per event loop, AsyncClient.

It performs the steps of the shared flows (:mod:`layered_cache.core.operations`)
with asyncio; every server of a batch is asked at once.
"""
