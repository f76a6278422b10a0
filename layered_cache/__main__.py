"""``python -m layered_cache``: the ``layered-cache`` command (see :mod:`layered_cache.cli`)."""

from layered_cache.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
