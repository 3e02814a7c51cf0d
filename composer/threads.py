"""Thread-count independent results: LAPACK calls on one thread.

MKL's QR (and the SVD built on it) splits its work by the thread count, and
the rounding follows the split: a worker with 2 cores and one with 16 would
publish different bytes for the same recipe. The factorisations Lorry runs are
of thin matrices (``n x rank``, a few ms), so they run on one thread; the large
products around them (GEMMs that split rows, not the reduction) keep every
thread, and ``tests/composer/test_thread_counts.py`` checks the published bytes
under 1 and 2 threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["single_threaded", "use_threads"]

# torch's thread count is process-wide: one section at a time sets and restores it.
_LOCK = threading.Lock()


def use_threads(count: int) -> None:
    """Run the calling thread's CPU kernels on ``count`` threads (what torch's
    ``set_num_threads`` sets, from the thread that will run them).

    On a machine shared with other busy processes, give the cores the process really gets:
    a blocked kernel's parallel region waits for its slowest thread, so one preempted thread
    slows every block (``bench/README-compose.md``). Results do not depend on the count.
    """
    if count < 1:
        raise ValueError(f"a thread count is at least 1, not {count}")
    with _LOCK:
        if torch.get_num_threads() != count:
            torch.set_num_threads(count)


@contextmanager
def single_threaded(device: torch.device) -> Iterator[None]:
    """Run the CPU kernels of the block on one thread (no-op on an accelerator)."""
    if device.type != "cpu":
        yield
        return
    with _LOCK:
        threads = torch.get_num_threads()
        if threads != 1:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if threads != 1:
                torch.set_num_threads(threads)
