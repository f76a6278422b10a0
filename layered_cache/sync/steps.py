"""The steps of a flow other than an exchange, performed by the sync engine.

:class:`~layered_cache.core.operations.Exchange` steps go straight to their
server's node (the client's driver does that itself, on the hot path); this is
the rest: a :class:`~layered_cache.core.operations.Batch` over several
servers, a meta probe, a herd waiter's sleep, and computing a value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from layered_cache.core.observer import Observer
from layered_cache.core.operations import Batch, Compute, Exchange, ProbeMeta, Sleep
from layered_cache.errors import CacheConnectionError
from layered_cache.sync.batch import perform_batch

__all__ = ["perform"]


def perform(
    step: object,
    operation: str,
    observer: Observer | None,
    absorb: Callable[[CacheConnectionError], bool],
) -> Any:
    """Perform ``step`` and answer what the flow gets back for it.

    Args:
        step: a :class:`Batch`, :class:`ProbeMeta`, :class:`Sleep` or :class:`Compute`.
        operation: the public method, as events name it.
        observer: the client's observer, or None.
        absorb: fail-silent mode's verdict on a server's failure (see
            :func:`~layered_cache.sync.batch.perform_batch`).
    """
    if type(step) is Batch:
        if observer is None:
            return perform_batch(step, absorb)
        exchanged = observer.exchanged

        def report(exchange: Exchange, start: float, reply: Any, error: Any) -> None:
            exchanged(exchange, operation, start, reply, error)

        return perform_batch(step, absorb, report)
    if type(step) is ProbeMeta:
        if observer is None:
            return step.node.probe_meta()
        return observer.probe(step.node, operation)
    if type(step) is Sleep:
        time.sleep(step.seconds)
        return None
    if type(step) is Compute:
        default = step.default
        return default() if callable(default) else default
    raise TypeError(f"not a step: {step!r}")  # pragma: no cover
