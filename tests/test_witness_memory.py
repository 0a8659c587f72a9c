"""The signer's memory holds each witness's latest cosigned checkpoint (issue 13, part 1).

With real processes (``amnesty serve`` with a witness policy, ``amnesty witness serve``): the
whole machine — database and ``.published`` file — is restored from an older backup; the log's
own memory then agrees with the database, and only the witness knows better. The server asks
the witness's read endpoint on start and refuses (exit 3, one line naming the witness and the
size); the same when the memory file is gone; ``amnesty recover`` from a mirror then brings the
log back. In process: the gap the log's own lines leave (a published line confirmed lazily, a
pending one taken for a commit that never happened) is closed by a remembered cosignature; the
file format stays readable by and from the previous release.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from ledger.server.logview import LogView
from ledger.server.published import ForkError, PublishedCheckpoint, RootAt, UntrustedStoreError
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import CosignatureSigner, open_checkpoint, verify_cosignatures
from ledger.tlog.merkle import root_at
from ledger.tlog.note import NoteSignature, VerifierKey, format_note, parse_note
from ledger.tlog.tiles import TileNodeReader
from ledger.witness.client import fetch_cosigned_checkpoint
from ledger.witness.cosigner import WitnessEndpoint, recall_cosigned
from tests.livelog import Attester, Server, amnesty, free_port
from tests.test_cosigner import witness
from tests.test_never_fork import copy_sqlite, demo_log, log_origin, stored_checkpoint, submit
from tests.test_witness import W1, W2, Log

EXIT_UNTRUSTED = 3


def cosigned_size(url: str, origin: str) -> int:
    """The size of the checkpoint the witness at ``url`` serves as cosigned for ``origin``."""
    hashed = hashlib.sha256(origin.encode()).hexdigest()
    response = httpx.get(f"{url}/{hashed}/checkpoint", timeout=5)
    if response.status_code == 404:
        return 0
    assert response.status_code == 200, response.text
    return int(response.text.split("\n")[1])


def wait_cosigned(url: str, origin: str, size: int) -> None:
    deadline = time.monotonic() + 30
    while cosigned_size(url, origin) != size:
        assert time.monotonic() < deadline, f"the witness never cosigned size {size}"
        time.sleep(0.1)


def refusal(result_code: int, stderr: str) -> str:
    assert result_code == EXIT_UNTRUSTED, stderr
    assert "Traceback" not in stderr
    return " ".join(stderr.split())  # rich wraps long lines on a narrow terminal


def test_a_restored_machine_is_refused_by_what_the_witness_cosigned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMNESTY_WITNESS_MIN_INTERVAL_S", "0.2")  # a test witness takes any rate
    db_file = tmp_path / "ledger.db"
    db = f"sqlite:///{db_file}"
    key = demo_log(tmp_path, db)
    memory = key.with_name(key.name + ".published")
    origin = log_origin(db)
    store = SqlLogStore(db)
    log_vkey = store.identity().log_vkey
    store.close()
    attester = Attester(db, origin)
    with witness(tmp_path, "w1", log_vkey) as (url, vkey):
        policy = tmp_path / "policy.txt"
        policy.write_text(f"log {log_vkey}\nwitness w1 {vkey} {url}\nquorum w1\n")
        server = Server(db, tmp_path / "server.log", extra=["--witness-policy", str(policy)])
        server.start()
        try:
            backup_size = submit(server, attester, 3, "before-")
            wait_cosigned(url, origin, backup_size)
        finally:
            server.stop()
        # A backup of the machine: the database and the signer's memory beside the key.
        copy_sqlite(db_file, tmp_path / "backup")
        shutil.copy2(memory, tmp_path / "backup" / memory.name)
        server.start()
        try:
            published = submit(server, attester, 4, "after-")
            wait_cosigned(url, origin, published)
            deadline = time.monotonic() + 10
            while True:  # the cosigner keeps the cosignature in the memory file too
                kept = json.loads(memory.read_text()).get("witnesses", {})
                if kept and int(kept[vkey]["checkpoint"].split("\n")[1]) == published:
                    break
                assert time.monotonic() < deadline, memory.read_text()
                time.sleep(0.1)
        finally:
            server.stop()
        mirror = tmp_path / "mirror"
        amnesty("export", db, str(mirror), "--quiet")
        assert verify_cosignatures(kept[vkey]["checkpoint"].encode(), [VerifierKey.parse(vkey)])

        # The whole machine is put back: the memory file agrees with the old database.
        for suffix in ("", "-wal", "-shm"):
            db_file.with_name(db_file.name + suffix).unlink(missing_ok=True)
        copy_sqlite(tmp_path / "backup" / db_file.name, tmp_path)
        shutil.copy2(tmp_path / "backup" / memory.name, memory)
        before = stored_checkpoint(db)
        port = str(free_port())
        served = amnesty(
            "serve", "--db", db, "--port", port, "--witness-policy", str(policy), check=False
        )
        message = refusal(served.returncode, served.stderr)
        assert f"the database is at size {backup_size}" in message
        assert f"witness 'witness.example/w1' cosigned size {published}" in message
        assert "amnesty recover" in message
        assert stored_checkpoint(db) == before, "a checkpoint was signed over a restored backup"

        # The memory file gone altogether: the witness alone still knows.
        memory.unlink()
        served = amnesty(
            "serve", "--db", db, "--port", port, "--witness-policy", str(policy), check=False
        )
        assert f"cosigned size {published}" in refusal(served.returncode, served.stderr)
        assert stored_checkpoint(db) == before

        # The way back: the missing entries from the mirror, then the log serves and writes.
        recovered = amnesty("recover", "--db", db, "--from", str(mirror), "--quiet")
        assert f"recovered {published - backup_size} entries" in recovered.stdout
        server.start()
        try:
            assert submit(server, attester, 1, "recovered-") == published + 1
            wait_cosigned(url, origin, published + 1)
        finally:
            server.stop()


# -- in process ---------------------------------------------------------------------------------


def _cosigned(note: bytes, *lines: NoteSignature) -> bytes:
    parsed = parse_note(note)
    for line in lines:
        parsed = parsed.with_signature(line)
    return format_note(parsed)


def _memory(tmp_path: Path, log: Log) -> PublishedCheckpoint:
    return PublishedCheckpoint(
        tmp_path / "log.key.published", log.signer.verifier_key, log.signer.name
    )


def _roots(log: Log) -> RootAt:
    size = log.size
    nodes = TileNodeReader(log.store.read_tile, size)
    return lambda m: root_at(m, nodes)


def test_a_cosignature_closes_the_gap_the_logs_own_lines_leave(tmp_path: Path) -> None:
    """``published`` is confirmed lazily and a ``pending`` larger than the store is taken for a
    commit that never happened: a backup taken between the two passes the log's own lines.
    A witness that cosigned the pending size refuses it."""
    log = Log(tmp_path / "log.db")
    try:
        first = log.grow(3)  # published, confirmed
        log.grow(4)
        backup = tmp_path / "backup.db"
        with sqlite3.connect(tmp_path / "log.db") as live, sqlite3.connect(backup) as copy:
            live.backup(copy)  # size 7
        previous = log.view.latest().note
        pending = log.grow(5)  # size 12, committed; the confirmation never came (kill -9)
        memory = _memory(tmp_path, log)
        memory.confirm(first)
        memory.record_pending(previous, pending)
        checkpoint = open_checkpoint(pending, log.signer.verifier_key)
        cosigned = _cosigned(pending, W1.cosign(checkpoint, 1_700_000_000))
    finally:
        log.close()
    restored = Log.__new__(Log)
    restored.store = SqlLogStore(f"sqlite:///{backup}")
    restored.view = LogView(restored.store)
    restored.signer = log.signer
    try:
        assert restored.size == 7
        memory.check(7, _roots(restored), doing="start")  # the log's own lines let it through
        assert memory.remember_cosigned([W1.verifier_key], cosigned)
        with pytest.raises(ForkError) as refused:
            memory.check(7, _roots(restored), doing="start")
        assert str(refused.value).startswith(
            "couldn't start: the database is at size 7 but witness 'witness.example/w1' "
            "cosigned size 12 of this log"
        )
    finally:
        restored.store.close()


def test_records_only_move_forward_and_only_verified_ones_are_kept(tmp_path: Path) -> None:
    log = Log(tmp_path / "log.db")
    try:
        small = log.grow(2)
        large = log.grow(3)
        memory = _memory(tmp_path, log)
        memory.confirm(large)
        at = 1_700_000_000
        big = _cosigned(large, W1.cosign(open_checkpoint(large, log.signer.verifier_key), at))
        little = _cosigned(small, W1.cosign(open_checkpoint(small, log.signer.verifier_key), at))
        assert memory.remember_cosigned([W1.verifier_key], big)
        raw = memory.path.read_bytes()
        assert not memory.remember_cosigned([W1.verifier_key], little)  # never backwards
        assert not memory.remember_cosigned([W1.verifier_key], big)
        assert memory.path.read_bytes() == raw
        # A cosignature by another key than the witness's: refused, nothing written.
        forged = _cosigned(large, W2.cosign(open_checkpoint(large, log.signer.verifier_key), at))
        with pytest.raises(UntrustedStoreError, match="no cosignature of"):
            memory.remember_cosigned([W1.verifier_key], forged)
        assert memory.path.read_bytes() == raw
        document = json.loads(raw)
        assert document["format"] == "amnesty-ledger.published/v1"
        assert document["witnesses"] == {W1.vkey: {"vkeys": [W1.vkey], "checkpoint": big.decode()}}
        # Pending and confirm keep the witnesses' records.
        grown = log.grow(1)
        memory.record_pending(large, grown)
        memory.confirm(grown)
        remembered = memory.read()
        assert remembered is not None and remembered.published.size == 6
        assert remembered.witnessed[W1.vkey].checkpoint.size == 5
    finally:
        log.close()


def test_a_file_of_the_previous_release_reads_and_a_damaged_record_is_refused(
    tmp_path: Path,
) -> None:
    log = Log(tmp_path / "log.db")
    try:
        note = log.grow(2)
        memory = _memory(tmp_path, log)
        old = {"format": "amnesty-ledger.published/v1", "published": note.decode(), "pending": None}
        memory.path.write_text(json.dumps(old, indent=1) + "\n")
        remembered = memory.read()
        assert remembered is not None and remembered.witnessed == {}
        memory.confirm(note)
        assert json.loads(memory.path.read_text()) == old  # nothing new written for nothing new
        cosigned = _cosigned(note, W1.cosign(open_checkpoint(note, log.signer.verifier_key), 5))
        memory.remember_cosigned([W1.verifier_key], cosigned)
        document = json.loads(memory.path.read_text())
        tampered = cosigned.decode().replace("\n2\n", "\n3\n")
        bad: object
        for bad in (
            {W1.vkey: {"vkeys": [W1.vkey]}},
            {W1.vkey: {"vkeys": [W2.vkey], "checkpoint": cosigned.decode()}},
            {W1.vkey: {"vkeys": [W1.vkey], "checkpoint": tampered}},
            [],
        ):
            memory.path.write_text(json.dumps({**document, "witnesses": bad}))
            with pytest.raises(UntrustedStoreError, match=str(memory.path)):
                PublishedCheckpoint(memory.path, log.signer.verifier_key, log.signer.name).read()
    finally:
        log.close()


def test_a_witness_key_of_another_name_is_refused(tmp_path: Path) -> None:
    log = Log(tmp_path / "log.db")
    try:
        note = log.grow(1)
        other = CosignatureSigner.from_seed("other.example/w", hashlib.sha256(b"o").digest())
        cosigned = _cosigned(
            note,
            W1.cosign(open_checkpoint(note, log.signer.verifier_key), 1),
            other.cosign(open_checkpoint(note, log.signer.verifier_key), 1),
        )
        with pytest.raises(UntrustedStoreError, match="one name"):
            _memory(tmp_path, log).remember_cosigned(
                [W1.verifier_key, other.verifier_key], cosigned
            )
    finally:
        log.close()


def test_recall_skips_a_witness_that_is_down_or_says_what_does_not_verify(tmp_path: Path) -> None:
    """Start-up asks, but does not depend on the witnesses: one down, one with a forged answer,
    one with nothing for this log — none is remembered, and nothing stops."""
    log = Log(tmp_path / "log.db")
    try:
        note = log.grow(3)
        memory = _memory(tmp_path, log)
        memory.confirm(note)
        raw = memory.path.read_bytes()
        checkpoint = open_checkpoint(note, log.signer.verifier_key)
        forged = _cosigned(note, W2.cosign(checkpoint, 9))  # W2's line, offered as W1's
        down = WitnessEndpoint(f"http://127.0.0.1:{free_port()}", (W1.verifier_key,))
        lying = WitnessEndpoint("http://lying.invalid", (W1.verifier_key,))
        silent = WitnessEndpoint("http://silent.invalid", (W2.verifier_key,))
        answers = {lying.url: forged, silent.url: None}

        def fetch(url: str, origin: str) -> bytes | None:
            assert origin == log.signer.name
            if url in answers:
                return answers[url]
            return fetch_cosigned_checkpoint(url, origin, timeout=2)

        assert (
            recall_cosigned([down, lying, silent], log.signer.name, fetch, memory.remember_cosigned)
            == {}
        )
        assert memory.path.read_bytes() == raw
        honest = _cosigned(note, W1.cosign(checkpoint, 9))
        answers[lying.url] = honest
        learned = recall_cosigned([lying], log.signer.name, fetch, memory.remember_cosigned)
        assert learned == {W1.vkey: 3}
        remembered = memory.read()
        assert remembered is not None and remembered.witnessed[W1.vkey].note == honest
    finally:
        log.close()


def test_recall_asks_every_witness_at_once(tmp_path: Path) -> None:
    """A start waits for the slowest witness, not for the sum of their timeouts: the requests
    are in flight together (each waits at a barrier only all of them reach; asked one after
    the other, the first would wait alone and break it), and each answer is still
    remembered."""
    log = Log(tmp_path / "log.db")
    try:
        note = log.grow(3)
        memory = _memory(tmp_path, log)
        memory.confirm(note)
        checkpoint = open_checkpoint(note, log.signer.verifier_key)
        witnesses = [
            WitnessEndpoint("http://one.invalid", (W1.verifier_key,)),
            WitnessEndpoint("http://two.invalid", (W2.verifier_key,)),
            WitnessEndpoint(f"http://127.0.0.1:{free_port()}", (W1.verifier_key,)),
        ]
        answers = {
            witnesses[0].url: _cosigned(note, W1.cosign(checkpoint, 9)),
            witnesses[1].url: _cosigned(note, W2.cosign(checkpoint, 9)),
        }
        together = threading.Barrier(len(witnesses), timeout=30)

        def fetch(url: str, origin: str) -> bytes | None:
            together.wait()
            if url in answers:
                return answers[url]
            return fetch_cosigned_checkpoint(url, origin, timeout=2)  # down: refused

        learned = recall_cosigned(witnesses, log.signer.name, fetch, memory.remember_cosigned)
        assert learned == {W1.vkey: 3, W2.vkey: 3}
    finally:
        log.close()
