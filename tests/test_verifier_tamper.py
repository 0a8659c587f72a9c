"""One flipped bit anywhere in a mirror or in the database: verification fails and names the place.

The log has two full bundles and a partial one, so every kind of stored object exists: the
checkpoint, full and partial level-0 tiles, a level-1 tile, full and partial entry bundles, and
inside the bundles (or the database's entry rows) the envelope and the signed statement.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.server.logview import LogView
from ledger.storage.sql import SqlLogStore
from ledger.tlog.note import VerifierKey
from ledger.verifier.failures import VerificationFailure
from ledger.verifier.mirror import mirror_log
from ledger.verifier.sources import DirectorySource, LogSource
from ledger.verifier.verify import verify_ledger, verify_log
from tests.support import signed_statement
from tests.verifier_logs import T0, digest, granted_log, sqlite_url, subject_key

SIZE = 600  # bundles 000 and 001 full, 002.p/88; level-1 tile 000.p/2


@dataclass(frozen=True)
class Built:
    db: Path
    mirror: Path
    log_key: VerifierKey


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    folder = tmp_path_factory.mktemp("tamper")
    builder, _key, _subject = granted_log(sqlite_url(folder), attestations=SIZE - 4)
    view = builder.view
    mirror_log(view, view.log_key, folder / "mirror", fresh=True, audit_time_ms=0)
    log_key = view.log_key
    builder.close()
    return Built(folder / "log.db", folder / "mirror", log_key)


def _bundle_entry(data: bytes, offset: int) -> tuple[str, int]:
    """Whether ``offset`` of an entry bundle falls in entry k's length prefix or its bytes."""
    position, k = 0, 0
    while position < len(data):
        length = int.from_bytes(data[position : position + 2], "big")
        if offset < position + 2:
            return "prefix", k
        if offset < position + 2 + length:
            return "entry", k
        position += 2 + length
        k += 1
    raise AssertionError(offset)


def _fails(source: LogSource, log_key: VerifierKey, workers: int = 0) -> VerificationFailure:
    with pytest.raises(VerificationFailure) as caught:
        verify_ledger(source, log_key, workers=workers)
    return caught.value


MIRROR_FILES = [
    "checkpoint",
    "tile/0/000",
    "tile/0/001",
    "tile/0/002.p/88",
    "tile/1/000.p/2",
    "tile/entries/000",
    "tile/entries/001",
    "tile/entries/002.p/88",
]


def test_the_untouched_mirror_and_database_verify(built: Built) -> None:
    for workers in (0, 2):
        result = verify_ledger(DirectorySource(built.mirror), built.log_key, workers=workers)
        assert (result.entries, result.checkpoint.size) == (SIZE, SIZE)
        assert result.details["statement_types"] == {
            "application": 1,
            "attestation": SIZE - 4,
            "decision": 1,
            "keyset": 1,
            "offer": 1,
        }
    store = SqlLogStore(f"sqlite:///{built.db}")
    assert verify_ledger(LogView(store), built.log_key).entries == SIZE
    assert verify_log(LogView(store), built.log_key).entries == SIZE
    store.close()
    tiles = {str(p.relative_to(built.mirror)) for p in (built.mirror / "tile").rglob("*")}
    assert {t for t in tiles if (built.mirror / t).is_file()} == set(MIRROR_FILES[1:])


@pytest.mark.parametrize("relative", MIRROR_FILES)
def test_a_flipped_bit_in_a_mirror_file_is_named(
    built: Built, tmp_path: Path, relative: str
) -> None:
    original = (built.mirror / relative).read_bytes()
    copy = tmp_path / "mirror"
    shutil.copytree(built.mirror, copy)
    for k in range(8):
        offset = min(len(original) - 1, len(original) * k // 8 + 5)
        bad = bytearray(original)
        bad[offset] ^= 1 << k
        (copy / relative).write_bytes(bytes(bad))
        failure = _fails(DirectorySource(copy), built.log_key)
        message = str(failure)
        if relative == "checkpoint":
            assert failure.where == "checkpoint", message
        elif relative.startswith("tile/entries/"):
            first = int(relative.split("/")[2][:3]) * 256
            kind, position = _bundle_entry(original, offset)
            assert failure.where == relative, message
            if kind == "entry":
                assert failure.index == first + position, message
                assert f"entry {first + position} " in message
        else:
            # A hash tile: the tile is blamed, never an entry (the entries are intact).
            assert failure.where == relative and failure.index is None, message
            assert relative in message
    (copy / relative).write_bytes(original)
    verify_ledger(DirectorySource(copy), built.log_key)


# -- the database ---------------------------------------------------------------------------------


@pytest.fixture
def db_copy(built: Built, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "log.db"
    shutil.copyfile(built.db, copy)
    yield copy


def _edit(db: Path, sql: str, parameters: tuple[object, ...]) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute(sql, parameters).rowcount == 1
    conn.close()


def _entry(db: Path, index: int) -> bytes:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT data FROM entries WHERE idx = ?", (index,)).fetchone()
    conn.close()
    return bytes(row[0])


def _db_failure(db: Path, log_key: VerifierKey, workers: int = 0) -> VerificationFailure:
    store = SqlLogStore(f"sqlite:///{db}")
    try:
        return _fails(LogView(store), log_key, workers)
    finally:
        store.close()


@pytest.mark.parametrize("index", [0, 3, 255, 256, 400, SIZE - 1])
def test_a_flipped_bit_in_a_stored_entry_is_named(built: Built, db_copy: Path, index: int) -> None:
    original = _entry(db_copy, index)
    for k in range(6):
        offset = len(original) * k // 6 + 7
        bad = bytearray(original)
        bad[offset] ^= 1 << (k + 1)
        _edit(db_copy, "UPDATE entries SET data = ? WHERE idx = ?", (bytes(bad), index))
        failure = _db_failure(db_copy, built.log_key)
        assert failure.index == index, str(failure)
        assert f"entry {index} " in str(failure)
    _edit(db_copy, "UPDATE entries SET data = ? WHERE idx = ?", (original, index))


@pytest.mark.parametrize(
    ("level", "tile_index", "hash_index"), [(0, 0, 7), (0, 1, 255), (0, 2, 87), (1, 0, 1)]
)
def test_a_flipped_bit_in_a_stored_tile_is_named(
    built: Built, db_copy: Path, level: int, tile_index: int, hash_index: int
) -> None:
    with sqlite3.connect(db_copy) as conn:
        row = conn.execute(
            "SELECT data FROM tiles WHERE level = ? AND idx = ?", (level, tile_index)
        ).fetchone()
    conn.close()
    bad = bytearray(row[0])
    bad[hash_index * 32 + 9] ^= 0x10
    _edit(
        db_copy,
        "UPDATE tiles SET data = ? WHERE level = ? AND idx = ?",
        (bytes(bad), level, tile_index),
    )
    failure = _db_failure(db_copy, built.log_key)
    assert failure.where is not None and failure.where.startswith(f"tile/{level}/00{tile_index}")
    assert failure.index is None
    if level == 0:
        entry = tile_index * 256 + hash_index
        assert f"the hash it serves for entry {entry} is not entry {entry}'s leaf hash" in str(
            failure
        )


def test_a_flipped_bit_in_the_stored_checkpoint_is_named(built: Built, db_copy: Path) -> None:
    with sqlite3.connect(db_copy) as conn:
        note = bytes(conn.execute("SELECT checkpoint FROM log_head").fetchone()[0])
    conn.close()
    for offset in (0, 25, 40, len(note) - 10):
        bad = bytearray(note)
        bad[offset] ^= 0x02
        _edit(db_copy, "UPDATE log_head SET checkpoint = ?", (bytes(bad),))
        failure = _db_failure(db_copy, built.log_key)
        assert failure.where == "checkpoint", str(failure)


def _rewrite_entry(db: Path, index: int, change: dict[str, object]) -> None:
    entry = json.loads(_entry(db, index))
    entry.update(change)
    data = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    _edit(db, "UPDATE entries SET data = ? WHERE idx = ?", (data.encode(), index))


@pytest.mark.parametrize("index", [100, 255, SIZE - 1])
def test_a_valid_looking_altered_entry_is_named_not_its_successor(
    built: Built, db_copy: Path, index: int
) -> None:
    # One millisecond later: canonical, signed, admissible, in order. Only the chain (the next
    # entry's prev) or, for the last entry, the signed root shows it was altered.
    entry = json.loads(_entry(db_copy, index))
    _rewrite_entry(db_copy, index, {"log_time_ms": entry["log_time_ms"] + 1})
    for workers in (0, 2):
        failure = _db_failure(db_copy, built.log_key, workers)
        assert failure.index == index, str(failure)
        assert "the entry was altered" in str(failure)


def test_a_replaced_statement_with_valid_signatures_is_named(built: Built, db_copy: Path) -> None:
    # The subject really signed this other attestation; it is simply not what the log holds.
    index = 300
    entry = json.loads(_entry(db_copy, index))
    statement = json.loads(entry["statement"].split("\n")[1])
    body = dict(statement["body"], summary="a different report, also signed by the subject")
    body["evidence_digests"] = [digest("other")]
    note = signed_statement(
        [subject_key("prometheus-7")],
        "attestation",
        body,
        origin=statement["origin"],
        time_ms=statement["time_ms"],
    )
    assert statement["time_ms"] >= T0
    _rewrite_entry(db_copy, index, {"statement": note.decode()})
    failure = _db_failure(db_copy, built.log_key)
    assert failure.index == index and "the entry was altered" in str(failure)


def test_a_statement_with_an_altered_signature_is_named(built: Built, db_copy: Path) -> None:
    index = 42
    entry = json.loads(_entry(db_copy, index))
    text, _, signatures = entry["statement"].rpartition("\n\n")
    name, signature = signatures.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(signature))
    raw[20] ^= 0x01
    entry_statement = f"{text}\n\n{name} {base64.b64encode(raw).decode()}\n"
    _rewrite_entry(db_copy, index, {"statement": entry_statement})
    failure = _db_failure(db_copy, built.log_key, workers=2)
    assert failure.index == index
    assert "Ed25519 verification failed" in str(failure)


def test_two_swapped_entries_are_named(built: Built, db_copy: Path) -> None:
    a, b = _entry(db_copy, 10), _entry(db_copy, 11)
    _edit(db_copy, "UPDATE entries SET data = ? WHERE idx = ?", (b, 10))
    _edit(db_copy, "UPDATE entries SET data = ? WHERE idx = ?", (a, 11))
    failure = _db_failure(db_copy, built.log_key)
    assert failure.index == 10 and "it says it is entry 11" in str(failure)
