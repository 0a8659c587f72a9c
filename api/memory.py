"""Handing freed memory back to the system after a burst of work."""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def release_free_memory() -> None:
    """Return freed heap pages to the system (glibc ``malloc_trim``); nothing elsewhere."""
    trim = _MALLOC_TRIM
    if trim is not None:
        trim(0)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        function: Callable[[int], int] = libc.malloc_trim
        return function
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()
