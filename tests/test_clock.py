"""No permanent halt from time: a clock behind the last entry's log time makes entries take the
last entry's time (log times never decrease), a large step is counted and logged loudly, and two
writers whose clocks differ both keep writing — on a real PostgreSQL with two stores."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from ledger.server.sequencer import CLOCK_STEP_WARN_MS, Receipt, Sequencer
from ledger.statements.entry import LogEntry
from ledger.storage.sql import SqlLogStore
from tests.support import OpaquePolicy, create_log, make_signer


def log_times(url: str) -> list[int]:
    store = SqlLogStore(url)
    try:
        size = int(store.checkpoint().split(b"\n")[1])
        return [LogEntry.decode(d).log_time_ms for d in store.read_entries(0, size)]
    finally:
        store.close()


def test_a_clock_stepped_back_keeps_writing_with_monotonic_times(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = create_log(url, make_signer())
    readings = iter([1_000_000, 1_000_500, 997_500, 997_600, 999_000, 1_000_600, 1_001_000])
    sequencer = Sequencer(store, make_signer(), OpaquePolicy(), clock=lambda: next(readings))
    with caplog.at_level(logging.WARNING, logger="ledger.server.sequencer"):
        for n in range(7):
            (result,) = sequencer.sequence_now([OpaquePolicy().prepare(f"entry {n}".encode())])
            assert isinstance(result, Receipt), result
    store.close()
    assert sequencer.fatal is None
    times = log_times(url)
    assert times == [1_000_000, 1_000_500, 1_000_500, 1_000_500, 1_000_500, 1_000_600, 1_001_000]
    # Stepped back 3 s: the three batches whose clock read more than CLOCK_STEP_WARN_MS behind
    # the log (3 s, 2.9 s, 1.5 s) are counted as steps, and the log says so.
    assert CLOCK_STEP_WARN_MS < 1_500
    assert sequencer.clock_steps == 3
    assert sequencer.clock_behind_ms == 0
    assert "behind the last entry's log time" in caplog.text


def test_two_skewed_postgresql_writers_both_keep_writing(pg_url: str) -> None:
    create_log(pg_url, make_signer()).close()
    base = [2_000_000_000_000]
    lock = threading.Lock()

    def ticking(offset_ms: int) -> int:
        with lock:
            base[0] += 1
            return base[0] + offset_ms

    stores = [SqlLogStore(pg_url), SqlLogStore(pg_url)]
    # The second writer's clock is 300 ms behind the first's.
    writers = [
        Sequencer(stores[0], make_signer(), OpaquePolicy(), clock=lambda: ticking(0)),
        Sequencer(stores[1], make_signer(), OpaquePolicy(), clock=lambda: ticking(-300)),
    ]
    written = [0, 0]
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            for n in range(25):
                payload = f"writer {number} entry {n}".encode()
                (result,) = writers[number].sequence_now([OpaquePolicy().prepare(payload)])
                assert isinstance(result, Receipt), result
                written[number] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for store in stores:
        store.close()
    assert not errors, errors
    assert written == [25, 25]
    times = log_times(pg_url)
    assert len(times) == 50
    assert times == sorted(times), "log times decreased"
    assert all(w.fatal is None for w in writers)
