"""Never sign a fork: the signer remembers, outside the database, the largest checkpoint it
published (``ledger.server.published``), and refuses to sign anything that does not extend it.

With real processes: a restored older backup (a copied SQLite file; a PostgreSQL database
cloned from the live one) is refused by ``amnesty serve`` and ``amnesty append`` with exit 3 and
a one-line reason, before any signature. In process: a database with another history at a
larger size is refused; a checkpoint remembered as pending whose commit never happened does not
block the next start.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from ledger.errors import StorageError
from ledger.server.admission import StatementPolicy
from ledger.server.logview import LogView
from ledger.server.published import ForkError, PublishedCheckpoint, published_path_for
from ledger.server.sequencer import Receipt, Sequencer
from ledger.storage.base import AppendTransaction
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import LogSigners, open_checkpoint
from tests.livelog import Attester, Server, amnesty, free_port
from tests.support import OpaquePolicy, create_log, make_signer

EXIT_UNTRUSTED = 3


# -- helpers --------------------------------------------------------------------------------------


def submit(server: Server, attester: Attester, count: int, tag: str) -> int:
    """Submit ``count`` attestations; return the size of the last receipt's checkpoint."""
    size = 0
    with httpx.Client(timeout=30) as client:
        for n in range(count):
            response = client.post(
                server.url + "/v1/statements", content=attester.next(f"{tag}{n}")
            )
            assert response.status_code in (200, 201), response.text
            size = int(str(response.json()["checkpoint"]).split("\n")[1])
    return size


def stored_checkpoint(db: str) -> bytes:
    store = SqlLogStore(db)
    try:
        return store.checkpoint()
    finally:
        store.close()


def log_origin(db: str) -> str:
    store = SqlLogStore(db)
    try:
        return LogView(store).origin
    finally:
        store.close()


def demo_log(folder: Path, db: str) -> Path:
    """Create the demo log in ``db`` (any engine); return the log's key file."""
    keys = folder / "keys"
    amnesty("demo", "--db", db, "--keys", str(keys))
    return keys / "log.key"


def assert_refused(result_code: int, stderr: str, backup_size: int, published: int) -> None:
    assert result_code == EXIT_UNTRUSTED, stderr
    message = " ".join(stderr.split())  # rich wraps long lines on a narrow terminal
    assert f"the database is at size {backup_size} but this log already published size " in message
    assert f"{published}" in message
    assert "amnesty recover" in message
    assert "Traceback" not in stderr


def refused_everywhere(
    db: str, key: Path, backup_size: int, published: int, statement: bytes
) -> None:
    """``serve`` and ``append`` (of a valid ``statement``) both refuse ``db``, and neither
    signed anything."""
    before = stored_checkpoint(db)
    served = amnesty("serve", "--db", db, "--port", str(free_port()), check=False, timeout=60)
    assert_refused(served.returncode, served.stderr, backup_size, published)
    appended = amnesty(
        "append", "--db", db, "--key", str(key), check=False, stdin=statement.decode()
    )
    assert appended.returncode == EXIT_UNTRUSTED, appended.stderr
    assert "already published size" in " ".join(appended.stderr.split())
    assert stored_checkpoint(db) == before, "a checkpoint was signed over a restored backup"


# -- real processes: SQLite -----------------------------------------------------------------------


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy a SQLite database with its WAL files (the server is stopped)."""
    target.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        path = source.with_name(source.name + suffix)
        copy = target / path.name
        copy.unlink(missing_ok=True)
        if path.exists():
            shutil.copy2(path, copy)


def test_a_restored_sqlite_backup_is_refused_before_any_signature(tmp_path: Path) -> None:
    db_file = tmp_path / "ledger.db"
    db = f"sqlite:///{db_file}"
    key = demo_log(tmp_path, db)
    origin = log_origin(db)
    attester = Attester(db, origin)
    server = Server(db, tmp_path / "server.log")
    server.start()
    try:
        backup_size = submit(server, attester, 4, "before-")
    finally:
        server.stop()
    copy_sqlite(db_file, tmp_path / "backup")
    server.start()
    try:
        published = submit(server, attester, 6, "after-")
    finally:
        server.stop()
    mirror = tmp_path / "mirror"
    amnesty("export", db, str(mirror), "--quiet")  # a static mirror, as any monitor keeps
    remembered = json.loads(published_path_for(key).read_text())
    assert int(remembered["published"].split("\n")[1]) == published
    assert remembered["pending"] is None

    # The operator puts the old copy back and restarts with the same keys.
    for suffix in ("", "-wal", "-shm"):
        db_file.with_name(db_file.name + suffix).unlink(missing_ok=True)
    copy_sqlite(tmp_path / "backup" / db_file.name, tmp_path)
    assert open_checkpoint(stored_checkpoint(db), LogView(SqlLogStore(db)).log_key).size == (
        backup_size
    )
    refused_everywhere(db, key, backup_size, published, attester.next("restored"))

    # The way back: the missing entries from the mirror, verified against the log's key and
    # the remembered checkpoint; then the log serves and writes again.
    recovered = amnesty("recover", "--db", db, "--from", str(mirror), "--quiet")
    assert f"recovered {published - backup_size} entries" in recovered.stdout
    assert amnesty("fsck", db, "--quiet").returncode == 0
    server.start()
    try:
        assert submit(server, attester, 1, "recovered-") == published + 1
    finally:
        server.stop()


# -- real processes: PostgreSQL -------------------------------------------------------------------


@pytest.fixture
def pg_backup_of(pg_admin_url: str) -> Iterator[list[str]]:
    """Names of databases cloned in a test (``CREATE DATABASE … TEMPLATE``), dropped after."""
    made: list[str] = []
    yield made
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_restored_postgresql_backup_is_refused_before_any_signature(
    tmp_path: Path, pg_url: str, pg_admin_url: str, pg_backup_of: list[str]
) -> None:
    key = demo_log(tmp_path, pg_url)
    origin = log_origin(pg_url)
    attester = Attester(pg_url, origin)
    server = Server(pg_url, tmp_path / "server.log")
    server.start()
    try:
        backup_size = submit(server, attester, 3, "before-")
    finally:
        server.stop()
    # A backup: a database cloned from the live one while no server runs (as a restored
    # pg_dump would be), then the live log goes on.
    backup = "amnesty_backup_" + uuid.uuid4().hex[:12]
    live = pg_url.rsplit("/", 1)[1].split("?", maxsplit=1)[0]
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{backup}" TEMPLATE "{live}"')
    pg_backup_of.append(backup)
    server.start()
    try:
        published = submit(server, attester, 5, "after-")
    finally:
        server.stop()
    restored = pg_url.replace(f"/{live}", f"/{backup}")
    refused_everywhere(restored, key, backup_size, published, attester.next("restored"))

    # Recovered from another replica of the log (here the live database).
    recovered = amnesty("recover", "--db", restored, "--from", pg_url, "--quiet")
    assert f"recovered {published - backup_size} entries" in recovered.stdout
    assert amnesty("fsck", restored, "--quiet").returncode == 0
    on_restored = Server(restored, tmp_path / "restored.log")
    on_restored.start()
    try:
        assert submit(on_restored, attester, 1, "recovered-") == published + 1
    finally:
        on_restored.stop()


# -- in process: forks and the crash window --------------------------------------------------------


def _sequencer(url: str, key_file: Path | None) -> tuple[Sequencer, SqlLogStore]:
    store = SqlLogStore(url)
    view = LogView(store)
    published = (
        None
        if key_file is None
        else PublishedCheckpoint(published_path_for(key_file), view.log_key, view.origin)
    )
    return Sequencer(store, make_signer(), OpaquePolicy(), published=published), store


def _append(sequencer: Sequencer, *payloads: str) -> int:
    results = sequencer.sequence_now([OpaquePolicy().prepare(p.encode()) for p in payloads])
    assert all(isinstance(r, Receipt) for r in results), results
    receipt = results[-1]
    assert isinstance(receipt, Receipt)
    return receipt.index + 1


def test_another_history_at_a_larger_size_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    url = f"sqlite:///{tmp_path / 'log.db'}"
    create_log(url, make_signer()).close()
    sequencer, store = _sequencer(url, key)
    _append(sequencer, "a", "b")
    store.close()
    shutil.copy2(tmp_path / "log.db", tmp_path / "backup.db")
    sequencer, store = _sequencer(url, key)
    assert _append(sequencer, "c") == 3
    store.close()

    # A fork: the backup, grown by a signer that does not remember (no file) to size 5 with
    # other entries. It is larger than what was published, but not an extension of it.
    fork = f"sqlite:///{tmp_path / 'backup.db'}"
    forker, fork_store = _sequencer(fork, None)
    assert _append(forker, "x", "y", "z") == 5
    fork_store.close()

    sequencer, store = _sequencer(fork, key)
    with pytest.raises(ForkError, match="holds another history, a fork"):
        sequencer.warm_up()
    before = store.checkpoint()
    results = sequencer.sequence_now([OpaquePolicy().prepare(b"w")])
    assert isinstance(results[0], ForkError)
    assert store.checkpoint() == before
    store.close()

    # The log's own database goes on.
    sequencer, store = _sequencer(url, key)
    assert _append(sequencer, "d") == 4
    store.close()


class _FailingCommit:
    """The real store whose next commit fails after the batch was staged (a lost connection,
    a full disk): the transaction rolls back."""

    def __init__(self, store: SqlLogStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def append_transaction(self) -> object:
        store = self._store

        class Failing:
            def __enter__(self) -> AppendTransaction:
                self._inner = store.append_transaction()
                tx = self._inner.__enter__()
                original = tx.commit_batch

                def commit_batch(*args: object, **kwargs: object) -> None:
                    original(*args, **kwargs)  # type: ignore[arg-type]
                    raise StorageError("couldn't commit: the connection was lost (injected)")

                tx.commit_batch = commit_batch  # type: ignore[method-assign]
                return tx

            def __exit__(self, *exc: object) -> object:
                return self._inner.__exit__(*exc)  # type: ignore[arg-type]

        return Failing()


def test_a_pending_checkpoint_that_never_committed_does_not_block(tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    url = f"sqlite:///{tmp_path / 'log.db'}"
    create_log(url, make_signer()).close()
    sequencer, store = _sequencer(url, key)
    _append(sequencer, "a", "b")
    view = LogView(store)
    published = PublishedCheckpoint(published_path_for(key), view.log_key, view.origin)
    failing = Sequencer(
        _FailingCommit(store),  # type: ignore[arg-type]
        make_signer(),
        OpaquePolicy(),
        published=published,
    )
    (result,) = failing.sequence_now([OpaquePolicy().prepare(b"c")])
    assert isinstance(result, StorageError)
    remembered = published.read()
    assert remembered is not None and remembered.pending is not None
    assert remembered.pending.size == 3 and remembered.published.size == 2
    store.close()

    void = remembered.pending
    # A restart. Starting takes no write lock, so the pending checkpoint is not judged yet (a
    # writer sharing the file could be committing it)...
    sequencer, store = _sequencer(url, key)
    sequencer.warm_up()
    remembered = published.read()
    assert remembered is not None and remembered.pending == void
    # ... the first batch, under the lock, sees the store at 2, below the pending 3: that one
    # was never committed, so never published, and a different entry 2 may be signed.
    assert _append(sequencer, "c2") == 3
    remembered = published.read()
    assert remembered is not None and remembered.pending is None
    assert remembered.published.size == 3
    assert remembered.published.root_hash != void.root_hash
    store.close()


def test_a_damaged_memory_is_refused_not_forgotten(tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    url = f"sqlite:///{tmp_path / 'log.db'}"
    create_log(url, make_signer()).close()
    sequencer, store = _sequencer(url, key)
    _append(sequencer, "a")
    store.close()
    path = published_path_for(key)
    document = json.loads(path.read_text())
    document["published"] = document["published"].replace("\n1\n", "\n7\n", 1)
    path.write_text(json.dumps(document))
    sequencer, store = _sequencer(url, key)
    with pytest.raises(Exception, match="couldn't trust the published checkpoint"):
        sequencer.warm_up()
    store.close()


def test_recover_refuses_a_copy_that_is_not_the_published_history(tmp_path: Path) -> None:
    db_file = tmp_path / "ledger.db"
    db = f"sqlite:///{db_file}"
    key = demo_log(tmp_path, db)
    origin = log_origin(db)
    attester = Attester(db, origin)
    signers = LogSigners.parse(key.read_text())

    def grow(url: str, labels: list[str], remember: bool) -> int:
        store = SqlLogStore(url)
        view = LogView(store)
        published = (
            PublishedCheckpoint(published_path_for(key), view.log_key, view.origin)
            if remember
            else None
        )
        policy = StatementPolicy(origin)
        sequencer = Sequencer(
            store, signers.ed25519, policy, extra_signers=signers.extra(), published=published
        )
        results = sequencer.sequence_now([policy.prepare(attester.next(x)) for x in labels])
        store.close()
        assert all(isinstance(r, Receipt) for r in results), results
        return int(stored_checkpoint(url).split(b"\n")[1])

    shutil.copy2(db_file, tmp_path / "backup.db")
    published = grow(db, ["a", "b", "c"], remember=True)
    # Another history from the same backup, by a signer that kept no memory: larger, and
    # verifiable on its own, but not an extension of what this log published.
    shutil.copy2(tmp_path / "backup.db", tmp_path / "other.db")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert grow(other, ["x", "y", "z", "w", "v"], remember=False) > published
    restored = f"sqlite:///{tmp_path / 'backup.db'}"
    before = stored_checkpoint(restored)
    result = amnesty("recover", "--db", restored, "--from", other, "--quiet", check=False)
    assert result.returncode == 1, result.stderr
    assert "holds another history, a fork" in " ".join(result.stderr.split())
    assert stored_checkpoint(restored) == before
