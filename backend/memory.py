"""Keeping a long-running process's memory flat under MB-sized messages (server and workers)."""
from __future__ import annotations


def return_big_buffers_to_the_os():
    """Make glibc serve every buffer >= 128 KiB with its own mmap, freed back to the OS at once.

    glibc otherwise raises its mmap threshold after the first large free, and the MB-sized
    messages of a long-running server (audio uploads, oversize junk) then fragment the heap and
    RSS only grows. No-op where glibc's mallopt is not available.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (a fixed value also stops the dynamic raise)
    except (OSError, AttributeError):
        pass
