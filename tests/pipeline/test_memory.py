"""The allocator setting of pipeline.memory: large numpy blocks come from the heap, not from mmap."""

import ctypes
import ctypes.util
import platform

import numpy as np
import pytest

from pipeline.memory import keep_large_blocks_in_heap


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mmapped_bytes() -> int:
    """Bytes the allocator holds in blocks of their own mmap (glibc mallinfo2().hblkhd)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)


def _heap_bytes() -> int:
    """Bytes of the main heap (glibc mallinfo2().arena)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().arena)


def _has_mallinfo2() -> bool:
    if platform.libc_ver()[0] != "glibc":
        return False
    return hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2")


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallopt, mallinfo2)")
def test_a_large_array_comes_from_the_heap_with_the_raised_threshold():
    n = 64 << 20  # 64 MiB, above glibc's default dynamic threshold (at most 32 MiB)
    assert keep_large_blocks_in_heap(1 << 20)
    base = _mmapped_bytes()
    a = np.ones(n // 8)
    own_mmap = _mmapped_bytes() - base
    del a
    assert keep_large_blocks_in_heap()
    base = _mmapped_bytes()
    a = np.ones(n // 8)
    heap = _mmapped_bytes() - base
    del a
    assert own_mmap >= n
    assert heap == 0


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallopt, mallinfo2)")
def test_the_heap_keeps_freed_blocks_larger_than_any_trim_threshold():
    # 1.25 GiB freed at the top of the heap (more than the 1 GiB the thresholds were before) is
    # not given back to the system; np.empty touches no page, so this costs address space only
    assert keep_large_blocks_in_heap()
    a = np.empty(768 << 20, np.uint8)
    b = np.empty(512 << 20, np.uint8)
    grown = _heap_bytes()
    del b, a
    assert _heap_bytes() == grown
