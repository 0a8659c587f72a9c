"""A 100,000-entry log, end to end through the CLI and a real server:

- ``amnesty verify`` over HTTP succeeds, and after one byte of a stored entry or of a stored
  node hash is changed in the database it fails naming the entry;
- the precedent audit is reproducible byte for byte: two runs, against the HTTP service and
  against the database, and the service's own ``/v1/precedent`` all agree.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ledger.storage.sql import SqlLogStore
from tests.livelog import amnesty as run_amnesty
from tests.livelog import make_demo_log, running

SIZE = 100_000
AUDIT_TIME_MS = 4_102_444_800_000  # 2100-01-01: every clock in the demo has run out by then


def amnesty(*args: str) -> subprocess.CompletedProcess[str]:
    """``amnesty ARGS`` with a large log's time limit; the caller checks the exit status."""
    return run_amnesty(*args, check=False, timeout=1200)


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    folder = tmp_path_factory.mktemp("big")
    db = make_demo_log(folder)
    store = SqlLogStore(db)
    have = len(store.read_entries(0, 100))
    vkey = store.identity().log_vkey
    store.close()
    result = amnesty(
        "demo", "--db", db, "--keys", str(folder / "keys"), "--scale", str(SIZE - have)
    )
    assert result.returncode == 0, result.stderr
    return folder, db, vkey


@pytest.mark.slow
def test_audit_is_reproducible_over_http_and_from_the_database(
    big_log: tuple[Path, str, str],
) -> None:
    folder, db, vkey = big_log
    time_arg = ("--time-ms", str(AUDIT_TIME_MS))
    from_db = [amnesty("audit", db, "--json", "-q", *time_arg) for _ in range(2)]
    with running(db, folder / "server.log") as server:
        # Let the server finish replaying the log into its read side (it starts serving at
        # once, but the replay holds the interpreter for a while on a busy machine).
        deadline = time.monotonic() + 600
        while httpx.get(server.url + "/v1/precedent/summary", timeout=600).status_code != 200:
            assert time.monotonic() < deadline, "the server's read side never caught up"
            time.sleep(1)
        over_http = amnesty("audit", server.url, "--vkey", vkey, "--json", "-q", *time_arg)
        served = httpx.get(
            server.url + "/v1/precedent", params={"audit_time_ms": AUDIT_TIME_MS}, timeout=600
        )
        verified = amnesty("verify", server.url, "--vkey", vkey, "--json", "-q")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["size"] == SIZE
    # The demo's open application is overdue by 2100: the audit says so and exits 1.
    for run in (*from_db, over_http):
        assert run.returncode == 1, run.stderr
        assert run.stdout.startswith("{"), run.stderr[-3000:]
    # Compared by digest: a failure must not print two 16 MB reports.
    digests = [hashlib.sha256(run.stdout.encode()).hexdigest() for run in (*from_db, over_http)]
    assert digests[0] == digests[1], "two audits of the database differ"
    assert digests[0] == digests[2], "the audit over HTTP differs from the database's"
    report = json.loads(from_db[0].stdout)
    assert report["checkpoint"]["size"] == SIZE
    assert served.status_code == 200, served.text
    served_report = served.json()
    served_report = served_report.get("report", served_report)
    assert hashlib.sha256(json.dumps(served_report, sort_keys=True).encode()).digest() == (
        hashlib.sha256(json.dumps(report, sort_keys=True).encode()).digest()
    ), "/v1/precedent differs from the CLI's report"


@pytest.mark.slow
@pytest.mark.parametrize("target", ["entry", "node hash"])
def test_verify_names_the_entry_after_one_byte_changes(
    big_log: tuple[Path, str, str], tmp_path: Path, target: str
) -> None:
    _folder, db, vkey = big_log
    copy = tmp_path / "ledger.db"
    source = Path(db.removeprefix("sqlite:///"))
    with sqlite3.connect(source) as conn:  # fold the WAL in so one file holds the log
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(source, copy)
    victim = 54_321
    with sqlite3.connect(copy) as conn:
        if target == "entry":
            data = bytearray(
                conn.execute("SELECT data FROM entries WHERE idx=?", (victim,)).fetchone()[0]
            )
            data[len(data) // 2] ^= 0x01
            conn.execute("UPDATE entries SET data=? WHERE idx=?", (bytes(data), victim))
        else:
            tile, offset = divmod(victim, 256)
            data = bytearray(
                conn.execute("SELECT data FROM tiles WHERE level=0 AND idx=?", (tile,)).fetchone()[
                    0
                ]
            )
            data[offset * 32 + 7] ^= 0x80
            conn.execute("UPDATE tiles SET data=? WHERE level=0 AND idx=?", (bytes(data), tile))
    url = f"sqlite:///{copy}"
    if target == "entry":
        # A writing server starts (its protocol state is the derived state: nothing is
        # replayed), and its background sweep of every entry against its tile finds this one:
        # writing stops, and health names the entry.
        with running(url, tmp_path / "writer.log") as writer:
            deadline = time.monotonic() + 300
            while (health := httpx.get(writer.url + "/healthz", timeout=60)).status_code != 503:
                assert time.monotonic() < deadline, "the integrity sweep never found the entry"
                time.sleep(0.5)
            assert f"entry {victim}: it does not hash" in health.text, health.text
    # A read-only server (a replica, a mirror) serves what it holds; the verifier catches it.
    with running(url, tmp_path / "server.log", read_only=True) as server:
        result = amnesty("verify", server.url, "--vkey", vkey, "--json", "-q")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert str(victim) in report["error"]["detail"], report
