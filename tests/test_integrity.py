"""Integrity is checked before signing: a damaged store is refused at start with a one-line
reason and exit 3 (``amnesty serve``, a real process), and damage found later stops writing at
once — submissions 503 naming it, ``/healthz`` 503 — and nothing is ever appended on top of it.

The log is the demo log grown past one full tile (300 entries), so that damage inside the full
level-0 tile 0 is covered, not only the right edge the startup check reads.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.service import LedgerService
from api.settings import Settings
from ledger.server.admission import StatementPolicy
from ledger.server.derived import delete_derived
from ledger.server.logview import LogView
from ledger.server.sequencer import Receipt, Sequencer
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import LogSigners
from tests.livelog import Attester, amnesty, free_port, make_demo_log

EXIT_UNTRUSTED = 3
SIZE = 300


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the demo log grown to :data:`SIZE` entries and its keys."""
    folder = tmp_path_factory.mktemp("pristine")
    url = make_demo_log(folder)
    store = SqlLogStore(url)
    view = LogView(store)
    attester = Attester(url, view.origin)
    signers = LogSigners.parse((folder / "keys" / "log.key").read_text())
    # As a server appends: the derived state is written with every batch.
    policy = StatementPolicy(view.origin, store.derived_source())
    sequencer = Sequencer(store, signers.ed25519, policy, extra_signers=signers.extra())
    size = int(store.checkpoint().split(b"\n")[1])
    batch = [policy.prepare(attester.next(f"fill-{n}")) for n in range(SIZE - size)]
    assert all(isinstance(r, Receipt) for r in sequencer.sequence_now(batch))
    store.close()
    return folder


def copy_of(pristine: Path, folder: Path) -> tuple[Path, Path]:
    """A private copy of the pristine log (database and key); return the db file and key."""
    shutil.copy2(pristine / "ledger.db", folder / "ledger.db")
    shutil.copytree(pristine / "keys", folder / "keys")
    return folder / "ledger.db", folder / "keys" / "log.key"


def damage(db_file: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(db_file) as conn:
        assert conn.execute(sql, params).rowcount == 1


def changed_digit(data: bytes) -> bytes:
    """``data`` with one digit of its log time changed."""
    at = data.index(b'"log_time_ms":') + len(b'"log_time_ms":') + 3
    digit = data[at : at + 1]
    return data[:at] + (b"1" if digit != b"1" else b"2") + data[at + 1 :]


def refuses_to_start(db_file: Path, key: Path) -> str:
    db = f"sqlite:///{db_file}"
    before = SqlLogStore(db).checkpoint()
    result = amnesty(
        "serve", "--db", db, "--key", str(key), "--port", str(free_port()), check=False
    )
    assert result.returncode == EXIT_UNTRUSTED, result.stderr
    assert "Traceback" not in result.stderr
    assert SqlLogStore(db).checkpoint() == before, "something was signed on top of damage"
    return " ".join(result.stderr.split())


def stops_writing_after_start(db_file: Path, key: Path) -> str:
    """Start a writer on ``db_file`` (it starts: its protocol state is the derived state, and
    nothing is replayed); its background sweep must find the damage, stop writing and say so
    in health; nothing is signed on top. Returns the reason it gives."""
    db = f"sqlite:///{db_file}"
    store = SqlLogStore(db)
    before = store.checkpoint()
    attester = Attester(db, LogView(store).origin)
    store.close()
    settings = Settings(db=db, key_path=key, write_rate_per_minute=100_000, write_burst=10_000)
    with TestClient(create_app(settings)) as client:
        service: LedgerService = client.app.state.service  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while service.integrity_failure is None and time.monotonic() < deadline:
            time.sleep(0.02)
        reason = service.integrity_failure
        assert reason is not None, "the integrity sweep found nothing"
        refused = client.post("/v1/statements", content=attester.next("on-top"))
        assert refused.status_code == 503 and "writing stopped" in refused.text
        assert client.get("/healthz").status_code == 503
        assert client.get("/readyz").status_code == 503
    assert SqlLogStore(db).checkpoint() == before, "something was signed on top of damage"
    return reason


def test_an_interior_entry_with_one_changed_digit_stops_writing_once_swept(
    pristine: Path, tmp_path: Path
) -> None:
    db_file, key = copy_of(pristine, tmp_path)
    with sqlite3.connect(db_file) as conn:
        (data,) = conn.execute("SELECT data FROM entries WHERE idx = 100").fetchone()
    damage(db_file, "UPDATE entries SET data = ? WHERE idx = 100", changed_digit(bytes(data)))
    reason = stops_writing_after_start(db_file, key)
    assert "entry 100: it does not hash to the leaf hash" in reason


def test_a_flipped_byte_in_full_tile_0_stops_writing_once_swept(
    pristine: Path, tmp_path: Path
) -> None:
    db_file, key = copy_of(pristine, tmp_path)
    with sqlite3.connect(db_file) as conn:
        (data,) = conn.execute("SELECT data FROM tiles WHERE level = 0 AND idx = 0").fetchone()
    tile = bytearray(data)
    assert len(tile) == 256 * 32
    tile[40 * 32 + 7] ^= 0x01
    damage(db_file, "UPDATE tiles SET data = ? WHERE level = 0 AND idx = 0", bytes(tile))
    reason = stops_writing_after_start(db_file, key)
    assert "entry 40: it does not hash to the leaf hash" in reason


def test_damage_in_entries_the_backfill_replays_is_refused_at_start(
    pristine: Path, tmp_path: Path
) -> None:
    """A log without derived state (an older release's) is replayed once at start to write
    it: an entry that does not hash to its tile is refused there, exit 3, one line."""
    db_file, key = copy_of(pristine, tmp_path)
    delete_derived(SqlLogStore(f"sqlite:///{db_file}"))
    with sqlite3.connect(db_file) as conn:
        (data,) = conn.execute("SELECT data FROM entries WHERE idx = 100").fetchone()
    damage(db_file, "UPDATE entries SET data = ? WHERE idx = 100", changed_digit(bytes(data)))
    message = refuses_to_start(db_file, key)
    assert "couldn't start: couldn't trust the store: couldn't replay entry 100" in message


def test_a_changed_latest_checkpoint_is_refused_at_start(pristine: Path, tmp_path: Path) -> None:
    db_file, key = copy_of(pristine, tmp_path)
    with sqlite3.connect(db_file) as conn:
        (note,) = conn.execute("SELECT checkpoint FROM log_head").fetchone()
    changed = bytes(note).replace(f"\n{SIZE}\n".encode(), f"\n{SIZE - 1}\n".encode(), 1)
    assert changed != bytes(note)
    damage(db_file, "UPDATE log_head SET checkpoint = ?", changed)
    message = refuses_to_start(db_file, key)
    assert "couldn't start: couldn't trust the stored checkpoint" in message


def test_damage_found_while_serving_stops_writing_at_once(pristine: Path, tmp_path: Path) -> None:
    db_file, key = copy_of(pristine, tmp_path)
    db = f"sqlite:///{db_file}"
    store = SqlLogStore(db)
    attester = Attester(db, LogView(store).origin)
    store.close()
    settings = Settings(db=db, key_path=key, write_rate_per_minute=100_000, write_burst=10_000)
    with TestClient(create_app(settings)) as client:
        service: LedgerService = client.app.state.service  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while service.reader.size < SIZE and time.monotonic() < deadline:
            time.sleep(0.02)  # the read side's warm-up replay at start
        assert service.reader.size == SIZE and service.integrity_failure is None
        posted = client.post("/v1/statements", content=attester.next("new"))
        assert posted.status_code == 201, posted.text
        index = posted.json()["index"]
        # The disk flips a digit of the entry just written, before any reader replayed it.
        with sqlite3.connect(db_file) as conn:
            (data,) = conn.execute("SELECT data FROM entries WHERE idx = ?", (index,)).fetchone()
        damage(
            db_file, "UPDATE entries SET data = ? WHERE idx = ?", changed_digit(bytes(data)), index
        )
        size = int(client.get("/checkpoint").text.split("\n")[1])

        precedent = client.get("/v1/precedent")
        assert precedent.status_code == 503
        assert service.integrity_failure is not None
        assert f"entry {index}" in service.integrity_failure

        refused = client.post("/v1/statements", content=attester.next("on-top"))
        assert refused.status_code == 503
        assert "writing stopped" in refused.text and f"entry {index}" in refused.text
        health = client.get("/healthz")
        assert health.status_code == 503
        assert any(f"entry {index}" in reason for reason in health.json()["reasons"])
        assert int(client.get("/checkpoint").text.split("\n")[1]) == size


# -- amnesty fsck ---------------------------------------------------------------------------------


def fsck(db_file: Path, *extra: str) -> tuple[int, str]:
    result = amnesty("fsck", f"sqlite:///{db_file}", "--quiet", *extra, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def test_fsck_passes_a_sound_database(pristine: Path, tmp_path: Path) -> None:
    db_file, _ = copy_of(pristine, tmp_path)
    code, output = fsck(db_file)
    assert code == 0, output
    assert f"size {SIZE}: {SIZE} entries" in output and "checkpoint rows" in output


def test_fsck_names_a_changed_old_checkpoint_row(pristine: Path, tmp_path: Path) -> None:
    db_file, _ = copy_of(pristine, tmp_path)
    with sqlite3.connect(db_file) as conn:
        size, note = conn.execute(
            "SELECT size, checkpoint FROM checkpoints WHERE size > 0 ORDER BY size LIMIT 1"
        ).fetchone()
    assert size < SIZE
    lines = bytes(note).split(b"\n")
    lines[2] = bytes([lines[2][0] ^ 0x01]) + lines[2][1:]  # one character of the root
    damage(db_file, "UPDATE checkpoints SET checkpoint = ? WHERE size = ?", b"\n".join(lines), size)
    code, output = fsck(db_file)
    assert code == 1
    assert f"DAMAGED: checkpoints row {size}: the checkpoint does not verify" in output


def test_fsck_names_a_changed_statement_id_column(pristine: Path, tmp_path: Path) -> None:
    db_file, _ = copy_of(pristine, tmp_path)
    damage(db_file, "UPDATE entries SET statement_id = ? WHERE idx = 50", bytes(32))
    code, output = fsck(db_file)
    assert code == 1
    assert "DAMAGED: entries row 50: statement_id column" in output


def test_fsck_names_a_changed_interior_entry(pristine: Path, tmp_path: Path) -> None:
    db_file, _ = copy_of(pristine, tmp_path)
    with sqlite3.connect(db_file) as conn:
        (data,) = conn.execute("SELECT data FROM entries WHERE idx = 100").fetchone()
    damage(db_file, "UPDATE entries SET data = ? WHERE idx = 100", changed_digit(bytes(data)))
    code, output = fsck(db_file)
    assert code == 1
    assert "DAMAGED:" in output and "100" in output, output
    result = amnesty("fsck", f"sqlite:///{db_file}", "-q", "--json", check=False)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["ok"] is False and report["index"] == 100, report


def test_fsck_names_a_missing_statement_key_row(pristine: Path, tmp_path: Path) -> None:
    db_file, _ = copy_of(pristine, tmp_path)
    damage(db_file, "DELETE FROM statement_keys WHERE idx = 120")
    code, out = fsck(db_file)
    assert code == 1 and "statement_keys has 0 rows for entry 120, not 1" in out, out
