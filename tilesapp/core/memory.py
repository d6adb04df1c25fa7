"""The memory policy, in one place: how much a run may hold, and what each piece of work needs.

A run has one memory limit (``Settings.memory_limit``, default :func:`default_memory_limit`)
for pixels. Work that holds pixels — a band of an image, a whole small image, a band of a
merge — asks the process's :class:`MemoryGate` for its bytes first and waits until they are
free, so threads never hold more than the limit together.
"""

from __future__ import annotations

import math
import os
import threading

#: Never default to more than this: bands are as fast as whole images (measured: faster, as
#: they stay in cache), so a larger default would only take memory from other programs.
DEFAULT_LIMIT_CAP = 512 << 20
#: Recalibrated pixels beyond which the window previews an image through a reduced overview.
OVERVIEW_PIXELS = 40_000_000
#: Longer side of an overview, in pixels.
OVERVIEW_SIDE = 4096
#: Images whose pixels fit this are read whole for a thumbnail; bigger ones through an overview.
WHOLE_READ_BYTES = 256 << 20
#: An enlargement beyond this of an image bigger than memory is taken for a wrong
#: calibration (a print resolution read as a pixel size) rather than cut in bands.
MAX_STREAMED_ENLARGEMENT = 8.0


def total_memory() -> int | None:
    """Bytes of memory of this computer (None when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        pass
    try:  # Windows
        import ctypes

        class _Status(ctypes.Structure):
            _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong), ("total", ctypes.c_ulonglong),
                        ("avail", ctypes.c_ulonglong), ("total_page", ctypes.c_ulonglong),
                        ("avail_page", ctypes.c_ulonglong), ("total_virtual", ctypes.c_ulonglong),
                        ("avail_virtual", ctypes.c_ulonglong), ("avail_ext", ctypes.c_ulonglong)]

        status = _Status()
        status.length = ctypes.sizeof(_Status)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return int(status.total)
    except Exception:
        pass
    return None


def default_memory_limit() -> int:
    """Bytes of pixels a run may hold at once: a quarter of the computer's memory, at most 512 MiB."""
    total = total_memory()
    if total is None:
        return DEFAULT_LIMIT_CAP
    return max(64 << 20, min(DEFAULT_LIMIT_CAP, total // 4))


def recalibration_budget() -> int | None:
    """Bytes one recalibrated image held whole may take: half the computer's memory."""
    total = total_memory()
    return None if total is None else total // 2


class MemoryGate:
    """Bytes shared by the threads of a process: a piece of work waits until its bytes are free.

    A request larger than the whole capacity is served alone (capped at the capacity), so a
    single oversized band still runs, with nothing else beside it.
    """

    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self._free = self.capacity
        self._cond = threading.Condition()

    def acquire(self, nbytes: int, cancel: threading.Event | None = None) -> int:
        """Wait for ``nbytes`` (capped); returns what to :meth:`release`, 0 when cancelled."""
        want = min(max(1, int(nbytes)), self.capacity)
        with self._cond:
            while self._free < want:
                if cancel is not None and cancel.is_set():
                    return 0
                self._cond.wait(0.1)
            self._free -= want
        return want

    def release(self, nbytes: int) -> None:
        if nbytes:
            with self._cond:
                self._free += nbytes
                self._cond.notify_all()


_gates: dict[int, MemoryGate] = {}
_gates_lock = threading.Lock()


def process_gate(limit: int) -> MemoryGate:
    """The gate of this process for a memory limit: every run with that limit in this process
    (and every band of theirs, whatever executor thread runs it) shares it."""
    with _gates_lock:
        gate = _gates.get(limit)
        if gate is None:
            gate = _gates[limit] = MemoryGate(limit)
        return gate


# --- what a piece of work holds ----------------------------------------------------------------
def whole_image_bytes(shape_yx, scaled_shape, channels: int, source_itemsize: int, out_itemsize: int) -> int:
    """Peak bytes of cutting an image whole: the source, its float copy, the recalibrated
    image and its cast to the output type."""
    source = shape_yx[0] * shape_yx[1] * channels
    scaled = scaled_shape[0] * scaled_shape[1] * channels
    return source * (source_itemsize + 4) + scaled * (4 + out_itemsize)


def band_bytes(rows_out: int, shape_yx, scaled_shape, channels: int, source_itemsize: int, out_itemsize: int) -> int:
    """Peak bytes of one band of ``rows_out`` recalibrated rows: the source rows and their float
    copy, the resampled rows with one float scratch pass, the cast."""
    rows_in = math.ceil(rows_out * shape_yx[0] / scaled_shape[0]) + 8
    source = rows_in * shape_yx[1] * channels * (source_itemsize + 4)
    return source + rows_out * scaled_shape[1] * channels * (8 + out_itemsize)


def tile_bytes(tile_size: int, channels: int, itemsize: int) -> int:
    """Bytes of one tile and its float working copy."""
    return tile_size * tile_size * channels * (itemsize + 4)


def merge_bytes(rows: int, cols: int, channels: int) -> int:
    """Bytes of a merge canvas held whole: float64 sums and weights, plus the final cast
    (rounding and the output copy are done in place, band by band)."""
    return rows * cols * (channels * (8 + 8) + 8)


def largest_tile(tile_size: int, channels: int, itemsize: int, limit: int) -> int | None:
    """None when two tiles of ``tile_size`` (and their working copies) fit ``limit``; else the
    largest power-of-two fraction of ``tile_size`` that does (the size to suggest)."""
    if tile_bytes(tile_size, channels, itemsize) * 2 <= limit:
        return None
    fits = tile_size
    while fits > 16 and tile_bytes(fits, channels, itemsize) * 2 > limit:
        fits //= 2
    return fits
