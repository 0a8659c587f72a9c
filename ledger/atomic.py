"""Crash-safe file writes for the verifier's state, evidence and static mirrors.

A file written with :func:`write_atomically` is either absent/its old version or complete: the
bytes go to a temporary file in the same directory, are flushed to disk, and only then renamed
over the target (a rename is atomic on POSIX filesystems), after which the directory itself is
flushed so the rename survives a power loss.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ledger.errors import StorageError


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (new names, renames) to disk; a no-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o666, what: str = "") -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new one.

    Creates missing parent directories. The new file is created with ``mode`` (less the
    umask) before any byte is written, so a private key is never readable by others, not
    even while it is being written: pass ``0o600`` for one. Raises :class:`StorageError`
    naming ``what`` (default: the path).
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # Flushed: from here a crash leaves the old file (the rename did not happen) or the
        # complete new one (rename is atomic); the directory flush makes the rename durable.
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise StorageError(f"couldn't write {what or path}: {exc}") from exc
    fsync_directory(path.parent)


def write_durably(path: Path, data: bytes) -> None:
    """Write a new file and flush it to disk before returning (no rename: see
    :func:`write_atomically` for replacing a file readers may be reading)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise StorageError(f"couldn't write {path}: {exc}") from exc


def move_into_place(source: Path, target: Path) -> None:
    """Rename the already durable file ``source`` over ``target`` (same filesystem)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    except OSError as exc:
        raise StorageError(f"couldn't move {source} to {target}: {exc}") from exc
