"""Step 4 of a verification: the checks of one entry that do not depend on the entries before it.

For a chunk of consecutive entries (the new entries of one bundle), each entry's envelope must
decode as canonical JSON and say its own index; with statements
(:func:`check_statement_entries`), its statement must also parse for the log's origin, and
every signature line naming a listed signer must verify. The in-order checks (leaf hashes against the
level-0 tile, log times, the hash chain, the protocol) are step 5, in
:mod:`ledger.verifier.verify`.

Contract: the functions here are pure — no I/O, no shared state — and return, rather than
raise, the first failure: ``(results of the entries before it, (index, message))``, so that
step 5 can still link and judge the entries before the bad one. :func:`check_statement_entries`
runs in worker processes (:func:`statement_pool`): it stays a module-level function, and its
arguments and results are plain picklable values.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from ledger.errors import LedgerError, MalformedError
from ledger.statements.entry import LogEntry
from ledger.statements.statement import STATEMENT_HEADER, parse_statement, verified_signers
from ledger.tlog.merkle import leaf_hash

CheckedEntry = tuple[bytes, bytes, int, bytes, str, int]
"""Step 4's result for one statement entry: leaf hash, prev, log time, statement id, the
statement's canonical JSON line, and a bit mask of the listed signers whose signature verified."""

DecodedEntry = tuple[bytes, LogEntry]
"""Step 4's result for one entry when statements are not parsed: leaf hash and entry."""

ChunkError = tuple[int, str]
"""The first entry of a chunk that failed step 4: its index and why."""


def check_statement_entries(
    origin: str, first: int, entries: Sequence[bytes]
) -> tuple[list[CheckedEntry], ChunkError | None]:
    """Step 4 for ``entries`` (indexes from ``first``): runs in a worker process.

    Returns the results of the entries that passed, in order, and ``(index, message)`` for the
    first one that failed, if any. Pure: no I/O, no shared state.
    """
    out: list[CheckedEntry] = []
    header = len(STATEMENT_HEADER) + 1
    for offset, data in enumerate(entries):
        index = first + offset
        try:
            entry = LogEntry.decode(data)
            if entry.index != index:
                raise MalformedError(f"it says it is entry {entry.index}")
            signed = parse_statement(entry.statement.encode("utf-8"), origin=origin)
            verified = verified_signers(signed)
        except LedgerError as exc:
            return out, (index, str(exc))
        statement = signed.statement
        mask = 0
        for position, vkey in enumerate(statement.signers):
            if vkey in verified:
                mask |= 1 << position
        line = statement.text[header:-1]
        out.append(
            (leaf_hash(data), entry.prev, entry.log_time_ms, statement.statement_id, line, mask)
        )
    return out, None


def decode_entries(
    first: int, entries: Sequence[bytes]
) -> tuple[list[DecodedEntry], ChunkError | None]:
    """Step 4 without statements: decode the envelopes."""
    out: list[DecodedEntry] = []
    for offset, data in enumerate(entries):
        index = first + offset
        try:
            entry = LogEntry.decode(data)
        except LedgerError as exc:
            return out, (index, f"it does not decode: {exc}")
        if entry.index != index:
            return out, (index, f"it says it is entry {entry.index}")
        out.append((leaf_hash(data), entry))
    return out, None


def statement_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for step 4, all started before this function returns.

    They are forked where the platform can (fast, and no re-import of the caller's main module,
    which ``spawn`` and ``forkserver`` would run again). A forked child only ever runs
    :func:`check_statement_entries`: pure computation on the bytes it is sent, touching no lock
    that another thread of this process could hold. Starting them all now, before the fetch
    threads, keeps those threads out of the fork.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    for started in [pool.submit(os.getpid) for _ in range(workers)]:
        started.result()
    return pool
