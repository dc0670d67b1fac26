"""Keeping a long-running process's memory flat under MB-sized messages (server and workers)."""
from __future__ import annotations

MMAP_THRESHOLD = 4 << 20  # bytes


def return_big_buffers_to_the_os():
    """Make glibc serve every buffer >= 4 MiB with its own mmap, freed back to the OS at once.

    glibc otherwise raises its mmap threshold after the first large free, and the MB-sized
    messages of a long-running server (audio uploads, oversize junk) then fragment the heap and
    RSS only grows. Not lower: at 128 KiB (and still at 1 MiB, with the server's zmq buffers
    about) the temporaries of generation became fresh mmaps with zeroed pages, and 60 s x 8 takes
    took 1.5-2.3x as long (0.2-0.34 s against 0.15 s, measured in one process before and after the
    call). No-op without glibc's mallopt.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD (a fixed value also stops the dynamic raise)
    except (OSError, AttributeError):
        pass


_libc = None


def trim() -> None:
    """Give the heap's free pages back to the OS (glibc malloc_trim): buffers under the mmap
    threshold (messages of 128 KiB to 4 MiB) otherwise leave the heap as large as its peak.
    Cheap (a walk of the free lists); the server calls it after bursts of received bytes."""
    global _libc
    try:
        if _libc is None:
            import ctypes
            import ctypes.util

            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
