"""Histogram bucket boundaries for memcached call durations, shared by the adapters."""

from __future__ import annotations

from typing import Final

__all__ = ["DURATION_BUCKETS"]

#: Seconds, from 50 µs (a loopback ``get``) to 10 s. The usual defaults start at
#: 1 ms (OpenTelemetry's database convention) or 5 ms (prometheus-client), where
#: nearly every memcached call would land in the first bucket.
DURATION_BUCKETS: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
