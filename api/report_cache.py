"""Finished precedent reports kept on disk, so that an identical request reads a file instead
of computing the report again (issue 12: "identical requests are cached").

**What is kept.** The body of a report: its JSON text (the ``report`` of ``GET /v1/precedent``)
or its text rendering (``GET /v1/precedent.txt`` without its footer). Not the frame around it,
which names the latest checkpoint and a consistency proof to it, and so changes as the log
grows; the route writes that afresh for every answer.

**What names it** (:func:`report_key`): the rendering, a fingerprint of the code that computes
reports (:func:`code_fingerprint`), the log's origin, the tree size and the root hash the
report was computed at, and the audit time. A report is a function of exactly those: the rules
read only the entries below the size (which the root hash commits to) and the audit time. So a
kept report is never stale. The log only grows, and a store restored from a backup, or a
forked one, holds another tree wherever it differs: another root hash, another name. An
upgrade that changes how reports are computed changes the fingerprint; the old files are
never found again and age out.

**Only repeatable requests are kept**: those with an explicit audit time, or at a past size
(whose default audit time is its last entry's log time). A report judged "now" at the latest
checkpoint differs every second and would only push useful reports out.

**Sections.** What an earlier report computed that does not depend on the audit time (its
lists and its judgements as segments) is kept here too, as files named ``s-…`` and ``j-…``
(:mod:`api.report_sections`), with the same checks and budget.

**File format.** 64 lowercase hex digits, the SHA-256 of the body, a line feed, the body.
A file is checked whole against its digest before any byte of it is served. One that is
truncated (a crash while writing), corrupted on disk or altered is deleted, a warning is
logged, and the report is computed again as if never kept.

**Crash safety.** A report is written to ``.partial-KEY-PID-RANDOM`` in the folder as it is
computed and sent; it gets its name (an atomic rename) only after its last byte, and is deleted
if the computation stops first (the client went away, an error). No fsync: a file torn by a
power cut fails the digest check above, which costs one recomputation, never a wrong answer.
A killed process's partial files are removed once unmodified for :data:`PARTIAL_STALE_S`.

**Identical requests at once are computed once** (:meth:`ReportCache.claim`). The partial
file names the report it will become, so it is also the claim of whoever computes that report:
a request that finds a live claim for its key (by any process sharing the folder) waits for the
file instead of computing the report a second time, and computes it only if the claim ends
without one (that computation stopped) or :data:`IDENTICAL_WAIT_S` passes. A claim is live
while its process runs and its file was written within :data:`PARTIAL_STALE_S`: a killed
process's claim never makes anyone wait. (Process ids are compared on this machine: a folder
is one machine's, see below.)

**Bounded.** The kept reports of the folder, all processes together, take at most
``budget_bytes``: after each report is kept, the least recently served are deleted until the
rest fit. A report larger than the budget is not kept (its writing stops once it is). Nothing
is kept while the folder's file system has less than ``min_free_bytes`` free: the cache never
takes the space the database needs. Memory does not grow either: reports are read and written
in chunks.

**Never fails a request.** Any error of the file system while keeping or reading a report is
logged and the request is answered by computing, as without a cache.

**Who may write the folder.** Only the service's own user: a digest proves a file whole, not
who wrote it, so whoever can write the folder can have any text served as a report. The
folder is created private (mode 0700); one named in the settings must be kept so.

Several processes may share one folder (read-only servers on one machine): names are
content-determined, renames atomic, and a file deleted while another process serves it stays
readable until that process closes it. Never several machines: claims name process ids.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import importlib.metadata
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import BinaryIO, Literal

log = logging.getLogger("api.report_cache")

Rendering = Literal["json", "text"]

DIGEST_LINE = 65
"""Bytes before the body: the SHA-256 in hex and a line feed."""
READ_CHUNK = 1 << 20
"""Bytes read from a kept report at a time, to check it and to send it."""
PARTIAL_STALE_S = 600.0
"""A partial file unmodified this long belongs to a report nobody is writing any more (a
killed process): the next report kept removes it. A report being written touches its file
with every chunk, so this is long past any pause in one."""
IDENTICAL_WAIT_S = 120.0
"""How long a request waits for an identical report another request is computing (a live
claim, :meth:`ReportCache.claim`) before computing it itself."""
IDENTICAL_POLL_S = 0.2
"""How often a waiting request looks for that report or the end of its claim."""
_SUFFIX = ".report"
_PARTIAL = ".partial-"
_CODE_PACKAGES = (
    "ledger/protocol",
    "ledger/statements",
    "ledger/tlog",
    "ledger/storage",
    "ledger/server",
)
"""The code whose change may change a report's bytes (what :func:`code_fingerprint` hashes):
the rules and their rendering, and what reads and replays the state they judge."""
_CODE_FILES = (
    "api/routes/precedent.py",
    "api/service.py",
    "api/reader.py",
    "api/report_sections.py",
    "api/precedents.py",
)


@cache
def code_fingerprint() -> str:
    """A digest of the installed package's version and of every source file of the packages
    that compute reports: reports computed by other code are never served as this code's."""
    digest = hashlib.sha256()
    try:
        digest.update(importlib.metadata.version("amnesty-ledger").encode())
    except importlib.metadata.PackageNotFoundError:
        digest.update(b"unknown")
    root = Path(__file__).resolve().parent.parent
    for package in _CODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    for name in _CODE_FILES:
        digest.update(name.encode() + b"\0")
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


def report_key(
    rendering: Rendering, origin: str, size: int, root_hash: bytes, audit_time_ms: int
) -> str:
    """The name of the report with exactly these inputs (see the module): hex SHA-256."""
    parts = (
        "amnesty-ledger precedent report cache v1",
        rendering,
        code_fingerprint(),
        origin,
        str(size),
        root_hash.hex(),
        str(audit_time_ms),
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class KeptReport:
    """A kept report, checked against its digest and open at its first body byte."""

    file: BinaryIO
    length: int

    def chunks(self) -> Generator[bytes, None, None]:
        """The body in chunks of :data:`READ_CHUNK` bytes; closes the file at the end."""
        with self.file:
            while chunk := self.file.read(READ_CHUNK):
                yield chunk

    def lines(self) -> Generator[str, None, None]:
        """The body's lines (UTF-8, each with its line feed; split at line feeds only);
        closes the file at the end."""
        with self.file:
            for line in self.file:
                yield line.decode("utf-8")


@dataclass
class ReportCache:
    """Kept reports in ``folder`` (see the module), ``budget_bytes`` of them at most."""

    folder: Path
    budget_bytes: int
    min_free_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _claim_lock: threading.Lock = field(default_factory=threading.Lock)
    _warned: set[str] = field(default_factory=set)

    def _warn(self, what: str, exc: BaseException) -> None:
        """Log a file-system failure of the cache: once per kind of failure and process, so a
        full disk does not fill the log; the requests are answered by computing."""
        kind = f"{what}:{type(exc).__name__}"
        if kind in self._warned:
            log.debug("report cache: couldn't %s: %s", what, exc)
            return
        self._warned.add(kind)
        log.warning(
            "report cache: couldn't %s in %s: %s (answering by computing instead; "
            "this warning is not repeated)",
            what,
            self.folder,
            exc,
        )

    def path_of(self, key: str) -> Path:
        """Where the report named ``key`` is kept."""
        return self.folder / f"{key}{_SUFFIX}"

    # -- reading ------------------------------------------------------------------------------

    def open(self, key: str) -> KeptReport | None:
        """The report named ``key``, checked whole against its digest, or None when none is
        kept (or the one kept was damaged: it is deleted, with a warning). Marks it as just
        served, for eviction. Blocking: reads the whole file once."""
        path = self.path_of(key)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn("read a kept report", exc)
            return None
        try:
            head = handle.read(DIGEST_LINE)
            digest = hashlib.sha256()
            length = 0
            while chunk := handle.read(READ_CHUNK):
                digest.update(chunk)
                length += len(chunk)
            if (
                len(head) != DIGEST_LINE
                or head[-1:] != b"\n"
                or head[:-1] != (digest.hexdigest().encode())
            ):
                handle.close()
                log.warning(
                    "report cache: %s does not match its digest (truncated or damaged); "
                    "deleted, the report is computed again",
                    path,
                )
                with contextlib.suppress(OSError):
                    path.unlink()
                return None
            handle.seek(DIGEST_LINE)
            with contextlib.suppress(OSError):
                os.utime(path)  # just served: the last to be evicted
            return KeptReport(handle, length)
        except OSError as exc:
            handle.close()
            self._warn("read a kept report", exc)
            return None
        except BaseException:
            handle.close()
            raise

    def is_kept(self, key: str) -> bool:
        """Whether a report named ``key`` is kept (unchecked: :meth:`open` checks it)."""
        return self.path_of(key).exists()

    def kept_or_keeping(
        self, key: str, compute: Callable[[], Iterator[str]], claim: Claim | None = None
    ) -> Iterator[str]:
        """The text named ``key``: read back when kept (checked against its digest), else
        ``compute()``, kept as it passes (:meth:`keeping`, with ``claim``)."""
        kept = self.open(key)
        if kept is not None:
            return codecs.iterdecode(kept.chunks(), "utf-8")
        return self.keeping(key, compute(), claim)

    # -- claims ---------------------------------------------------------------------------------

    def claimed(self, key: str) -> bool:
        """Whether a live claim on ``key`` exists (see the module): a partial file for it
        whose process runs and that was written within :data:`PARTIAL_STALE_S`."""
        prefix = f"{_PARTIAL}{key}-"
        now = time.time()
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return False
        except OSError as exc:
            self._warn("list the kept reports", exc)
            return False
        for entry in entries:
            if not entry.name.startswith(prefix):
                continue
            pid_text = entry.name[len(prefix) :].split("-", 1)[0]
            try:
                modified = entry.stat().st_mtime
            except OSError:
                continue  # renamed or deleted meanwhile: that claim ended
            if pid_text.isdigit() and _runs(int(pid_text)) and now - modified < PARTIAL_STALE_S:
                return True
        return False

    def claim(self, key: str) -> Claim | None:
        """Claim the computation of the report ``key``: None when a live claim on it exists
        already (an identical request is computing it: wait for :meth:`open` to find it, or
        for the claim to end); else a :class:`Claim`, whose keeper writes the report as it is
        computed (None when nothing may be kept now: compute without keeping). Check and
        claim are one step for the requests of this process; two processes claiming at the
        same instant may both compute, as without claims (both keep the same bytes)."""
        with self._claim_lock:
            if self.claimed(key):
                return None
            return Claim(key, _Keeper.start(self, key))

    # -- writing ------------------------------------------------------------------------------

    def keeping(
        self, key: str, pieces: Iterator[str], claim: Claim | None = None
    ) -> Generator[str, None, None]:
        """``pieces`` unchanged, also written to the cache under ``key`` as they pass; the
        report is kept only if ``pieces`` ends (see :class:`_Keeper`). A failure to write
        stops the keeping, never the pieces. ``claim``: the request's claim on ``key``
        (:meth:`claim`), whose keeper is used; without one (or with a claim on another key:
        the log grew between the claim and the computation, which names the new checkpoint)
        the keeper starts here."""
        if claim is not None and claim.key == key:
            keeper = claim.keeper
        else:
            keeper = _Keeper.start(self, key)
        if keeper is None:
            yield from pieces
            return
        try:
            for piece in pieces:
                keeper.add(piece)
                yield piece
            keeper.finish()
        finally:
            keeper.abandon()  # a no-op once finished

    def _has_room(self) -> bool:
        if self.min_free_bytes <= 0:
            return True
        try:
            return shutil.disk_usage(self.folder).free >= self.min_free_bytes
        except OSError as exc:
            self._warn("measure free space", exc)
            return False

    def evict(self) -> None:
        """Delete the least recently served reports until the rest fit the budget, and partial
        files nobody has written for :data:`PARTIAL_STALE_S` (a killed process's)."""
        with self._lock:
            kept: list[tuple[float, int, Path]] = []
            now = time.time()
            try:
                entries = list(os.scandir(self.folder))
            except OSError as exc:
                self._warn("list the kept reports", exc)
                return
            for entry in entries:
                try:
                    stat = entry.stat()
                except OSError:
                    continue  # deleted meanwhile by another process
                if entry.name.endswith(_SUFFIX):
                    kept.append((stat.st_mtime, stat.st_size, Path(entry.path)))
                elif entry.name.startswith(_PARTIAL) and now - stat.st_mtime > PARTIAL_STALE_S:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
            total = sum(size for _, size, _ in kept)
            for _, size, path in sorted(kept):
                if total <= self.budget_bytes:
                    break
                with contextlib.suppress(OSError):
                    path.unlink()
                total -= size


class _Keeper:
    """One report being written to a partial file (see :meth:`ReportCache.keeping`)."""

    def __init__(self, cache: ReportCache, key: str, partial: Path, handle: BinaryIO) -> None:
        self._cache = cache
        self._key = key
        self._partial = partial
        self._handle: BinaryIO | None = handle
        self._digest = hashlib.sha256()
        self._length = 0
        self._pending: list[str] = []
        self._pending_chars = 0

    @classmethod
    def start(cls, cache: ReportCache, key: str) -> _Keeper | None:
        """A keeper, or None when nothing may be kept now (no room, the folder unusable)."""
        try:
            cache.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not cache._has_room():
                return None
            # Named after the report it becomes: the claim on it (ReportCache.claimed).
            partial = cache.folder / f"{_PARTIAL}{key}-{os.getpid()}-{secrets.token_hex(8)}"
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            handle = os.fdopen(fd, "wb")
            handle.write(b"\0" * DIGEST_LINE)  # the digest, written once the body is whole
        except OSError as exc:
            cache._warn("start keeping a report", exc)
            return None
        return cls(cache, key, partial, handle)

    def add(self, piece: str) -> None:
        if self._handle is None:
            return
        self._pending.append(piece)
        self._pending_chars += len(piece)
        if self._pending_chars >= READ_CHUNK:
            self._flush()

    def _flush(self) -> None:
        handle = self._handle
        if handle is None or not self._pending:
            return
        data = "".join(self._pending).encode("utf-8")
        self._pending, self._pending_chars = [], 0
        self._length += len(data)
        if self._length > self._cache.budget_bytes:
            self.abandon()  # larger than the whole budget: never kept
            return
        try:
            handle.write(data)
        except OSError as exc:
            self._cache._warn("write a report", exc)
            self.abandon()
            return
        self._digest.update(data)

    def finish(self) -> None:
        """The body is whole: write its digest and give the file its name."""
        self._flush()
        handle = self._handle
        if handle is None:
            return
        try:
            handle.seek(0)
            handle.write(self._digest.hexdigest().encode() + b"\n")
            handle.close()
            self._handle = None
            # The body and its digest are written: from here the file is whole or, after a
            # crash before the page cache reached the disk, fails its digest check when read.
            os.replace(self._partial, self._cache.path_of(self._key))
        except OSError as exc:
            self._cache._warn("keep a report", exc)
            self.abandon()
            return
        self._cache.evict()

    def abandon(self) -> None:
        """Stop keeping: close and delete the partial file (idempotent)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
            with contextlib.suppress(OSError):
                self._partial.unlink()


@dataclass
class Claim:
    """A request's claim on computing one report (:meth:`ReportCache.claim`): ``keeper``
    writes it (None: nothing may be kept now). :meth:`end` must be called however the
    computation ends; it is a no-op once the report is kept."""

    key: str
    keeper: _Keeper | None

    def end(self) -> None:
        """End the claim: delete the partial file unless the report was kept (idempotent)."""
        if self.keeper is not None:
            self.keeper.abandon()


def _runs(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (``kill(pid, 0)`` sends nothing)."""
    if pid <= 0:
        return False  # 0 and negatives name process groups, not a process
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # another user's process
    except (OSError, OverflowError):
        return False  # no such process (or no such number)
    return True


def default_folder(database_file: Path | None, database_url: str) -> Path:
    """Where a server keeps reports unless told: beside a SQLite database file
    (``FILE.reports``); for PostgreSQL, in the user's cache folder (``$XDG_CACHE_HOME`` or
    ``~/.cache``), ``amnesty-ledger/reports/`` and a digest of the URL without its password
    (one folder per database, shared by that user's processes). Never a folder that other
    users may write: whoever can write the folder can have any text served as a report."""
    if database_file is not None:
        return database_file.with_name(database_file.name + ".reports")
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    safe = re.sub(r"://([^:/@]*):[^@/]*@", r"://\1@", database_url)
    return base / "amnesty-ledger" / "reports" / hashlib.sha256(safe.encode()).hexdigest()[:16]
