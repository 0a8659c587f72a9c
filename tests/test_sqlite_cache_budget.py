"""The SQLite page caches of one process stay within one budget, however many pooled
connections have read a large log (``ledger.storage.engine.set_sqlite_cache_budget``).

Each connection's own cache may hold 64 MiB (``cache_size``); a serving process has a pool of up
to 24. Without a process-wide bound, every connection that once read a large log — a report's,
the integrity sweep's — keeps its 64 MiB, and the process's memory grows with the log. Measured
in a fresh interpreter each time (``VmRSS``), on a database larger than one connection's cache.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from api.settings import Settings
from ledger.storage.engine import (
    SQLITE_CACHE_BUDGET_MIB,
    make_engine,
    set_sqlite_cache_budget,
    sqlite_cache_budget_mib,
)

ROOT = Path(__file__).resolve().parents[1]

READER = """
import json, sys
from sqlalchemy import text
from ledger.storage import engine as storage

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

url, budget = sys.argv[1], int(sys.argv[2])
engine = storage.make_engine(url)
if budget:
    storage.set_sqlite_cache_budget(budget)
else:  # no budget at all: what the process did before it had one
    import sqlite3
    sqlite3.connect(":memory:").execute("PRAGMA soft_heap_limit=0")
connections = [engine.connect() for _ in range(4)]  # four at once: four distinct connections
before = rss_mib()
for conn in connections:
    rows = conn.execute(text("SELECT count(*), sum(length(data)) FROM blobs")).one()
    assert rows[0] > 0
    for (data,) in conn.execute(text("SELECT data FROM blobs ORDER BY id")):
        pass
print(json.dumps({"grown": rss_mib() - before, "budget": storage.sqlite_cache_budget_mib()}))
"""


@pytest.fixture(scope="module")
def large_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file of 60 MB, more than one connection's 64 MiB cache holds with overhead."""
    path = tmp_path_factory.mktemp("cache") / "large.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
        conn.executemany(
            "INSERT INTO blobs (data) VALUES (?)", ((os.urandom(3000),) for _ in range(20_000))
        )
    return f"sqlite:///{path}"


def _grown(url: str, budget: int) -> tuple[float, int | None]:
    done = subprocess.run(
        [sys.executable, "-c", READER, url, str(budget)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    answer = json.loads(done.stdout)
    return float(answer["grown"]), answer["budget"]


def test_four_connections_that_read_a_large_log_stay_within_the_budget(large_db: str) -> None:
    grown, budget = _grown(large_db, 16)
    assert budget == 16
    assert grown < 16 + 24, f"the page caches grew by {grown:.0f} MiB past a 16 MiB budget"
    # Without a budget the same reads keep about 60 MB per connection: the test can tell.
    unbounded, none = _grown(large_db, 0)
    assert none is None
    assert unbounded > 150, f"without a budget the caches grew by only {unbounded:.0f} MiB"


def test_the_default_budget_and_the_setting(tmp_path: Path) -> None:
    """An engine on SQLite sets the default budget unless the process chose one; the service
    sets ``AMNESTY_SQLITE_CACHE_MIB``; below 1 MiB is refused."""
    before = sqlite_cache_budget_mib()
    try:
        make_engine(f"sqlite:///{tmp_path / 'a.db'}").dispose()
        assert sqlite_cache_budget_mib() == (before or SQLITE_CACHE_BUDGET_MIB)
        set_sqlite_cache_budget(8)
        make_engine(f"sqlite:///{tmp_path / 'b.db'}").dispose()
        assert sqlite_cache_budget_mib() == 8  # a chosen budget is kept
        with pytest.raises(ValueError, match="at least 1"):
            set_sqlite_cache_budget(0)
        assert Settings(db="x.db").sqlite_cache_mib == SQLITE_CACHE_BUDGET_MIB
        with pytest.raises(ValueError):
            Settings(db="x.db", sqlite_cache_mib=0)
    finally:
        set_sqlite_cache_budget(before or SQLITE_CACHE_BUDGET_MIB)
