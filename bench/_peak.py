"""Peak resident memory of a block, for the bench scripts (Linux: /proc/self/statm)."""

from __future__ import annotations

import contextlib
import os
import threading
import time


def rss() -> int:
    """Resident set size of this process, bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def peak_mib():
    """``with peak_mib() as box:`` ... then ``box[0]``: the peak RSS above the level before the block, MiB
    (a sampler thread reads it every 2 ms)."""
    peak, stop, box = [0], threading.Event(), [0.0]

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)

    before = rss()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        stop.set()
        thread.join()
        box[0] = (max(peak[0], rss()) - before) / 2**20
