"""Static mirrors: the log as a plain tlog-tiles directory that any static host can serve.

A mirror directory holds exactly what a tlog-tiles client reads, plus what a reader needs to
understand it::

    checkpoint                 the signed checkpoint (written last)
    tile/<L>/<N>[.p/<W>]       hash tiles
    tile/entries/<N>[.p/<W>]   entry bundles
    schemas/*.json             the statements' JSON Schemas
    precedent.json, .txt       the precedent report computed at the checkpoint
    README.md                  what this is and how to verify it
    .amnesty/state.json        the mirror's verifier trust state (to continue incrementally)

:func:`mirror_log` verifies before it writes: every bundle and tile the verification accepts is
first written, durably, to ``.amnesty/staging/``; only when the whole run has verified (every
signature, the protocol, the root) are they renamed into place and their directories flushed,
then the report, the schemas and the README are written, then the checkpoint, atomically, and
last the trust state.
A crash at any point leaves a mirror whose checkpoint matches the files it names: the new files
are either still in staging or already in place under the *old* checkpoint, where no reader of
that checkpoint looks (tiles are immutable, and a partial tile of a given width never changes).
The next run verifies again from the trust state and rewrites the checkpoint in any case.

``amnesty verify DIR`` (a :class:`~ledger.verifier.sources.DirectorySource`) verifies a mirror with no
server.

C2SP tlog-mirror (a draft; followed at C2SP/C2SP commit 5ba5ee83, whose tlog-mirror text last
changed in d0fe7891, July 2026), where it applies to a mirror that *pulls* a log's tiles:

- the copy is served with the tlog-tiles paths unchanged, so the directory is what a reader
  finds at ``<monitoring prefix>/<origin hash>`` (:func:`origin_hash`: the lower-case hex
  SHA-256 of the origin) once a static host serves it there;
- with ``cosigners`` (the mirror's keys), the served checkpoint carries the mirror's
  cosignature(s) — cosignature/v1 (0x04) and/or subtree/v1 (0x06) over the log's checkpoint —
  signed only after every entry and tile up to it is durably in place, at a time that never
  goes back (a clock behind the last cosignature is refused);
- every run's checkpoint extends every one the mirror served before, cosigned or not: the trust
  state proves it, or, without one, the served checkpoint's root is checked against the new
  tree's staged tiles; a rolled-back or forked view is refused and the mirror left untouched;
- entries are authenticated against the log's signed checkpoint before anything is committed,
  and the log is mirrored from index 0 (no pruning without a retention policy).

The spec's push side (``add-checkpoint``, ``add-entries``, ``sign-subtree`` endpoints through
which a log uploads to a mirror) is not implemented: see docs/WITNESS.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ledger.atomic import fsync_directory, move_into_place, write_atomically, write_durably
from ledger.errors import LedgerError, MalformedError, RefusedError, StorageError
from ledger.protocol.audit import render_precedent_text
from ledger.tlog.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    LogKey,
    open_checkpoint,
    verify_cosignatures,
)
from ledger.tlog.merkle import root_at
from ledger.tlog.note import NoteSignature, format_note, parse_note
from ledger.tlog.tiles import TileID, TileNodeReader
from ledger.verifier.failures import VerificationFailure
from ledger.verifier.sources import DirectorySource, LogSource, tile_reader
from ledger.verifier.trust import TrustState, load_trust_state, save_trust_state
from ledger.verifier.verify import Progress, VerifiedLog, verify_ledger

STATE_DIR: Final = ".amnesty"
"""The mirror's bookkeeping folder (trust state and staging); not part of the log."""


def origin_hash(origin: str) -> str:
    """The path segment naming a log under a mirror's or a witness's monitoring prefix: the
    SHA-256 of its origin line (UTF-8, no newline), hex, lower case (C2SP PR #277)."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def posix_seconds() -> int:
    """The current POSIX time in whole seconds (the cosignature timestamp unit)."""
    return time.time_ns() // 1_000_000_000


@dataclass
class MirrorResult:
    """What a mirror run did: the verification, the files it published, the report, and the
    mirror's cosignature lines on the served checkpoint (none without mirror keys)."""

    directory: Path
    verified: VerifiedLog
    files_written: int
    report: dict[str, Any]
    cosignatures: tuple[NoteSignature, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            **self.verified.to_json(),
            "directory": str(self.directory),
            "files_written": self.files_written,
            "all_commitments_honoured": self.report["all_commitments_honoured"],
            "origin_hash": origin_hash(self.verified.checkpoint.origin),
            "mirror_cosignatures": [line.line()[:-1] for line in self.cosignatures],
        }


def state_path(directory: Path) -> Path:
    """Where the mirror in ``directory`` keeps its trust state."""
    return directory / STATE_DIR / "state.json"


def mirror_log(
    source: LogSource,
    log_key: LogKey,
    directory: Path,
    *,
    fresh: bool,
    audit_time_ms: int,
    schemas: Path | None = None,
    workers: int | None = None,
    fetch_threads: int = 1,
    progress: Progress | None = None,
    cosigners: Sequence[CosignatureSigner] = (),
    clock: Callable[[], int] = posix_seconds,
) -> MirrorResult:
    """Bring the mirror in ``directory`` up to the log ``source`` serves, verifying first.

    ``fresh`` (``amnesty export``) requires a directory without a checkpoint and verifies the
    whole log; otherwise (``amnesty mirror``) the run continues from the mirror's trust state
    when it has one. ``schemas`` is a folder whose ``*.json`` files are published under
    ``schemas/``; ``audit_time_ms`` is the time the precedent report judges clocks at (at least
    the last entry's log time). Steps as in the module docstring; raises what
    :func:`~ledger.verifier.verify.verify_ledger` raises (the mirror is left untouched), and
    :class:`~ledger.errors.StorageError` for file system failures.

    ``cosigners`` are the mirror's own keys (one name; 0x04 and/or 0x06): the checkpoint
    written in step 6 then carries one cosignature line of each, at ``clock()`` (POSIX seconds),
    which must not be before the mirror's line on the checkpoint it served before. They must not be a witness's keys (tlog-mirror: a mirror
    cosigner is distinct from any witness service).
    """
    if cosigners and len({signer.name for signer in cosigners}) != 1:
        raise RefusedError("couldn't mirror: the mirror's keys must share one name")
    # Step 1: what may be written where.
    directory = directory.resolve()
    if isinstance(source, DirectorySource) and source.root.resolve() == directory:
        raise RefusedError(f"couldn't mirror {directory} onto itself")
    if fresh and (directory / "checkpoint").exists():
        raise RefusedError(
            f"couldn't export to {directory}: it already holds a log (use `amnesty mirror` to "
            "update it)"
        )
    # Step 2: where the last run stopped. A directory that serves a checkpoint without the
    # trust state proving it (a first run that crashed between steps 6 and 7, a deleted state)
    # is verified from scratch, and the new checkpoint must then extend the served one (step 3b).
    trusted: TrustState | None = None
    served: Checkpoint | None = None
    if not fresh and state_path(directory).exists():
        trusted = load_trust_state(state_path(directory), log_key)
    elif not fresh and (directory / "checkpoint").exists():
        served = _served_checkpoint(directory, log_key)
    # Step 3: verify, staging every verified file.
    staging = directory / STATE_DIR / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    staged: list[str] = []

    def stage(tile: TileID, data: bytes) -> None:
        write_durably(staging / tile.path(), data)
        staged.append(tile.path())

    verified = verify_ledger(
        source,
        log_key,
        trusted=trusted,
        workers=workers,
        fetch_threads=fetch_threads,
        progress=progress,
        sink=stage,
    )
    assert verified.protocol is not None
    # Step 3b: never rewind or fork what this mirror served, even without its trust state: the
    # served checkpoint's root must be the new tree's at its size (from the staged tiles: a run
    # from scratch stages every tile, and nothing was moved into place yet).
    if served is not None:
        _check_extends(served, verified.checkpoint, staging)
    # Step 4: the verified files (already durable) in place, and their directories flushed.
    folders: set[Path] = set()
    for relative in staged:
        move_into_place(staging / relative, directory / relative)
        folders.add((directory / relative).parent)
    for folder in sorted(folders):
        fsync_directory(folder)
    # Step 5: what a reader needs besides the tiles.
    report = verified.precedent_report(audit_time_ms)
    written = len(staged)
    written += _publish_schemas(schemas, directory / "schemas")
    write_atomically(
        directory / "precedent.json",
        (json.dumps(report, indent=2, sort_keys=True) + "\n").encode("utf-8"),
    )
    write_atomically(directory / "precedent.txt", render_precedent_text(report).encode("utf-8"))
    write_atomically(directory / "README.md", readme(verified, log_key).encode("utf-8"))
    # Step 6: the checkpoint, last of what readers see. Every file it names is durable (steps
    # 4 and 5), so the mirror's cosignature — "I hold all of this and serve it" — is true once
    # the rename lands; a crash before it leaves the previous checkpoint, also true.
    lines = _cosign(cosigners, verified.checkpoint, directory / "checkpoint", clock())
    note = parse_note(verified.checkpoint_note)
    for line in lines:
        note = note.with_signature(line)
    write_atomically(directory / "checkpoint", format_note(note))
    # Step 7: where to continue from.
    save_trust_state(state_path(directory), verified.trust_state(log_key))
    shutil.rmtree(staging, ignore_errors=True)
    return MirrorResult(directory, verified, written + 4, report, lines)


def _served_checkpoint(directory: Path, log_key: LogKey) -> Checkpoint:
    """The checkpoint the mirror in ``directory`` serves, verified under the log key."""
    try:
        return open_checkpoint((directory / "checkpoint").read_bytes(), log_key)
    except (OSError, LedgerError) as exc:
        raise RefusedError(
            f"couldn't mirror into {directory}: it serves a checkpoint that does not verify and "
            f"has no trust state ({exc}); mirror into a new directory"
        ) from exc


def _check_extends(served: Checkpoint, new: Checkpoint, staging: Path) -> None:
    """Refuse (:class:`VerificationFailure`) unless the verified tree ``new``, whose tiles are
    all in ``staging``, extends the checkpoint ``served``."""
    if new.size < served.size:
        raise VerificationFailure(
            f"couldn't verify the checkpoint: the source serves size {new.size}, older than the "
            f"size {served.size} this mirror serves (a stale or rolled-back view)",
            where="checkpoint",
        )
    if new.size == served.size:
        here = new.root_hash
    else:
        here = root_at(
            served.size, TileNodeReader(tile_reader(DirectorySource(staging), new.size), new.size)
        )
    if here != served.root_hash:
        raise VerificationFailure(
            f"couldn't verify the checkpoint: the source's tree has root {here.hex()} at size "
            f"{served.size}, where this mirror serves root {served.root_hash.hex()}: another "
            "history (a split view)",
            where="consistency proof",
        )


def _cosign(
    cosigners: Sequence[CosignatureSigner], checkpoint: Checkpoint, served: Path, now: int
) -> tuple[NoteSignature, ...]:
    """The mirror's lines on ``checkpoint`` at ``now``; refused (:class:`RefusedError`, nothing
    signed) if ``now`` is before the time of the mirror's line on the checkpoint it served
    before: a cosignature's time says "the largest tree as of then", which must not go back.

    A previous file whose mirror line does not verify (damaged) gives no time: the clock
    decides."""
    if not cosigners:
        return ()
    keys = [signer.verifier_key for signer in cosigners]
    try:
        before = max(verify_cosignatures(served.read_bytes(), keys).values(), default=0)
    except (OSError, LedgerError):
        before = 0
    if now < before:
        raise RefusedError(
            f"couldn't cosign the checkpoint of size {checkpoint.size}: the clock ({now}) is "
            f"before the mirror's last cosignature ({before}); the copy is in place, run "
            "`amnesty mirror` again once the clock has caught up"
        )
    return tuple(signer.cosign(checkpoint, now) for signer in cosigners)


def _publish_schemas(schemas: Path | None, target: Path) -> int:
    if schemas is None or not schemas.is_dir():
        return 0
    count = 0
    for path in sorted(schemas.glob("*.json")):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"couldn't read schema {path}: {exc}") from exc
        write_atomically(target / path.name, data)
        count += 1
    fsync_directory(target)
    return count


def readme(verified: VerifiedLog, log_key: LogKey) -> str:
    """The mirror's README: what it is, its checkpoint, and how to check it."""
    checkpoint = verified.checkpoint
    if checkpoint.origin != log_key.name:
        raise MalformedError(
            f"couldn't write the README: origin {checkpoint.origin!r} is not the key's name"
        )
    root = base64.b64encode(checkpoint.root_hash).decode()
    return f"""# Mirror of the Model Amnesty ledger `{checkpoint.origin}`

This directory is a static copy of a public-commitment ledger for the Model Amnesty offer: an
append-only RFC 6962 Merkle log of signed statements (the offer, applications, decisions and
every later act bearing on the offer), in the C2SP `tlog-tiles` layout. Serve it from any static
host; clients read it exactly as they read the live service. As a C2SP `tlog-mirror` copy it
belongs at `<monitoring prefix>/<origin hash>/` (the origin hash is below).

It was verified in full by amnesty-ledger before it was written: every entry bundle and hash
tile, the hash chain, every statement's signatures and signer authority, the amnesty protocol
replayed from the first entry, and the signed root.

| | |
|---|---|
| origin | `{checkpoint.origin}` |
| size | {checkpoint.size} entries |
| root hash | `{root}` |
| log key (vkey) | `{log_key.vkey()}` |
| origin hash | `{origin_hash(checkpoint.origin)}` |

Do not trust the key above because it is written here: get the log's vkey from the issuing body
or the log's operator, and check this mirror with it.

## Layout

- `checkpoint` — the signed checkpoint (C2SP `tlog-checkpoint` / `signed-note`), with the
  mirror's cosignature if the mirror signs (C2SP `tlog-cosignature`): its statement that it holds
  every entry up to this size and serves it.
- `tile/<L>/<N>` and `tile/entries/<N>` — hash tiles and entry bundles (C2SP `tlog-tiles`),
  partial ones as `.p/<W>`.
- `schemas/` — JSON Schemas of the statements.
- `precedent.json`, `precedent.txt` — the precedent audit computed at this checkpoint: how every
  applicant was treated and whether every commitment of the offer held. Recompute it, don't
  trust it: `amnesty audit DIR --vkey VKEY`.
- `.amnesty/` — the mirroring tool's own state; not part of the log.

## Verify it

    amnesty verify . --vkey '{log_key.vkey()}' --audit

One entry can be checked offline from a proof file:

    amnesty proof get . INDEX --vkey '{log_key.vkey()}' > entry.tlog-proof
    amnesty proof verify entry.tlog-proof --vkey '{log_key.vkey()}'
"""
