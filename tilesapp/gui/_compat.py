"""Work around a reference-count bug of PySide6 6.12 wheels on Python 3.10/3.11.

Those builds return ``None`` (from every method returning nothing) and ``True``/``False``
(e.g. from ``Signal.emit``) without taking a new reference, as if the objects were immortal,
which they are only from Python 3.12 on. Each call then removes one reference, and after a
few thousand paint calls Python aborts with "deallocating None". Where the leak is measured,
the three singletons get a reference count so large that no session can use it up — what
Python 3.12 does for every build.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_RESERVE = 1 << 40
_PROBES = 64


def _leaks_none() -> bool:
    from PySide6.QtGui import QPen

    pen = QPen()
    before = sys.getrefcount(None)
    for _ in range(_PROBES):
        pen.setCosmetic(True)
    return sys.getrefcount(None) <= before - _PROBES // 2


def _reserve_references(obj: object) -> bool:
    refcnt = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt opens every object
    before = sys.getrefcount(obj)
    if refcnt.value != before - 1:  # not the layout we expect (e.g. a debug build): leave it
        return False
    refcnt.value += _RESERVE
    return True


def protect_singletons() -> bool:
    """Apply the work-around when this PySide6 leaks references to None; True when applied."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False  # None, True and False are immortal there
    try:
        if not _leaks_none():
            return False
        applied = all(_reserve_references(obj) for obj in (None, True, False))
    except Exception:  # a work-around must never be the reason the window does not open
        log.warning("Could not check PySide6 for the None reference leak", exc_info=True)
        return False
    if applied:
        log.info("PySide6 drops references to None/True/False on Python %s; reserved references", sys.version.split()[0])
    return applied


PROTECTED = protect_singletons()
