"""Benchmarks for layered_cache: peers, scale-out and key movement (see README.md here)."""
