"""Cheap failure recovery: a batch that fails before it applied anything (the database down or
locked, as most storage failures are) keeps the sequencer's state; one that fails after (its
commit lost) makes the sequencer rebuild the state from what is committed — and either way the
next batch appends at the right index and the log verifies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.errors import StorageError
from ledger.server.logview import LogView
from ledger.server.sequencer import Receipt, Sequencer
from ledger.storage.sql import SqlLogStore
from ledger.verifier.verify import verify_log
from tests.support import OpaquePolicy, create_log, make_signer


class CountingPolicy(OpaquePolicy):
    """The opaque policy, counting the entries it replays from the store."""

    def __init__(self) -> None:
        super().__init__()
        self.caught_up = 0

    def catch_up(self, entry: Any, leaf: bytes) -> None:
        super().catch_up(entry, leaf)
        self.caught_up += 1


class Flaky:
    """The real store; ``fail`` = "begin" refuses the next transaction at its start (a lock
    timeout), "commit" makes it fail after the batch was staged (a lost connection)."""

    def __init__(self, store: SqlLogStore) -> None:
        self._store = store
        self.fail: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextmanager
    def append_transaction(self) -> Iterator[Any]:
        fail, self.fail = self.fail, None
        if fail == "begin":
            raise StorageError("couldn't begin the append: lock timeout (injected)")
        with self._store.append_transaction() as tx:
            yield tx
            if fail == "commit":
                raise StorageError("couldn't commit: the connection was lost (injected)")


def _one(sequencer: Sequencer, payload: str) -> Receipt | Exception:
    (result,) = sequencer.sequence_now([OpaquePolicy().prepare(payload.encode())])
    return result


def test_a_failed_batch_costs_a_replay_only_when_it_had_applied_entries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    signer = make_signer()
    create_log(url, signer).close()
    store = Flaky(SqlLogStore(url))
    policy = CountingPolicy()
    sequencer = Sequencer(store, signer, policy)
    for n in range(5):
        assert isinstance(_one(sequencer, f"entry {n}"), Receipt)
    assert policy.caught_up == 0  # its own entries: applied, never replayed

    store.fail = "begin"
    assert isinstance(_one(sequencer, "refused at begin"), StorageError)
    receipt = _one(sequencer, "after begin")
    assert isinstance(receipt, Receipt) and receipt.index == 5
    assert policy.caught_up == 0, "a failure before any apply must not cost a replay"

    store.fail = "commit"
    assert isinstance(_one(sequencer, "lost at commit"), StorageError)
    receipt = _one(sequencer, "after commit")
    assert isinstance(receipt, Receipt) and receipt.index == 6
    assert policy.caught_up == 6  # rebuilt from what is committed, once

    view = LogView(SqlLogStore(url))
    assert verify_log(view, view.log_key).checkpoint.size == 7
