"""Wall time and peak resident memory of a block of work."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        import resource

        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError):
        return 0.0


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


@contextlib.contextmanager
def measure(interval: float = 0.02) -> Iterator[Measurement]:
    """Sample RSS in a background thread while the block runs; report its peak and the elapsed time."""
    result = Measurement(peak_rss_mb=_rss_mb())
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            result.peak_rss_mb = max(result.peak_rss_mb, _rss_mb())

    thread = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
        result.seconds = time.perf_counter() - start
        result.peak_rss_mb = max(result.peak_rss_mb, _rss_mb())
