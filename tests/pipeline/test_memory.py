"""The allocator setting of pipeline.memory: large numpy blocks come from the heap and stay there.

Each check runs in a fresh interpreter: the setting is process-wide and permanent (a heap that is
never trimmed keeps whatever earlier tests freed, and then serves any request from it).
"""

import ctypes
import ctypes.util
import platform
import subprocess
import sys
import textwrap

import pytest

_PRELUDE = """
import ctypes, ctypes.util
import numpy as np
from pipeline.memory import keep_large_blocks_in_heap

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
mmapped = lambda: int(libc.mallinfo2().hblkhd)  # bytes in blocks of their own mmap
heap = lambda: int(libc.mallinfo2().arena)  # bytes of the main heap
"""


def _run(body: str) -> None:
    code = _PRELUDE + textwrap.dedent(body)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _has_mallinfo2() -> bool:
    if platform.libc_ver()[0] != "glibc":
        return False
    return hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2")


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallopt, mallinfo2)")
def test_a_large_array_comes_from_its_own_mmap_by_default_and_from_the_heap_with_the_setting():
    _run("""
        n = 64 << 20  # 64 MiB, above glibc's default dynamic threshold (at most 32 MiB)
        base = mmapped()
        a = np.ones(n // 8)
        own_mmap = mmapped() - base
        del a
        assert keep_large_blocks_in_heap()
        base = mmapped()
        a = np.ones(n // 8)
        in_heap = mmapped() - base == 0
        del a
        assert own_mmap >= n, own_mmap
        assert in_heap
    """)


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallopt, mallinfo2)")
def test_the_heap_keeps_freed_blocks_larger_than_any_trim_threshold():
    # 1.25 GiB freed at the top of the heap (more than the 1 GiB the thresholds were before) is
    # not given back to the system; np.empty touches no page, so this costs address space only
    _run("""
        assert keep_large_blocks_in_heap()
        a = np.empty(768 << 20, np.uint8)
        b = np.empty(512 << 20, np.uint8)
        grown = heap()
        del b, a
        assert heap() == grown, (heap(), grown)
    """)
