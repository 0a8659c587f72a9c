"""Benchmark how the service scales with the log (issue 12, "What users must see"): the same
figures for logs of several sizes, measured from outside, through real ``amnesty serve``
processes and HTTP only, and printed as Markdown tables (one per engine) with the ratio
largest / smallest size and the issue's targets beside them.

    .venv/bin/python scripts/bench_scale.py                              # 20,000 and 1,000,000
    .venv/bin/python scripts/bench_scale.py --sizes 20000 --engines sqlite   # a quick look
    .venv/bin/python scripts/bench_scale.py --log-db 1000000=/work/scale/m1.db \\
        --keys 1000000=/work/scale/keys                                  # an existing log

Logs. A log of each size is an ``amnesty demo`` log extended with ``amnesty demo --scale SIZE``
(every statement signed and admitted for real). ``--log-db SIZE=PATH`` names an existing SQLite
log for a size (its key folder with ``--keys SIZE=DIR``, by default the folder of the key file
the log records); otherwise the log is built once under ``--cache`` (about 20 s for 20,000
entries, 4 minutes for 200,000 and 15 to 50 minutes for 1,000,000 on a shared 2-core machine)
and reused by later runs. A given log is never written: each run serves copies of the database
file and of the log key (serving migrates the schema, and a writer remembers what it published
beside its key), made in a work folder that is deleted at the end (``--keep`` keeps it, and the
PostgreSQL databases).

First start. Each copy is first served by a writer until its summary answers (reported as
"first start on the copied file": schema migrations and whatever a writer writes into the
database on its first start included), then stopped: every measured run is a restart, as an
operator's would be. ``--no-prime`` skips this (the sqlite run is then the first start).

Engines. ``sqlite``: a writer (``amnesty serve --db sqlite:///COPY --key KEYS/log.key``) on the
copy. ``postgres``: a read-only process (``amnesty serve --db postgresql://... --read-only``) on
a fresh database ``bench_scale_SIZE`` on ``--pg`` (trust authentication). The project has no
command that copies a log between engines (``amnesty recover --from`` fills a log made with
``amnesty init``, verifying every statement again and writing the whole copy in one
transaction: a recovery tool), so the script runs the project's migrations there, copies every
table of the served SQLite copy into it with ``COPY`` (reflected: whatever tables the schema has
that day, derived state included, not a fixed list), runs the migrations again and analyses the
database.

Every server runs with ``AMNESTY_REQUEST_TIMEOUT_S`` = ``--request-timeout`` (120 s by default,
the client's bound too), so that a slow request is measured rather than cut off at the default
15 s. Memory is the serving process's ``VmRSS`` / ``VmHWM`` from ``/proc/PID/status`` (the
process of the server's process group that holds the listening socket), in MiB.

What one server run measures, in this order:

1. launch → first ``/checkpoint`` 200, and launch → first ``/v1/precedent/summary`` 200, by two
   pollers (every 50 ms) started with the process;
2. the server is left to settle (its CPU time stops growing, at most ``--settle`` seconds), then
   50 sequential ``/v1/precedent/summary`` requests: their p50;
3. serving RSS after that warm-up, and ``/checkpoint`` p99 of 200 sequential requests (idle);
4. the audit load: the peak is reset (``/proc/PID/clear_refs``), then 4 client threads ask for
   ``/v1/precedent?audit_time_ms=T`` with 100 distinct T in total (a new T per request: no
   cache can answer; each answer read whole) until all 100 are answered or ``--load-seconds``
   have passed (requests in flight then finish), while one more client asks for
   ``/checkpoint`` every 20 ms: its p99, the audit answers that were not 200 (a 503 is not
   asked again), the peak RSS (``VmHWM``) under that load, and ``VmRSS`` 5 s after the last
   answer;
5. in a new server process (the audit load leaves abandoned work running; its launch → summary
   is noted), once it settles, ``/v1/precedent/summary?at=SIZE`` (its slowest) and then
   the slowest first page (1,000 items) of ``/v1/precedent/applications?at=SIZE`` and
   ``/v1/precedent/subjects?at=SIZE``, then ``/v1/precedent?at=SIZE`` for 5 sizes spread over
   the log
   (10 %, 30 %, ... 90 %, off any round number), one at a time: the slowest time to a 200 (a
   503 is asked again after its Retry-After, as a client would), read whole, the slowest time
   to the body's first byte (what the server computes before it starts sending) and the
   largest body. A size not answered within the timeout is reported as "> 120 s" and the
   remaining sizes are not asked. Then the same 5 requests again, each read whole: identical
   repeatable requests, which the report cache answers (``api/report_cache.py``). Last, 4
   identical requests at once for a size not asked yet (95 % of the log), each read whole: one
   computes the report, the others wait for it (the cache's claims) and read it.

The machines are shared and noisy: read the ratios between columns of one run. ``--json PATH``
also writes every raw figure. Ctrl-C (or SIGTERM) stops the servers (their process groups),
and drops the databases and the copies unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

import httpx

REPO = Path(__file__).resolve().parents[1]
AMNESTY = REPO / ".venv" / "bin" / "amnesty"
DEFAULT_SIZES = (20_000, 1_000_000)
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432"
AUDIT_CLIENTS = 4
AUDIT_REQUESTS = 100
SUMMARY_REQUESTS = 50
IDLE_CHECKPOINT_REQUESTS = 200
AT_SIZES = 5
IDENTICAL_AT_ONCE = 4
POLL_S = 0.05
CHECKPOINT_PROBE_S = 0.02


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- figures ------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured value; ``at_least`` when it is only a lower bound (a timeout)."""

    value: float | None = None
    at_least: bool = False
    note: str = ""


@dataclass
class RunResult:
    """Every figure of one server run (one engine, one log)."""

    engine: str
    nominal: int
    size: int = 0
    first_checkpoint_s: Figure = field(default_factory=Figure)
    first_summary_s: Figure = field(default_factory=Figure)
    settle_s: float = 0.0
    settle_before_at_s: float = 0.0
    restart_summary_s: Figure = field(default_factory=Figure)
    summary_p50_ms: Figure = field(default_factory=Figure)
    warm_rss_mb: Figure = field(default_factory=Figure)
    idle_checkpoint_p99_ms: Figure = field(default_factory=Figure)
    load_checkpoint_p99_ms: Figure = field(default_factory=Figure)
    load_checkpoint_count: int = 0
    load_checkpoint_errors: int = 0
    audit_answered: int = 0
    audit_non_200: int = 0
    audit_statuses: dict[str, int] = field(default_factory=dict)
    audit_seconds: float = 0.0
    peak_rss_mb: Figure = field(default_factory=Figure)
    after_rss_mb: Figure = field(default_factory=Figure)
    slowest_at_s: Figure = field(default_factory=Figure)
    slowest_at_first_byte_s: Figure = field(default_factory=Figure)
    slowest_at_again_s: Figure = field(default_factory=Figure)
    identical_at_once_s: Figure = field(default_factory=Figure)
    identical_at_once_statuses: list[str] = field(default_factory=list)
    slowest_page_at_ms: Figure = field(default_factory=Figure)
    slowest_summary_at_ms: Figure = field(default_factory=Figure)
    at_bytes: int = 0
    at_times_s: dict[str, float | None] = field(default_factory=dict)
    first_start_summary_s: Figure = field(default_factory=Figure)
    copy_s: float = 0.0
    error: str = ""


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


# -- processes ----------------------------------------------------------------------------------


class Server:
    """An ``amnesty serve`` process in its own process group, stopped with the group."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.launched = time.monotonic()
        self.proc = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._serving_pid: int | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def serving_pid(self) -> int:
        """The process of this group holding the listening socket (the innermost one if a
        supervisor and its workers all hold it); the launched process if none is found."""
        if self._serving_pid is not None:
            return self._serving_pid
        inodes = listening_inodes(self.port)
        group = [pid for pid in all_pids() if process_group(pid) == self.proc.pid]
        holders = [pid for pid in group if inodes & socket_inodes(pid)]
        parents = {parent_pid(pid) for pid in holders}
        leaves = [pid for pid in holders if pid not in parents]
        if leaves:
            self._serving_pid = max(leaves, key=lambda pid: proc_status_kb(pid, "VmRSS") or 0)
        return self._serving_pid or self.proc.pid

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL after 30 s."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        # Workers of a supervisor that died first: the group may outlive its leader.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (field 3 onwards); [] if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()


def process_group(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = _stat_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` line of /proc/PID/status (VmRSS, VmHWM), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb(pid: int, key: str = "VmRSS") -> float | None:
    kb = proc_status_kb(pid, key)
    return None if kb is None else kb / 1024


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux ≥ 4.0: ``5`` > clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP ``port`` (IPv4 and IPv6)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(parts[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    found.add(target[8:-1])
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def settle(pid: int, most_s: float, busy: float = 0.05) -> float:
    """Wait until ``pid`` uses less than ``busy`` of a core over a second (its background work
    done), at most ``most_s``; returns the time waited."""
    start = time.monotonic()
    before = cpu_seconds(pid)
    while time.monotonic() - start < most_s:
        time.sleep(1.0)
        now = cpu_seconds(pid)
        if now - before < busy:
            break
        before = now
    return time.monotonic() - start


# -- logs ---------------------------------------------------------------------------------------


def log_size(db: Path) -> int:
    """The size of the log's latest checkpoint, read without writing (``mode=ro``)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("select size from log_head").fetchone()
    finally:
        conn.close()
    return int(row[0])


def recorded_key_folder(db: Path) -> Path:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("select key_path from log_identity").fetchone()
    finally:
        conn.close()
    if row is None or not row[0]:
        raise SystemExit(f"{db} records no key file: give its key folder with --keys SIZE=DIR")
    return Path(row[0]).parent


def build_demo(cache: Path, size: int) -> tuple[Path, Path]:
    """The cached demo log of ``size`` further statements (built when missing)."""
    folder = cache / f"demo-{size}"
    db, keys, done = folder / "log.db", folder / "keys", folder / "COMPLETE"
    if done.exists():
        return db, keys
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    minutes = max(1, round(size * 3 / 1000 / 60))
    log(
        f"building a demo log with {size:,} statements in {folder} (about {minutes} min on a "
        "2-core machine; cached for later runs)"
    )
    subprocess.run(
        [
            str(AMNESTY),
            "demo",
            "--db",
            f"sqlite:///{db}",
            "--keys",
            str(keys),
            "--scale",
            str(size),
        ],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    done.write_text(f"{log_size(db)}\n")
    return db, keys


def copy_log(db: Path, keys: Path, into: Path) -> tuple[Path, Path]:
    """Copies of a SQLite log (with its WAL) and of its key file (and the signer's memory of
    what it published, if any) in ``into``; the originals are only read."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / "log.db"
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    wal = Path(str(db) + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        log(f"note: {wal} is not empty: copying it too (the log must not be written meanwhile)")
        shutil.copyfile(wal, str(target) + "-wal")
    shutil.copyfile(db, target)
    key_copy = into / "keys"
    key_copy.mkdir(exist_ok=True)
    for name in ("log.key", "log.key.published"):
        if (keys / name).exists():
            shutil.copyfile(keys / name, key_copy / name)
            (key_copy / name).chmod(0o600)
    if not (key_copy / "log.key").exists():
        raise SystemExit(f"no log.key in {keys}")
    return target, key_copy / "log.key"


# -- PostgreSQL ---------------------------------------------------------------------------------


def pg_url(base: str, database: str) -> str:
    return f"{base.rstrip('/')}/{database}"


def pg_admin(base: str, statement: str, name: str) -> None:
    """Run ``statement`` with ``{}`` standing for the database ``name`` on the server."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


def drop_database(base: str, name: str) -> None:
    pg_admin(base, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def copy_to_postgres(source: Path, base: str, name: str) -> float:
    """A fresh database ``name`` holding every table of the SQLite log ``source``, at the
    project's newest schema; returns the seconds it took."""
    import psycopg
    from psycopg import sql
    from sqlalchemy import MetaData, create_engine, select

    from ledger.storage.engine import normalise_database_url
    from ledger.storage.sql import migrate

    started = time.monotonic()
    drop_database(base, name)
    pg_admin(base, "CREATE DATABASE {}", name)
    url = pg_url(base, name)
    target_engine = create_engine(normalise_database_url(url))
    source_engine = create_engine(f"sqlite:///{source}")
    try:
        migrate(source_engine)  # a no-op after a writer served it; an old file otherwise
        migrate(target_engine)
        source_meta, target_meta = MetaData(), MetaData()
        source_meta.reflect(source_engine)
        target_meta.reflect(target_engine)
        with psycopg.connect(url) as conn, source_engine.connect() as reader:
            conn.execute("SET session_replication_role = replica")  # rows arrive whole
            for table in source_meta.sorted_tables:
                if table.name == "alembic_version":
                    continue
                target = target_meta.tables.get(table.name)
                if target is None:
                    log(f"warning: table {table.name} is not in the migrated PostgreSQL schema")
                    continue
                columns = [c for c in table.columns if c.name in target.columns]
                quoted = sql.Identifier(table.name)
                conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(quoted))
                statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    quoted, sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
                )
                rows = 0
                with conn.cursor() as cursor, cursor.copy(statement) as copy:
                    result = reader.execution_options(yield_per=20_000).execute(select(*columns))
                    for row in result:
                        copy.write_row(tuple(row))
                        rows += 1
                log(f"  copied {table.name}: {rows:,} rows")
            # Sequences behind copied serial columns continue after the copied values.
            serials = conn.execute(
                "select table_name, column_name, "
                "pg_get_serial_sequence(quote_ident(table_name), column_name) "
                "from information_schema.columns where table_schema = 'public'"
            ).fetchall()
            for table_name, column, sequence in serials:
                if sequence:
                    conn.execute(
                        sql.SQL(
                            "select setval(%s, coalesce((select max({}) from {}), 0) + 1, false)"
                        ).format(sql.Identifier(column), sql.Identifier(table_name)),
                        (sequence,),
                    )
            conn.commit()
        migrate(target_engine)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    finally:
        target_engine.dispose()
        source_engine.dispose()
    return time.monotonic() - started


# -- measuring one server -----------------------------------------------------------------------


def serve_command(engine: str, db_url: str, key: Path | None, port: int) -> list[str]:
    args = [str(AMNESTY), "serve", "--db", db_url, "--port", str(port), "--log-level", "warning"]
    if engine == "postgres":
        args.append("--read-only")
    elif key is not None:
        args += ["--key", str(key)]
    return args


def launch(
    engine: str, db_url: str, key: Path | None, work: Path, tag: str, timeout_s: float
) -> Server:
    env = dict(os.environ)
    env["AMNESTY_REQUEST_TIMEOUT_S"] = str(timeout_s)
    # Each server starts with an empty report cache of its own, in the work folder: a report
    # kept by an earlier run (or server) would answer what this one should compute.
    reports = work / f"{tag}.reports"
    shutil.rmtree(reports, ignore_errors=True)
    env["AMNESTY_REPORT_CACHE_DIR"] = str(reports)
    port = free_port()
    return Server(serve_command(engine, db_url, key, port), env, work / f"{tag}.log", port)


def wait_ready(server: Server, most_s: float) -> tuple[Figure, Figure]:
    """Seconds from launch to the first 200 of ``/checkpoint`` and of the summary, each polled
    by its own client every 50 ms."""
    firsts: dict[str, float] = {}
    stop = threading.Event()

    def poll(path: str) -> None:
        with httpx.Client(base_url=server.base, timeout=most_s) as client:
            while not stop.is_set():
                try:
                    if client.get(path).status_code == 200:
                        firsts[path] = time.monotonic() - server.launched
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(POLL_S)

    threads = [
        threading.Thread(target=poll, args=(path,), daemon=True)
        for path in ("/checkpoint", "/v1/precedent/summary")
    ]
    for thread in threads:
        thread.start()
    deadline = server.launched + most_s
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        if not server.alive():
            stop.set()
            raise RuntimeError(
                f"the server exited ({server.proc.returncode}):\n{server.log_tail()}"
            )
        time.sleep(0.2)
    stop.set()

    def figure(path: str) -> Figure:
        if path in firsts:
            return Figure(firsts[path])
        return Figure(most_s, at_least=True)

    return figure("/checkpoint"), figure("/v1/precedent/summary")


def timed_gets(client: httpx.Client, paths: list[str]) -> tuple[list[float], int]:
    """Latencies (ms) of sequential GETs, and how many were not 200."""
    times, bad = [], 0
    for path in paths:
        started = time.perf_counter()
        try:
            ok = client.get(path).status_code == 200
        except httpx.HTTPError:
            ok = False
        times.append((time.perf_counter() - started) * 1000)
        bad += not ok
    return times, bad


def audit_load(
    server: Server, pid: int, load_s: float, timeout_s: float, result: RunResult
) -> None:
    """4 clients ask for 100 distinct ``audit_time_ms`` while one more probes ``/checkpoint``;
    fills the load figures of ``result``."""
    # Distinct times, all after the last entry (the log was built before now): one hour apart.
    base = (time.time_ns() // 1_000_000 // 1000 + 60) * 1000
    pending = [base + i * 3_600_000 for i in range(AUDIT_REQUESTS)]
    lock = threading.Lock()
    statuses: dict[str, int] = {}
    done = threading.Event()
    started = time.monotonic()
    deadline = started + load_s
    rss_samples: list[float] = []

    def audit_client() -> None:
        with httpx.Client(base_url=server.base, timeout=timeout_s + 10) as client:
            while time.monotonic() < deadline:
                with lock:
                    if not pending:
                        return
                    audit = pending.pop(0)
                status, _, _ = fetch(client, "/v1/precedent", {"audit_time_ms": audit}, timeout_s)
                client_status = str(status) if isinstance(status, int) else status
                with lock:
                    statuses[client_status] = statuses.get(client_status, 0) + 1

    probe_times: list[float] = []
    probe_errors = 0

    def probe() -> None:
        nonlocal probe_errors
        with httpx.Client(base_url=server.base, timeout=30) as client:
            while not done.is_set():
                times, bad = timed_gets(client, ["/checkpoint"])
                probe_times.extend(times)
                probe_errors += bad
                rss = rss_mb(pid)
                if rss is not None:
                    rss_samples.append(rss)
                time.sleep(CHECKPOINT_PROBE_S)

    reset = reset_peak(pid)
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    clients = [threading.Thread(target=audit_client, daemon=True) for _ in range(AUDIT_CLIENTS)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    done.set()
    prober.join()
    result.audit_seconds = time.monotonic() - started
    result.audit_statuses = statuses
    result.audit_answered = sum(statuses.values())
    result.audit_non_200 = result.audit_answered - statuses.get("200", 0)
    result.load_checkpoint_count = len(probe_times)
    result.load_checkpoint_errors = probe_errors
    if probe_times:
        result.load_checkpoint_p99_ms = Figure(percentile(probe_times, 0.99))
    hwm = rss_mb(pid, "VmHWM")
    peak = max([*rss_samples, hwm or 0.0]) if reset else max(rss_samples, default=0.0)
    result.peak_rss_mb = Figure(peak, note="" if reset else "sampled every 20 ms")
    time.sleep(5)
    result.after_rss_mb = Figure(rss_mb(pid))


def at_sizes(size: int) -> list[int]:
    """5 sizes spread over the log (10 %, 30 %, ... 90 %), off round numbers."""
    return [size * (2 * k + 1) // (2 * AT_SIZES) + 7 * (k + 1) for k in range(AT_SIZES)]


def fetch(
    client: httpx.Client,
    path: str,
    params: dict[str, int],
    timeout_s: float,
    body: list[float] | None = None,
) -> tuple[int | str, float, float | None]:
    """GET ``path``, reading the whole answer (a report at 1M entries is ~180 MB: streamed
    and dropped) within ``timeout_s`` in all: the status (or "timeout", or the error's name),
    the seconds it took and the answer's Retry-After (s). A server that gave up at its own
    request timeout (503 without an answer begun) counts as a timeout. With ``body``, appends
    the seconds until the first byte of the answer's body and the body's length in bytes."""
    started = time.monotonic()
    retry_after: float | None = None
    first: float | None = None
    length = 0
    try:
        with client.stream("GET", path, params=params) as response:
            for chunk in response.iter_raw(1 << 20):
                if first is None and chunk:
                    first = time.monotonic() - started
                length += len(chunk)
                if time.monotonic() - started > timeout_s:
                    return "timeout", time.monotonic() - started, None
            status: int | str = response.status_code
            with contextlib.suppress(ValueError):
                retry_after = float(response.headers.get("retry-after", ""))
    except httpx.TimeoutException:
        return "timeout", time.monotonic() - started, None
    except httpx.HTTPError as exc:
        return type(exc).__name__, time.monotonic() - started, None
    elapsed = time.monotonic() - started
    if status == 503 and elapsed >= 0.95 * timeout_s:
        status = "timeout"
    if body is not None:
        body += [elapsed if first is None else first, float(length)]
    return status, elapsed, retry_after


def slowest_of(
    client: httpx.Client,
    asks: list[tuple[str, dict[str, int]]],
    timeout_s: float,
    unit: float = 1.0,
) -> Figure:
    """The slowest of the GETs ``asks`` (path, parameters), one at a time, each read whole, in
    seconds times ``unit``; the first answer that is not a 200 stops the rest and is noted."""
    times: list[float] = []
    for path, params in asks:
        status, elapsed, _ = fetch(client, path, params, timeout_s)
        if status != 200:
            return Figure(None, note=f"HTTP {status} at {params.get('at')}")
        times.append(elapsed * unit)
    return Figure(max(times))


def slowest_at(server: Server, size: int, timeout_s: float, result: RunResult) -> None:
    """The slowest of ``/v1/precedent?at=SIZE`` for 5 sizes: the time until a 200, asking
    again after a 503 when its Retry-After says (as a client would), within ``timeout_s``;
    first, the slowest ``/v1/precedent/summary?at=SIZE`` of the same sizes (the precedent in
    brief as it stood then)."""
    slowest, refused, first_byte = 0.0, 0, 0.0
    with httpx.Client(base_url=server.base, timeout=timeout_s + 10) as client:
        result.slowest_summary_at_ms = slowest_of(
            client,
            [("/v1/precedent/summary", {"at": at}) for at in at_sizes(size)],
            timeout_s,
            1000,
        )
        # A page of each of the report's lists at each size (1,000 items, the most a page
        # holds): the report as it stood then, read in bounded steps.
        pages = ("/v1/precedent/applications", "/v1/precedent/subjects")
        result.slowest_page_at_ms = slowest_of(
            client,
            [(path, {"at": at, "limit": 1000}) for at in at_sizes(size) for path in pages],
            timeout_s,
            1000,
        )
        for asked, at in enumerate(at_sizes(size), start=1):
            started = time.monotonic()
            while True:
                asked_after = time.monotonic() - started
                left = timeout_s - asked_after
                body: list[float] = []
                status, _, retry_after = fetch(client, "/v1/precedent", {"at": at}, left, body)
                if status == 200:  # the first byte counts from the first asking, 503s included
                    first_byte = max(first_byte, asked_after + body[0])
                    result.at_bytes = max(result.at_bytes, int(body[1]))
                elapsed = time.monotonic() - started
                if status != 503 or elapsed + (retry_after or 1.0) >= timeout_s:
                    break
                refused += 1
                time.sleep(retry_after or 1.0)
            if status in {"timeout", 503}:
                result.at_times_s[str(at)] = None
                note = f"{asked} of {AT_SIZES} asked" + (f", {refused} 503" if refused else "")
                result.slowest_at_s = Figure(timeout_s, at_least=True, note=note)
                return
            result.at_times_s[str(at)] = elapsed
            if status != 200:
                result.slowest_at_s = Figure(elapsed, note=f"HTTP {status} at {at}")
                return
            slowest = max(slowest, elapsed)
        # The same 5 requests again: identical repeatable requests, read from the report
        # cache (api/report_cache.py) rather than computed.
        result.slowest_at_again_s = slowest_of(
            client, [("/v1/precedent", {"at": at}) for at in at_sizes(size)], timeout_s
        )
        identical_at_once(client, size * 19 // 20 + 11, timeout_s, result)
    result.slowest_at_s = Figure(slowest, note=f"after {refused} answers 503" if refused else "")
    result.slowest_at_first_byte_s = Figure(first_byte)


def identical_at_once(client: httpx.Client, at: int, timeout_s: float, result: RunResult) -> None:
    """:data:`IDENTICAL_AT_ONCE` identical ``/v1/precedent?at=SIZE`` at once, for a size
    not asked before, each read whole: the slowest, and every status."""
    outcomes: list[tuple[int | str, float, float | None]] = []

    def ask() -> None:
        outcomes.append(fetch(client, "/v1/precedent", {"at": at}, timeout_s))

    threads = [threading.Thread(target=ask) for _ in range(IDENTICAL_AT_ONCE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.identical_at_once_statuses = sorted(str(status) for status, _, _ in outcomes)
    refused = [status for status in result.identical_at_once_statuses if status != "200"]
    note = f"{len(refused)} not 200: {', '.join(refused)}" if refused else ""
    result.identical_at_once_s = Figure(
        max(elapsed for _, elapsed, _ in outcomes),
        at_least=any(status == "timeout" for status, _, _ in outcomes),
        note=note,
    )


def checkpoint_size(base: str) -> int:
    text = httpx.get(base + "/checkpoint", timeout=30).text
    return int(text.split("\n")[1])


def measure(server: Server, args: argparse.Namespace, result: RunResult) -> None:
    """All figures of one running server (see the module's docstring for the order)."""
    first_checkpoint, first_summary = wait_ready(server, args.start_timeout)
    result.first_checkpoint_s, result.first_summary_s = first_checkpoint, first_summary
    log(
        f"  {result.engine} {result.nominal:,}: /checkpoint after {first_checkpoint.value:.1f} s, "
        f"summary after {first_summary.value:.1f} s"
    )
    if first_summary.at_least:
        raise RuntimeError("the summary never answered 200 within --start-timeout")
    pid = server.serving_pid()
    result.size = checkpoint_size(server.base)
    result.settle_s = settle(pid, args.settle)
    with httpx.Client(base_url=server.base, timeout=args.request_timeout) as client:
        times, bad = timed_gets(client, ["/v1/precedent/summary"] * SUMMARY_REQUESTS)
        result.summary_p50_ms = Figure(
            statistics.median(times), note=f"{bad} not 200" if bad else ""
        )
        result.warm_rss_mb = Figure(rss_mb(pid))
        times, bad = timed_gets(client, ["/checkpoint"] * IDLE_CHECKPOINT_REQUESTS)
        result.idle_checkpoint_p99_ms = Figure(
            percentile(times, 0.99), note=f"{bad} not 200" if bad else ""
        )
    log(
        f"  summary p50 {result.summary_p50_ms.value:.1f} ms, RSS {result.warm_rss_mb.value or 0:.0f} MB; "
        "audit load ..."
    )
    audit_load(server, pid, args.load_seconds, args.request_timeout, result)
    log(
        f"  /checkpoint p99 {result.load_checkpoint_p99_ms.value or 0:.0f} ms under load; "
        f"{result.audit_answered} audit answers {result.audit_statuses}"
    )


def run_server(
    engine: str, db_url: str, key: Path | None, work: Path, nominal: int, args: argparse.Namespace
) -> RunResult:
    result = RunResult(engine=engine, nominal=nominal)
    server = launch(engine, db_url, key, work, f"{engine}-{nominal}", args.request_timeout)
    log(f"{engine} {nominal:,}: launched pid {server.proc.pid} on port {server.port}")
    try:
        measure(server, args, result)
        server.stop()
        # A fresh process for at=SIZE: the audit load leaves work running (an answer given up
        # on is still computed), and at=SIZE should measure itself, not that backlog.
        server = launch(engine, db_url, key, work, f"{engine}-{nominal}-at", args.request_timeout)
        _, result.restart_summary_s = wait_ready(server, args.start_timeout)
        result.settle_before_at_s = settle(server.serving_pid(), args.settle)
        log(f"  restarted (summary after {result.restart_summary_s.value:.1f} s); at=SIZE ...")
        slowest_at(server, result.size, args.request_timeout, result)
    except (RuntimeError, httpx.HTTPError, OSError, ValueError) as exc:
        result.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log(f"  {engine} {nominal:,} failed: {exc}")
    finally:
        server.stop()
    return result


def prime_with_writer(
    db: Path, key: Path, work: Path, nominal: int, args: argparse.Namespace
) -> Figure:
    """Serve the fresh SQLite copy with a writer until its summary answers, so that what the
    measured runs see is a restart: the schema migrated, and whatever a writer keeps in the
    database written. Returns launch → first summary of this first start."""
    server = launch(
        "sqlite", f"sqlite:///{db}", key, work, f"prime-{nominal}", args.request_timeout
    )
    log(f"first start on the {nominal:,} copy (a writer; migrations, not measured) ...")
    try:
        _, first_summary = wait_ready(server, args.start_timeout)
        log(f"  summary after {first_summary.value:.1f} s")
        settle(server.serving_pid(), args.settle)
    finally:
        server.stop()
    return first_summary


# -- the table ----------------------------------------------------------------------------------


def fmt(figure: Figure, digits: int = 0) -> str:
    if figure.value is None:
        return "—"
    text = f"{figure.value:,.{digits}f}"
    if figure.at_least:
        text = "> " + text
    return f"{text} ({figure.note})" if figure.note else text


def ratio(small: Figure, big: Figure) -> str:
    if small.value is None or big.value is None or small.value <= 0:
        return "—"
    value = big.value / small.value
    if big.at_least and not small.at_least:
        return f"> {value:.1f}x"
    if small.at_least and not big.at_least:
        return f"< {value:.1f}x"
    if small.at_least and big.at_least:
        return "—"
    return f"{value:.2f}x"


Judge = Callable[[RunResult, RunResult], bool | str | None]
"""Whether the largest log's run (first argument) meets a target; the smallest's is the second."""


@dataclass
class Row:
    label: str
    target: str
    pick: Callable[[RunResult], Figure]
    digits: int = 0
    meets: Judge | None = None
    with_ratio: bool = True


def rows() -> list[Row]:
    def below(pick: Callable[[RunResult], Figure], limit: float) -> Judge:
        def judge(big: RunResult, _small: RunResult) -> bool | None:
            figure = pick(big)
            if figure.value is None:
                return None
            return not figure.at_least and figure.value < limit

        return judge

    def audit(r: RunResult) -> Figure:
        return Figure(
            float(r.audit_answered - r.audit_non_200),
            note=f"of {r.audit_answered} asked; {r.audit_seconds:.0f} s",
        )

    def load_probe(r: RunResult) -> Figure:
        figure = r.load_checkpoint_p99_ms
        note = f"{r.load_checkpoint_errors} of {r.load_checkpoint_count} not 200"
        return Figure(figure.value, figure.at_least, note if r.load_checkpoint_errors else "")

    def flat_memory(big: RunResult, small: RunResult) -> bool | None:
        rss, base = big.warm_rss_mb.value, small.warm_rss_mb.value
        if rss is None or base is None:
            return None
        return rss < 400 and rss <= 1.2 * base

    def unloaded(big: RunResult, small: RunResult) -> bool | str | None:
        verdict = below(load_probe, 100)(big, small)
        if verdict and big.audit_non_200:
            return f"only while {big.audit_non_200} of {big.audit_answered} audits were refused"
        return verdict

    def all_answered(big: RunResult, _small: RunResult) -> bool | None:
        return big.audit_answered == AUDIT_REQUESTS and big.audit_non_200 == 0

    def comes_back(big: RunResult, _small: RunResult) -> bool | None:
        after, warm = big.after_rss_mb.value, big.warm_rss_mb.value
        if after is None or warm is None:
            return None
        return after <= 1.2 * warm

    def summary_start(r: RunResult) -> Figure:
        return r.first_summary_s

    def at_size(r: RunResult) -> Figure:
        return r.slowest_at_s

    def summary(r: RunResult) -> Figure:
        return r.summary_p50_ms

    def first_byte(r: RunResult) -> Figure:
        return r.slowest_at_first_byte_s

    def at_again(r: RunResult) -> Figure:
        return r.slowest_at_again_s

    def page_at(r: RunResult) -> Figure:
        return r.slowest_page_at_ms

    def all_identical_answered(big: RunResult, _small: RunResult) -> bool | None:
        if big.identical_at_once_s.value is None:
            return None
        return big.identical_at_once_statuses == ["200"] * IDENTICAL_AT_ONCE

    return [
        Row(
            "first start on the copied file (migrations): launch → summary 200 (s)",
            "—",
            lambda r: r.first_start_summary_s,
            1,
        ),
        Row("launch → first `/checkpoint` 200 (s)", "—", lambda r: r.first_checkpoint_s, 1),
        Row(
            "launch → first `/v1/precedent/summary` 200 (s)",
            "< 5 s",
            summary_start,
            1,
            below(summary_start, 5),
        ),
        Row(
            "serving RSS after warm-up (MB)",
            "< 400 MB, within 20 % of the smallest log's",
            lambda r: r.warm_rss_mb,
            0,
            flat_memory,
        ),
        Row("`/v1/precedent/summary` p50 (ms)", "< 20 ms", summary, 1, below(summary, 20)),
        Row(
            f"slowest of {AT_SIZES} `/v1/precedent?at=SIZE` (s)",
            "< 2 s",
            at_size,
            1,
            below(at_size, 2),
        ),
        Row(
            f"slowest of {AT_SIZES} `/v1/precedent?at=SIZE`: time to the body's first byte (s)",
            "< 2 s (what precedes the first byte)",
            first_byte,
            2,
            below(first_byte, 2),
        ),
        Row(
            f"slowest of the same {AT_SIZES} `/v1/precedent?at=SIZE` asked again, read whole "
            "(identical requests: the report cache) (s)",
            "< 2 s (identical requests are cached)",
            at_again,
            2,
            below(at_again, 2),
        ),
        Row(
            f"slowest of {IDENTICAL_AT_ONCE} identical `/v1/precedent?at=SIZE` asked at once "
            "(a size not asked before), read whole (s)",
            "all 200, computed once (identical requests are cached)",
            lambda r: r.identical_at_once_s,
            1,
            all_identical_answered,
        ),
        Row(
            f"slowest of {AT_SIZES} `/v1/precedent/summary?at=SIZE` (ms)",
            "—",
            lambda r: r.slowest_summary_at_ms,
            1,
        ),
        Row(
            f"slowest page of 1,000 items of `/v1/precedent/applications` and `/subjects` "
            f"`?at=SIZE`, {AT_SIZES} sizes (ms)",
            "< 2 s (the report at any size, in pages)",
            page_at,
            1,
            below(page_at, 2000),
        ),
        Row(
            "largest `/v1/precedent?at=SIZE` body (MB)",
            "—",
            lambda r: Figure(r.at_bytes / 1e6 if r.at_bytes else None),
            1,
        ),
        Row("`/checkpoint` p99, idle (ms)", "—", lambda r: r.idle_checkpoint_p99_ms, 1),
        Row(
            f"`/checkpoint` p99 while {AUDIT_CLIENTS} clients ask {AUDIT_REQUESTS} "
            "distinct `audit_time_ms` (ms)",
            "< 100 ms",
            load_probe,
            1,
            unloaded,
        ),
        Row(
            f"audit answers 200 ({AUDIT_REQUESTS} to ask in the load time)",
            "all",
            audit,
            0,
            all_answered,
            with_ratio=False,
        ),
        Row("peak RSS under that load (MB)", "—", lambda r: r.peak_rss_mb, 0),
        Row(
            "RSS 5 s after the load (MB)",
            "within 20 % of the warm-up RSS",
            lambda r: r.after_rss_mb,
            0,
            comes_back,
        ),
    ]


def table(engine: str, results: list[RunResult], settle_limit: float) -> str:
    results = sorted(results, key=lambda r: r.nominal)
    title = {
        "sqlite": "writer on SQLite (`amnesty serve --db sqlite:///… --key …`)",
        "postgres": "read-only process on PostgreSQL (`amnesty serve --db postgresql://… --read-only`)",
    }[engine]
    heads = [f"{r.nominal:,}" for r in results]
    small, big = results[0], results[-1]
    with_ratio = len(results) > 1
    header = ["", "target", *heads]
    if with_ratio:
        header.append(f"{big.nominal:,} / {small.nominal:,}")
    header.append(f"met at {big.nominal:,}")
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" + "---|" + "---:|" * (len(header) - 3) + "---|")
    for row in rows():
        if all(row.pick(r).value is None for r in results):
            continue
        cells = [row.label, row.target, *(fmt(row.pick(r), row.digits) for r in results)]
        if with_ratio:
            cells.append(ratio(row.pick(small), row.pick(big)) if row.with_ratio else "")
        verdict = None if row.meets is None or big.error else row.meets(big, small)
        if isinstance(verdict, str):
            cells.append(f"**{verdict}**")
        else:
            cells.append("—" if verdict is None else "yes" if verdict else "**no**")
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"{r.nominal:,}: log size {r.size:,}"
        + (f", settled {r.settle_s:.0f} s before the warm-up" if r.settle_s >= 2 else "")
        + (f", copied into PostgreSQL in {r.copy_s:.0f} s" if r.copy_s else "")
        + (
            f", restarted for at=SIZE (summary after {r.restart_summary_s.value:.1f} s)"
            if r.restart_summary_s.value is not None
            else ""
        )
        + (
            f", still busy {r.settle_before_at_s:.0f} s after that restart (at=SIZE asked anyway)"
            if r.settle_before_at_s >= 0.95 * settle_limit
            else ""
        )
        + (f"; audit answers {r.audit_statuses}" if r.audit_non_200 else "")
        + (f"; FAILED: {r.error}" if r.error else "")
        for r in results
    ]
    lines += ["", "Logs: " + "; ".join(notes) + "."]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------


def size_map(values: list[str], option: str) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for value in values:
        size, sep, path = value.partition("=")
        if not sep or not size.replace("_", "").isdigit():
            raise SystemExit(f"{option} takes SIZE=PATH, e.g. {option} 1000000=/work/scale/m1.db")
        out[int(size)] = Path(path).expanduser().resolve()
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="log sizes, comma-separated (default %(default)s)",
    )
    parser.add_argument(
        "--engines", default="sqlite,postgres", help="sqlite,postgres (default %(default)s)"
    )
    parser.add_argument(
        "--log-db",
        action="append",
        default=[],
        metavar="SIZE=PATH",
        help="an existing SQLite log to measure for SIZE (only read: copies are served)",
    )
    parser.add_argument(
        "--keys",
        action="append",
        default=[],
        metavar="SIZE=DIR",
        help="the key folder (log.key) of --log-db SIZE (default: the folder of the key the log records)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=REPO / "data" / "bench-scale",
        help="folder for built demo logs, reused by later runs (default %(default)s)",
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for copies (default: under --cache)"
    )
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server URL, no database")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=120.0,
        help="client timeout and AMNESTY_REQUEST_TIMEOUT_S of the servers (s, ≤ 300)",
    )
    parser.add_argument(
        "--start-timeout", type=float, default=1200.0, help="longest wait for the summary (s)"
    )
    parser.add_argument(
        "--load-seconds",
        type=float,
        default=120.0,
        help="the audit clients start no request after this (s; in flight ones finish)",
    )
    parser.add_argument(
        "--settle", type=float, default=120.0, help="longest wait for an idle server (s)"
    )
    parser.add_argument(
        "--no-prime",
        dest="prime",
        action="store_false",
        help="measure the first start on each copy (schema migrations included), not a restart",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write raw figures here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder and the PostgreSQL databases"
    )
    return parser.parse_args()


def interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def cleanup(work: Path, databases: list[str], args: argparse.Namespace) -> Iterator[None]:
    try:
        yield
    finally:
        if not args.keep:
            for name in databases:
                try:
                    drop_database(args.pg, name)
                except Exception as exc:  # cleanup reports and carries on
                    log(f"couldn't drop database {name}: {exc}")
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work} and databases {databases}")


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, interrupt)
    sizes = sorted({int(s) for s in args.sizes.replace("_", "").split(",") if s})
    engines = [e for e in args.engines.split(",") if e]
    if not sizes or any(e not in ("sqlite", "postgres") for e in engines) or not engines:
        raise SystemExit("--sizes takes numbers, --engines sqlite and/or postgres")
    given, given_keys = size_map(args.log_db, "--log-db"), size_map(args.keys, "--keys")
    if set(given) - set(sizes):
        raise SystemExit(f"--log-db names sizes not in --sizes: {sorted(set(given) - set(sizes))}")
    cache: Path = args.cache.resolve()
    work: Path = (args.work or cache / f"run-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results: list[RunResult] = []
    databases: list[str] = []
    with cleanup(work, databases, args):
        for nominal in sizes:
            if nominal in given:
                source = given[nominal]
                keys = given_keys.get(nominal) or recorded_key_folder(source)
            else:
                source, keys = build_demo(cache, nominal)
            log(f"log for {nominal:,}: {source} (size {log_size(source):,}), keys {keys}")
            folder = work / f"log-{nominal}"
            db, key = copy_log(source, keys, folder)
            first_start = Figure()
            if args.prime:
                first_start = prime_with_writer(db, key, work, nominal, args)
            if "sqlite" in engines:
                result = run_server("sqlite", f"sqlite:///{db}", key, work, nominal, args)
                result.first_start_summary_s = first_start
                results.append(result)
            if "postgres" in engines:
                name = f"bench_scale_{nominal}"
                databases.append(name)
                log(f"copying the {nominal:,} log into PostgreSQL database {name} ...")
                try:
                    seconds = copy_to_postgres(db, args.pg, name)
                except Exception as exc:
                    log(f"  couldn't copy: {exc}")
                    results.append(
                        RunResult("postgres", nominal, error=f"couldn't copy the log: {exc}")
                    )
                else:
                    log(f"  copied in {seconds:.0f} s")
                    result = run_server(
                        "postgres", pg_url(args.pg, name), None, work, nominal, args
                    )
                    result.copy_s = seconds
                    results.append(result)
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    print(
        f"\nRun of {started} (commit {commit or '?'}"
        + (", with uncommitted changes in the working tree" if dirty else "")
        + f"; request timeout {args.request_timeout:.0f} s):\n"
    )
    for engine in engines:
        mine = [r for r in results if r.engine == engine]
        if mine:
            print(table(engine, mine, args.settle))
            print()
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"started": started, "commit": commit, "results": [asdict(r) for r in results]},
                indent=2,
            )
        )
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted (servers stopped, copies and databases removed unless --keep)")
        sys.exit(130)
