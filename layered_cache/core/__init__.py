"""What every I/O engine shares and none of them does itself: no sockets, no event loop.

- :mod:`~layered_cache.core.operations`: each public method as a flow of steps
  (exchanges with servers, sleeps, computations) that an engine drives;
- :mod:`~layered_cache.core.herd`: the herd-safe ``get_or_set`` flows;
- :mod:`~layered_cache.core.codec`: values to bytes and back, unreadable bytes as a miss;
- :mod:`~layered_cache.core.health`: when a failing server is skipped and tried again,
  and the fail-silent rule;
- :mod:`~layered_cache.core.translate`: the one boundary where socket, TLS and
  protocol failures become :mod:`layered_cache.errors`.
"""
