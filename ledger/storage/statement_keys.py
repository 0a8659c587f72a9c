"""The statement-id index: a leveled ``statement_keys`` table instead of a UNIQUE index.

A statement is logged once (FORMAT.md F5.5); this module is how the SQL store finds whether
one is, exactly, without turning every append into random B-tree writes (migration ``0006``;
the layout and the invariant are in the comment below). :mod:`ledger.storage.sql` calls it from
its append transaction, under the store's write lock.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    bindparam,
    select,
    text,
    update,
)

from ledger.errors import StorageError

_METADATA = MetaData()
_KEYS = Table(
    "statement_keys",
    _METADATA,
    Column("level", Integer, primary_key=True),
    Column("key", BigInteger, primary_key=True),
    Column("idx", BigInteger, primary_key=True),
)
_ENTRIES = Table(
    "entries",
    _METADATA,
    Column("idx", BigInteger, primary_key=True),
    Column("statement_id", LargeBinary),
)
_HEAD = Table(
    "log_head",
    _METADATA,
    Column("id", Integer, primary_key=True),
    Column("size", BigInteger),
)

# -- the statement-id index -----------------------------------------------------------------
#
# A statement is logged once (FORMAT.md F5.5). A UNIQUE index on ``entries.statement_id`` said
# so in one line, but SHA-256 ids are uniformly random: at a million entries each insert landed
# on its own B-tree page, a batch of 1,024 dirtied ~1,000 index pages, and every one of them
# went through the WAL and back into the file at each commit (a narrower key alone changes
# nothing there: pages, not bytes, are written). ``statement_keys`` is instead a leveled,
# log-structured index. Its primary key is ``(level, key, idx)``, so each level is a contiguous
# run of the B-tree:
#
# - ``key`` is the id's first 8 bytes (:func:`statement_key`); ``idx`` the entry's index.
# - A new entry's row goes to level 0, which holds the log's last few thousand entries: a
#   batch's inserts land on a few dozen pages, hot in the cache.
# - Level ``i >= 1`` has blocks of ``STATEMENT_KEY_BLOCKS[i]`` entries (4,096 * 8**(i-1)).
#   When the log's size passes the end of a block, that block's rows move up to level ``i``
#   over the next half block of appends, in slices of the key space proportional to the
#   entries each batch appends: a batch moves a bounded number of rows per level (about twice
#   its own size), each a sorted range, whatever the size of the log — no batch ever rewrites a
#   level, and no statement of the database waits on one (PostgreSQL's statement timeout
#   stays safe). An entry moves at most once per level, so index pages written per entry stay
#   a small constant times the number of levels (log base 8 of the size), instead of one page
#   per entry. :func:`statement_key_level` is where a row is at a given size.
# - A lookup probes levels 0 to :func:`statement_key_top` of the size (4 levels at a million
#   entries, 6 at a hundred million) by ``(level, key)`` and confirms each candidate against
#   the entry's full ``statement_id``: the 8-byte key only narrows the search, so ids that
#   share it are different statements and are both admitted, and a false positive is
#   impossible.
#
# The invariant the exactness rests on: after every committed transaction each entry has
# exactly one row, with its key, at a level no higher than ``statement_key_top`` of the log's
# size. (Where exactly in those levels — :func:`statement_key_level` — is a matter of speed,
# checked by the tests, not of correctness.) ``create_log`` starts it (no entries, no rows),
# migration 0006 establishes it for an existing log, and ``commit_batch`` keeps it: it inserts
# one row per new entry and moves rows only up to levels whose first block is complete, in the
# batch's own transaction, so a crash at any moment leaves either the old entries with the old
# rows or the new entries with the new rows. The block sizes are part of the stored layout:
# changing them needs a migration.

STATEMENT_KEY_BASE = 4096
"""Entries per block of level 1 (level 0 holds the entries after the last such block)."""
STATEMENT_KEY_FANOUT = 8
"""How many blocks of one level make a block of the next."""
STATEMENT_KEY_TOP = 17
"""The highest level: its blocks are 4,096 * 8**16 = 2**60 entries, more than any log holds."""
STATEMENT_KEY_BLOCKS = (
    0,
    *(
        STATEMENT_KEY_BASE * STATEMENT_KEY_FANOUT ** (level - 1)
        for level in range(1, STATEMENT_KEY_TOP + 1)
    ),
)
"""``STATEMENT_KEY_BLOCKS[i]``: the block size of level ``i >= 1`` (index 0 is unused)."""

_KEY_MIN = -(2**63)
_KEY_ALL = 2**63  # an exclusive bound above every key
_KEY_CHUNK = 500  # statement ids per lookup query (bind parameters stay far below any limit)
_LOOKUP = text("SELECT idx FROM statement_keys WHERE level IN :levels AND key IN :keys").bindparams(
    bindparam("levels", expanding=True), bindparam("keys", expanding=True)
)  # plain text: the Core select's per-execution compilation of its IN lists cost more


def statement_key(statement_id: bytes) -> int:
    """The first 8 bytes of ``statement_id`` as a signed big-endian 64-bit integer (BIGINT)."""
    return int.from_bytes(statement_id[:8], "big", signed=True)


def _moved_below(size: int, block_end: int, block: int) -> int:
    """The rows of the level block ending at ``block_end`` with a key below this bound have
    moved up to the level at ``size``: none before the block is complete, then a slice of the
    key space growing with the entries appended since, all after half a block."""
    done = size - block_end
    if done <= 0:
        return _KEY_MIN
    window = block // 2
    if done >= window:
        return _KEY_ALL
    return _KEY_MIN + (done << 64) // window


def statement_key_level(index: int, key: int, size: int) -> int:
    """The level of the row of entry ``index`` (its key ``key``) in a log of ``size`` entries:
    the highest level ``i`` to which its block of ``STATEMENT_KEY_BLOCKS[i]`` entries has
    moved it; 0 if none. A row that has moved to a level has moved to every level below it."""
    level = 0
    for candidate in range(1, STATEMENT_KEY_TOP + 1):
        block = STATEMENT_KEY_BLOCKS[candidate]
        block_end = (index // block + 1) * block
        if key >= _moved_below(size, block_end, block):
            break
        level = candidate
    return level


def statement_key_top(size: int) -> int:
    """The highest level that may hold rows in a log of ``size`` entries: a row reaches level
    ``i`` only once a whole block of ``STATEMENT_KEY_BLOCKS[i]`` entries is logged."""
    top = 0
    while top < STATEMENT_KEY_TOP and STATEMENT_KEY_BLOCKS[top + 1] <= size:
        top += 1
    return top


def promote_statement_keys(conn: Connection, old_size: int, new_size: int) -> None:
    """Move rows up as the log grows from ``old_size`` to ``new_size`` (see the comment above):
    for each level, the key slice of every block whose move is under way, each a range scan
    of ``(level, key)``; blocks that move whole in this batch (a batch larger than half a
    block) are one range of indexes. Highest level first, so a row that goes up several levels
    at once moves once."""
    for level in range(statement_key_top(new_size), 0, -1):
        block = STATEMENT_KEY_BLOCKS[level]
        below = list(range(level))
        # Blocks ending after old_size - block/2 (still moving at old_size) and before new_size.
        first = max(block, ((old_size - block // 2) // block + 1) * block)
        whole: list[tuple[int, int]] = []  # index ranges of blocks moving whole
        for block_end in range(first, new_size, block):
            low = _moved_below(old_size, block_end, block)
            high = _moved_below(new_size, block_end, block)
            if low == _KEY_MIN and high == _KEY_ALL:
                if whole and whole[-1][1] == block_end - block:
                    whole[-1] = (whole[-1][0], block_end)
                else:
                    whole.append((block_end - block, block_end))
                continue
            if low >= high:
                continue
            where = [
                _KEYS.c.level.in_(below),
                _KEYS.c.key >= low,
                _KEYS.c.idx >= block_end - block,
                _KEYS.c.idx < block_end,
            ]
            if high < _KEY_ALL:
                where.append(_KEYS.c.key < high)
            conn.execute(update(_KEYS).where(*where).values(level=level))
        for start, end in whole:
            conn.execute(
                update(_KEYS)
                .where(_KEYS.c.level.in_(below), _KEYS.c.idx >= start, _KEYS.c.idx < end)
                .values(level=level)
            )


def insert_statement_keys(conn: Connection, rows: Sequence[tuple[int, int, int]]) -> None:
    """Insert ``(level, key, idx)`` rows. On SQLite through the driver's own executemany:
    SQLAlchemy's handling of each row's parameters cost more than the insert itself."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "INSERT INTO statement_keys (level, key, idx) VALUES (?, ?, ?)", list(rows)
        )
    else:
        conn.execute(_KEYS.insert(), [{"level": lv, "key": k, "idx": i} for lv, k, i in rows])


def head_size(conn: Connection) -> int:
    row = conn.execute(select(_HEAD.c.size).where(_HEAD.c.id == 1)).first()
    if row is None:
        raise StorageError("couldn't read the log head: no log here (run `amnesty init`)")
    return int(row[0])


def find_statements_at(
    conn: Connection, statement_ids: Sequence[bytes], levels: Sequence[int]
) -> dict[bytes, int]:
    """Which of ``statement_ids`` are logged, probing ``levels`` of the statement-id index and
    confirming every candidate against the entry's full ``statement_id`` (exact: two ids that
    share their 8-byte key are told apart here). Two queries, each a lookup by primary key
    (no join a planner without statistics could turn into a scan); the second only when some
    key matched."""
    wanted = set(statement_ids)
    keys = sorted({statement_key(s) for s in wanted})
    candidates: set[int] = set()
    for start in range(0, len(keys), _KEY_CHUNK):
        candidates.update(
            int(r[0])
            for r in conn.execute(
                _LOOKUP, {"levels": list(levels), "keys": keys[start : start + _KEY_CHUNK]}
            )
        )
    found: dict[bytes, int] = {}
    ordered = sorted(candidates)
    for start in range(0, len(ordered), _KEY_CHUNK):
        rows = conn.execute(
            select(_ENTRIES.c.statement_id, _ENTRIES.c.idx).where(
                _ENTRIES.c.idx.in_(ordered[start : start + _KEY_CHUNK])
            )
        )
        for statement_id, index in rows:
            candidate = bytes(statement_id)
            if candidate in wanted:
                found[candidate] = int(index)
    return found


def check_statement_keys(conn: Connection, size: int, chunk: int = 20_000) -> str | None:
    """The first way the index breaks its invariant for entries ``[0, size)``, in words, or
    ``None``: every entry has exactly one row, whose key is its statement id's
    (:func:`statement_key`) and whose level is at most :func:`statement_key_top` of ``size``,
    and no row names an entry beyond the log. (What ``amnesty fsck`` checks: a missing or wrong
    row could let a statement in twice.)"""
    top = statement_key_top(size)
    beyond = conn.execute(select(_KEYS.c.idx).where(_KEYS.c.idx >= size).limit(1)).first()
    if beyond is not None:
        return f"statement_keys has a row for entry {beyond[0]}, beyond the log's size {size}"
    for start in range(0, size, chunk):
        end = min(size, start + chunk)
        rows: dict[int, list[tuple[int, int]]] = {}
        for level, key, idx in conn.execute(
            select(_KEYS.c.level, _KEYS.c.key, _KEYS.c.idx).where(
                _KEYS.c.idx >= start, _KEYS.c.idx < end
            )
        ):
            rows.setdefault(int(idx), []).append((int(level), int(key)))
        for idx, statement_id in conn.execute(
            select(_ENTRIES.c.idx, _ENTRIES.c.statement_id)
            .where(_ENTRIES.c.idx >= start, _ENTRIES.c.idx < end)
            .order_by(_ENTRIES.c.idx)
        ):
            found = rows.pop(int(idx), [])
            if len(found) != 1:
                return f"statement_keys has {len(found)} rows for entry {idx}, not 1"
            level, key = found[0]
            if key != statement_key(bytes(statement_id)):
                return f"statement_keys row of entry {idx} has another statement's key"
            if not 0 <= level <= top:
                return f"statement_keys row of entry {idx} is at level {level}, above {top}"
        if rows:
            return f"statement_keys has a row for entry {min(rows)}, which has no entry row"
    return None
