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
"""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ledger.atomic import fsync_directory, move_into_place, write_atomically, write_durably
from ledger.errors import MalformedError, RefusedError, StorageError
from ledger.protocol.audit import render_precedent_text
from ledger.tlog.checkpoint import LogKey
from ledger.tlog.tiles import TileID
from ledger.verifier.sources import DirectorySource, LogSource
from ledger.verifier.trust import TrustState, load_trust_state, save_trust_state
from ledger.verifier.verify import Progress, VerifiedLog, verify_ledger

STATE_DIR: Final = ".amnesty"
"""The mirror's bookkeeping folder (trust state and staging); not part of the log."""


@dataclass
class MirrorResult:
    """What a mirror run did: the verification, the files it published, the report."""

    directory: Path
    verified: VerifiedLog
    files_written: int
    report: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            **self.verified.to_json(),
            "directory": str(self.directory),
            "files_written": self.files_written,
            "all_commitments_honoured": self.report["all_commitments_honoured"],
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
) -> MirrorResult:
    """Bring the mirror in ``directory`` up to the log ``source`` serves, verifying first.

    ``fresh`` (``amnesty export``) requires a directory without a checkpoint and verifies the
    whole log; otherwise (``amnesty mirror``) the run continues from the mirror's trust state
    when it has one. ``schemas`` is a folder whose ``*.json`` files are published under
    ``schemas/``; ``audit_time_ms`` is the time the precedent report judges clocks at (at least
    the last entry's log time). Steps as in the module docstring; raises what
    :func:`~ledger.verifier.verify.verify_ledger` raises (the mirror is left untouched), and
    :class:`~ledger.errors.StorageError` for file system failures.
    """
    # Step 1: what may be written where.
    directory = directory.resolve()
    if isinstance(source, DirectorySource) and source.root.resolve() == directory:
        raise RefusedError(f"couldn't mirror {directory} onto itself")
    if fresh and (directory / "checkpoint").exists():
        raise RefusedError(
            f"couldn't export to {directory}: it already holds a log (use `amnesty mirror` to "
            "update it)"
        )
    # Step 2: where the last run stopped.
    trusted: TrustState | None = None
    if not fresh and state_path(directory).exists():
        trusted = load_trust_state(state_path(directory), log_key)
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
    # Step 6: the checkpoint, last of what readers see.
    write_atomically(directory / "checkpoint", verified.checkpoint_note)
    # Step 7: where to continue from.
    save_trust_state(state_path(directory), verified.trust_state(log_key))
    shutil.rmtree(staging, ignore_errors=True)
    return MirrorResult(directory, verified, written + 4, report)


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
host; clients read it exactly as they read the live service.

It was verified in full by amnesty-ledger before it was written: every entry bundle and hash
tile, the hash chain, every statement's signatures and signer authority, the amnesty protocol
replayed from the first entry, and the signed root.

| | |
|---|---|
| origin | `{checkpoint.origin}` |
| size | {checkpoint.size} entries |
| root hash | `{root}` |
| log key (vkey) | `{log_key.vkey()}` |

Do not trust the key above because it is written here: get the log's vkey from the issuing body
or the log's operator, and check this mirror with it.

## Layout

- `checkpoint` — the signed checkpoint (C2SP `tlog-checkpoint` / `signed-note`).
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
