"""Python's collector, told what an apply keeps for its whole run.

An apply holds a few large, long-lived things (a saved plan's receipt, the plan's stages, every item's
result as the waves go), and makes short-lived garbage by the million (answers decoded, bodies built).
With the collector's defaults, each full collection walked all of the long-lived ones, with every
thread stopped: 20 times an Orion wave at 20,000 registrations (0.15 s each), about 80 times, 0.05 s
growing to 0.17 s, at 100,000 (measured with gc.callbacks). Inside `long_lived_heap()` what exists
when it is entered is frozen out of collection (`gc.freeze`), and full collections come after
FULL_EVERY collections of the middle generation instead of 10: the young generations, where the
garbage is, are collected as usual. Blocks nest (the run around the waves); the outermost one thaws
the heap and restores the thresholds, so a process that applies again collects everything again.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FULL_EVERY", "long_lived_heap"]

FULL_EVERY = 100  # collections of generation 1 between full collections (Python's default: 10)

_lock = threading.Lock()
_depth = 0
_thresholds = gc.get_threshold()


@contextmanager
def long_lived_heap() -> Iterator[None]:
    global _depth, _thresholds
    with _lock:
        if _depth == 0:
            _thresholds = gc.get_threshold()
            gc.set_threshold(_thresholds[0], _thresholds[1], max(_thresholds[2], FULL_EVERY))
        _depth += 1
        gc.collect()  # what is garbage now is not frozen with the rest
        gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.unfreeze()
                gc.set_threshold(*_thresholds)
