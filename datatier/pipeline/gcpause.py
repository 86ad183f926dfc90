"""Pausing Python's cyclic garbage collector around bulk streaming work.

A dump or a warm allocates a tuple (or dict) per row; those are freed by reference
counting as soon as a batch is written, but each allocation still counts toward the
collector's thresholds, so it keeps walking the long-lived heap (every module and the S3
client's service model) for cycles that the streaming code never makes. On the 2M-row
benchmark that walking was ~7 % of a backup's CPU. Memory stays as it was: what the
streaming code allocates is freed by reference counting; the rare cycle made inside (an
exception's traceback) waits for the first collection after the block.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block; restore its previous state after
    (nesting and callers that already disabled it are left as they were)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
