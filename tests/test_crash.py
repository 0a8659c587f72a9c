"""Failure injection with real processes: ``kill -9`` during sustained appends, and two server
processes appending to one SQLite file. After every crash: no acknowledged entry is missing,
the log verifies, and no two checkpoints of the same size differ."""

from __future__ import annotations

import base64
import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from ledger.server.derived import check_derived
from ledger.server.logview import LogView
from ledger.statements.entry import LogEntry
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import open_checkpoint
from ledger.verifier.replay import ReplayCheck
from ledger.verifier.verify import verify_log
from tests.livelog import Attester, Server, make_demo_log


class Ledger:
    """What clients were told: acknowledged indexes and every checkpoint they saw."""

    def __init__(self) -> None:
        self.acknowledged: dict[int, bytes] = {}
        self.checkpoints: dict[int, bytes] = {}
        self.lock = threading.Lock()

    def record(self, receipt: dict[str, object]) -> None:
        entry = base64.b64decode(str(receipt["entry_b64"]))
        checkpoint = str(receipt["checkpoint"]).encode()
        size = int(checkpoint.split(b"\n")[1])
        with self.lock:
            index = int(str(receipt["index"]))
            previous = self.acknowledged.setdefault(index, entry)
            assert previous == entry, f"index {index} was acknowledged for two different entries"
            seen = self.checkpoints.setdefault(size, checkpoint)
            assert seen == checkpoint, f"two different checkpoints of size {size}"


def submit_until(
    server: Server, attester: Attester, ledger: Ledger, stop: threading.Event, tag: str
) -> None:
    client = httpx.Client(timeout=10)
    n = 0
    while not stop.is_set():
        n += 1
        try:
            response = client.post(
                server.url + "/v1/statements", content=attester.next(f"{tag}-{n}")
            )
        except httpx.HTTPError:
            continue  # the server died mid-request: this one was never acknowledged
        if response.status_code in (200, 201):
            ledger.record(response.json())
        elif response.status_code not in (429, 503):
            raise AssertionError(f"unexpected {response.status_code}: {response.text}")
    client.close()


def check_store(db: str, ledger: Ledger) -> int:
    store = SqlLogStore(db)
    view = LogView(store)
    size = view.latest().size
    for index, entry in ledger.acknowledged.items():
        assert index < size, f"acknowledged entry {index} is missing (size {size})"
        assert store.read_entries(index, index + 1)[0] == entry
    for size_seen, note in ledger.checkpoints.items():
        stored = store.checkpoint_at(size_seen)
        assert stored == note, f"the checkpoint of size {size_seen} changed after a crash"
    check = ReplayCheck(view.origin)
    verify_log(view, view.log_key, entry_check=check)
    for note in ledger.checkpoints.values():
        open_checkpoint(note, view.log_key)
    # The derived state the servers wrote with their batches equals a replay of the log.
    point, difference = check_derived(store, view.origin)
    assert difference is None, f"derived state at {point}: {difference}"
    store.close()
    return size


@pytest.mark.slow
def test_kill_9_during_sustained_appends_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = make_demo_log(tmp_path)
    origin = SqlLogStore(db).identity().origin
    attester = Attester(db, origin)
    ledger = Ledger()
    rng = random.Random(20261127)
    server = Server(db, tmp_path / "server.log")
    kills = 0
    for round_number in range(22):
        server.start()
        stop = threading.Event()
        writers = [
            threading.Thread(
                target=submit_until, args=(server, attester, ledger, stop, f"{round_number}.{w}")
            )
            for w in range(3)
        ]
        for writer in writers:
            writer.start()
        time.sleep(rng.uniform(0.15, 0.8))
        server.kill9()
        kills += 1
        stop.set()
        for writer in writers:
            writer.join(20)
        check_store(db, ledger)
    assert kills >= 20
    assert len(ledger.acknowledged) > 100, "too few appends to mean anything"
    # The log still works after all that.
    server.start()
    try:
        response = httpx.post(
            server.url + "/v1/statements", content=attester.next("after"), timeout=10
        )
        assert response.status_code == 201, response.text
        ledger.record(response.json())
    finally:
        server.stop()
    check_store(db, ledger)


def test_two_server_processes_on_one_sqlite_file_never_fork(tmp_path: Path) -> None:
    db = make_demo_log(tmp_path)
    origin = SqlLogStore(db).identity().origin
    attester_lock = threading.Lock()
    attester = Attester(db, origin)
    ledger = Ledger()
    servers = [Server(db, tmp_path / f"server{i}.log") for i in (0, 1)]
    for server in servers:
        server.start()
    try:

        class Shared:
            def next(self, label: str) -> bytes:
                with attester_lock:
                    return attester.next(label)

        stop = threading.Event()
        writers = [
            threading.Thread(
                target=submit_until, args=(servers[w % 2], Shared(), ledger, stop, f"w{w}")
            )
            for w in range(4)
        ]
        for writer in writers:
            writer.start()
        time.sleep(4)
        stop.set()
        for writer in writers:
            writer.join(20)
    finally:
        for server in servers:
            server.stop()
    size = check_store(db, ledger)
    assert len(ledger.acknowledged) > 50
    # Each entry was acknowledged once, and the stored log holds exactly the statements,
    # in one order, both processes contributed to.
    store = SqlLogStore(db)
    statements = [LogEntry.decode(d).statement for d in store.read_entries(0, size)]
    assert len(set(statements)) == len(statements)
    store.close()


@pytest.mark.slow
def test_kill_9_of_two_postgresql_writers_keeps_the_derived_state_a_replay(
    pg_url: str, tmp_path: Path
) -> None:
    """Two writing servers on one PostgreSQL database, each killed with SIGKILL at random
    moments under load and restarted: nothing acknowledged is lost, nothing forks, and the
    derived state their batches wrote equals a replay of the log after every round."""
    db = make_demo_log(tmp_path, pg_url)
    origin = SqlLogStore(db).identity().origin
    attester = Attester(db, origin)
    ledger = Ledger()
    rng = random.Random(20261203)
    servers = [Server(db, tmp_path / f"server{n}.log") for n in range(2)]
    for round_number in range(6):
        for server in servers:
            server.start()
        stop = threading.Event()
        writers = [
            threading.Thread(
                target=submit_until,
                args=(servers[w % 2], attester, ledger, stop, f"{round_number}.{w}"),
            )
            for w in range(4)
        ]
        for writer in writers:
            writer.start()
        time.sleep(rng.uniform(0.5, 1.5))
        for server in rng.sample(servers, 2):
            server.kill9()
            time.sleep(rng.uniform(0.0, 0.3))
        stop.set()
        for writer in writers:
            writer.join(20)
        check_store(db, ledger)
    assert len(ledger.acknowledged) > 50, "too few appends to mean anything"
