"""How the C allocator hands freed memory back to the operating system.

glibc serves every allocation above its mmap threshold (dynamic, at most 32 MiB by
default) with its own ``mmap`` and returns it with ``munmap`` when freed, and gives the
free top of its heap back (``brk``) once it exceeds the trim threshold. numpy's large
temporaries (a 512 x 512 x 303 CT is 79 million voxels: 317 MB in float32) are then
page-faulted in and zeroed by the kernel afresh every time (with transparent huge pages,
2 MiB at a time). :func:`keep_large_blocks_in_heap` keeps them in the heap and never trims it:
the process holds its peak memory until it exits, and reuses it.

Measured (2 cores, ``perf``): allocating and freeing a 317 MB and a 635 MB array twenty
times took 7.5 s wall, 5.5 s of it in the kernel, with the 1 GiB trim threshold of the
previous version (the two arrays together exceed it, so the top was trimmed every time),
1.7 s and 0.1 s without trimming, same peak memory (1.85 GB). On the real GE CT,
``spectdose segment`` spent 23-28 s in the kernel with glibc's defaults, 9-14 s with
the 1 GiB thresholds; the README's benchmark gives the current numbers.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["keep_large_blocks_in_heap"]

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3


def keep_large_blocks_in_heap(threshold_bytes: int = 1 << 30) -> bool:
    """Raise glibc's mmap threshold and switch heap trimming off, so that freed large blocks are reused.

    Trimming off (``M_TRIM_THRESHOLD`` -1, as ``mallopt(3)`` documents): the free memory at
    the top of the heap is never given back, the freed temporaries sit there until reused.

    Parameters
    ----------
    threshold_bytes : int
        Allocations up to this size (bytes) come from the heap.

    Returns
    -------
    bool
        True when the allocator accepted the setting; False where there is no glibc
        ``mallopt`` (macOS, musl) or it refused, and nothing changed.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    value = int(min(threshold_bytes, 2**31 - 1))
    return bool(mallopt(_M_MMAP_THRESHOLD, value)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))
