"""The disk, the page cache and host memory, as ``avlora bench load`` measures them (no torch).

- ``drop_from_cache(path)``: ask the kernel to forget the file's cached pages
  (``posix_fadvise(POSIX_FADV_DONTNEED)``); pages some process still maps stay, so the caller
  checks with ``cached_fraction``.
- ``cached_fraction(path)``: the share of the file's pages in the page cache now (``mincore``
  over a read-only mapping, which itself reads nothing); ``None`` where it cannot be asked.
- ``read_sequential(path, buffer)``: the disk's raw sequential read of one file, large reads into
  one reused buffer, nothing else done with the bytes.
- ``HostMemory``: resident memory from ``/proc/self/status``; its peak (``VmHWM``) is reset before
  each interval through ``/proc/self/clear_refs`` where the kernel allows it, else the process's
  ``ru_maxrss`` (a high-water mark since start: only an interval that raises it shows).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import resource
import sys
import time
from pathlib import Path

READ_BUFFER_BYTES = 64 * 1024 * 1024
PAGE = mmap.PAGESIZE


def drop_from_cache(path: Path) -> bool:
    """``POSIX_FADV_DONTNEED`` on the whole file, after writing back its dirty pages (a file just
    written keeps them otherwise); False where the call is not available or refused."""
    if not hasattr(os, "posix_fadvise"):
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _libc_mincore():
    if _LIBC is None or not hasattr(_LIBC, "mincore"):
        return None
    mincore = _LIBC.mincore
    mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte))
    mincore.restype = ctypes.c_int
    return mincore


_MINCORE = _libc_mincore()


def cached_fraction(path: Path) -> float | None:
    """The share (0 to 1) of ``path``'s pages resident in the page cache, or ``None`` if unknown."""
    import numpy as np

    size = Path(path).stat().st_size
    if _MINCORE is None or size == 0:
        return None if _MINCORE is None else 1.0
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = np.frombuffer(mapped, dtype=np.uint8)
        pages = (size + PAGE - 1) // PAGE
        vector = (ctypes.c_ubyte * pages)()
        status = _MINCORE(ctypes.c_void_p(view.ctypes.data), size, vector)
        del view  # the mapping cannot close while an array holds it
        if status != 0:
            return None
        return sum(byte & 1 for byte in bytes(vector)) / pages


def read_sequential(path: Path, buffer: bytearray) -> float:
    """Seconds to read ``path`` start to end with ``len(buffer)``-byte reads into ``buffer``."""
    view = memoryview(buffer)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(view):
            pass
    return time.perf_counter() - start


def prepare_files(paths, *, cold: bool) -> dict[Path, float | None]:
    """Before a measurement: drop ``paths`` from the page cache when ``cold``; returns the share
    of each file then cached (``None`` where unknown)."""
    if cold:
        for path in paths:
            drop_from_cache(path)
    return {Path(path): cached_fraction(path) for path in paths}


def share_cached(cached: dict[Path, float | None]) -> float | None:
    """The share of the files' bytes cached, from :func:`prepare_files`' answer (``None``: unknown)."""
    if not cached or any(value is None for value in cached.values()):
        return None
    sizes = {path: path.stat().st_size for path in cached}
    total = sum(sizes.values())
    return sum(cached[path] * size for path, size in sizes.items()) / total if total else 1.0


def cache_state(fraction: float | None) -> str:
    """``"cold"`` (under 5% cached), ``"warm"`` (over 95%), ``"partly cached"`` or ``"unknown"``."""
    if fraction is None:
        return "unknown"
    if fraction < 0.05:
        return "cold"
    return "warm" if fraction > 0.95 else "partly cached"


def release_freed_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the kernel (``malloc_trim``, glibc),
    so that the next measurement's resident memory is not served from what an earlier one freed."""
    import gc

    gc.collect()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


def _status_kib() -> dict[str, int]:
    fields = {}
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    fields[key] = int(value.split()[0])
    except OSError:
        pass
    return fields


def _maxrss_bytes() -> int:
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


class HostMemory:
    """This process's resident memory, and its peak over a measurement (see the module docstring).

    :meth:`begin` starts a measurement; :meth:`mark` starts an interval inside it (the kernel's
    peak is folded into the measurement's before it is reset); :meth:`high` is the measurement's peak.
    """

    def __init__(self) -> None:
        self.resettable = bool(_status_kib()) and self._reset()
        self.method = "VmHWM reset by /proc/self/clear_refs" if self.resettable else "ru_maxrss (not reset)"
        self._high = 0

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            return True
        except OSError:
            return False

    def resident(self) -> dict[str, int]:
        """``{"rss", "anon", "file"}`` in bytes now (``{}`` without ``/proc``)."""
        kib = _status_kib()
        return {name: kib[key] * 1024 for name, key in (("rss", "VmRSS"), ("anon", "RssAnon"), ("file", "RssFile"))
                if key in kib}

    def _kernel_peak(self) -> int:
        if self.resettable:
            return _status_kib().get("VmHWM", 0) * 1024
        return _maxrss_bytes()

    def begin(self) -> dict[str, int]:
        """Start a measurement (freed memory handed back first); returns :meth:`resident` now
        (``rss`` from ``ru_maxrss`` without ``/proc``)."""
        release_freed_memory()
        self._high = 0
        if self.resettable:
            self._reset()
        return self.resident() or {"rss": _maxrss_bytes()}

    def mark(self) -> None:
        """An interval begins: keep the peak so far, then reset the kernel's."""
        self._high = max(self._high, self._kernel_peak())
        if self.resettable:
            self._reset()

    def high(self) -> int:
        """The highest resident bytes since :meth:`begin` (``ru_maxrss``: since the process began)."""
        return max(self._high, self._kernel_peak())
