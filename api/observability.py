"""What an operator sees: Prometheus metrics, structured access logs, request ids.

- :class:`Metrics` owns one :class:`prometheus_client.CollectorRegistry` per app (several apps in
  one process, as in tests, never collide) and every series the service exports at
  ``/metrics``: requests, errors, submissions, batch sizes, latencies, the tree and the queue.
- :class:`InstrumentedStore` wraps the store the sequencer writes through, so batch sizes and
  commit latencies are measured where batches are committed, without touching the sequencer.
- :class:`ObservabilityMiddleware` is pure ASGI (no per-request task, unlike
  ``BaseHTTPMiddleware``): it times every request, labels it by its route template (never the
  raw path, which would explode label cardinality), counts problem documents, gives every
  response an ``X-Request-ID`` and writes one structured access-log record per request.
- :class:`JsonFormatter` renders log records (with their structured ``extra`` fields) as one
  JSON object per line.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.errors import StorageError
from ledger.storage.base import AppendTransaction, LogStore, StoredEntry
from ledger.tlog.tiles import TileID

access_log = logging.getLogger("api.access")

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Metrics:
    """Every series the service exports, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "amnesty_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "amnesty_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "amnesty_http_errors",
            "Error responses (problem documents), by route template and status.",
            ["route", "status"],
            registry=r,
        )
        self.submissions = Counter(
            "amnesty_submissions",
            "Statement submissions by outcome: accepted, duplicate, refused (4xx), "
            "rate_limited (429), too_large (413), unavailable (503), failed (other 5xx).",
            ["outcome"],
            registry=r,
        )
        self.submission_seconds = Histogram(
            "amnesty_submission_duration_seconds",
            "From receiving a submission to answering it (durable commit included).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_entries = Histogram(
            "amnesty_batch_entries",
            "Entries committed per batch (one signed checkpoint each).",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "amnesty_batch_commit_duration_seconds",
            "Duration of one append transaction, from taking the write lock to the commit.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_failures = Counter(
            "amnesty_batch_failures",
            "Append transactions that rolled back.",
            registry=r,
        )
        self.tree_size = Gauge(
            "amnesty_tree_size",
            "Entries in the latest checkpoint this process has read.",
            registry=r,
        )
        self.pending = Gauge(
            "amnesty_sequencer_pending", "Submissions queued in the sequencer.", registry=r
        )
        self.waiting = Gauge(
            "amnesty_submissions_waiting",
            "Submissions this process is waiting on (queued or in the current batch).",
            registry=r,
        )
        self.checkpoint_age = Gauge(
            "amnesty_last_checkpoint_signed_age_seconds",
            "Seconds since this process last signed a checkpoint (0 until it signs one).",
            registry=r,
        )
        self.state_size = Gauge(
            "amnesty_protocol_state_size",
            "Entries the read-side protocol state has replayed.",
            registry=r,
        )
        self.due_nearest = Gauge(
            "amnesty_due_nearest_deadline_seconds",
            "Seconds from now to the nearest deadline the body owes (a decision, a grievance "
            "answer, a pause review; GET /v1/due); negative when overdue, NaN when none runs.",
            registry=r,
        )
        self.due_overdue = Gauge(
            "amnesty_due_overdue",
            "Clocks the body owes that are past their deadline (each one a broken commitment).",
            registry=r,
        )
        # Readiness (GET /readyz, api.routes.health): each check's verdict and its inputs.
        self.ready = Gauge(
            "amnesty_ready",
            "1 while the readiness check named by `check` passes, else 0 (set by /readyz and "
            "before each scrape).",
            ["check"],
            registry=r,
        )
        self.disk_free = Gauge(
            "amnesty_disk_free_bytes",
            "Free bytes on the file system of the SQLite database (absent for PostgreSQL).",
            registry=r,
        )
        self.read_lag = Gauge(
            "amnesty_read_lag_entries",
            "Entries of the stored checkpoint the read side has not replayed yet.",
            registry=r,
        )
        self.write_failing = Gauge(
            "amnesty_write_failing",
            "1 while this process's last append transaction failed on storage, else 0.",
            registry=r,
        )
        self.last_write_ok = Gauge(
            "amnesty_last_write_success_timestamp_seconds",
            "Unix time of this process's last append transaction that committed (0: none yet).",
            registry=r,
        )
        self.clock_behind = Gauge(
            "amnesty_clock_behind_last_entry_ms",
            "How far this writer's clock was behind the last entry's log time at its last batch "
            "(0: not behind; entries then take the last entry's time).",
            registry=r,
        )
        self.clock_steps = Gauge(
            "amnesty_clock_steps",
            "Batches this writer sequenced with its clock more than 1 s behind the log (a clock "
            "stepped back, or a writer's clock ahead: check NTP).",
            registry=r,
        )
        self.integrity_failure = Gauge(
            "amnesty_integrity_failure",
            "1 once this process found damage or a fork in the store and stopped writing, else 0.",
            registry=r,
        )
        self.last_write_failure: str | None = None
        """The storage error of the last append transaction if it failed, else None."""

    def write_succeeded(self) -> None:
        """Record an append transaction that committed."""
        self.last_write_failure = None
        self.write_failing.set(0)
        self.last_write_ok.set(time.time())

    def write_failed(self, reason: str) -> None:
        """Record an append transaction that failed on storage (``reason``: one line)."""
        self.last_write_failure = reason
        self.write_failing.set(1)

    def observe_request(
        self, method: str, route: str, status: int, seconds: float, *, submission: bool
    ) -> None:
        """Record one answered request (and, for ``POST /v1/statements``, its outcome)."""
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)
        if status >= 400:
            self.errors.labels(route, str(status)).inc()
        if submission:
            self.submissions.labels(submission_outcome(status)).inc()
            self.submission_seconds.observe(seconds)


def submission_outcome(status: int) -> str:
    """The ``outcome`` label of a submission answered with ``status``."""
    if status == 201:
        return "accepted"
    if status == 200:
        return "duplicate"
    if status == 429:
        return "rate_limited"
    if status == 413:
        return "too_large"
    if status == 503:
        return "unavailable"
    if 400 <= status < 500:
        return "refused"
    return "failed"


class _CountingTransaction:
    """An :class:`AppendTransaction` that remembers how many entries its batch committed;
    every other member is the wrapped transaction's."""

    def __init__(self, tx: AppendTransaction) -> None:
        self._tx = tx
        self.entries = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def commit_batch(
        self,
        previous_checkpoint: bytes,
        new_checkpoint: bytes,
        new_size: int,
        entries: Sequence[StoredEntry],
        tiles: Sequence[tuple[TileID, bytes]],
        derived: Sequence[tuple[str, bytes, bytes]] | None = None,
    ) -> None:
        self._tx.commit_batch(
            previous_checkpoint, new_checkpoint, new_size, entries, tiles, derived=derived
        )
        self.entries = len(entries)


class InstrumentedStore:
    """A :class:`LogStore` that measures each append transaction of the store it wraps.

    Everything but :meth:`append_transaction` is the wrapped store's own member, so the wrapper
    follows the storage contract as it evolves. Same durability: a batch is observed only after
    its ``with`` block has exited cleanly, that is after the commit.
    """

    def __init__(self, store: LogStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def append_transaction(self) -> AbstractContextManager[AppendTransaction]:
        """The wrapped store's transaction, timed, with its batch size counted on commit."""
        return self._measured_transaction()

    @contextmanager
    def _measured_transaction(self) -> Iterator[AppendTransaction]:
        started = time.perf_counter()
        counting: _CountingTransaction | None = None
        try:
            with self._store.append_transaction() as tx:
                counting = _CountingTransaction(tx)
                yield cast(AppendTransaction, counting)
        except StorageError as exc:
            self._metrics.batch_failures.inc()
            self._metrics.write_failed(str(exc).splitlines()[0] if str(exc) else repr(exc))
            raise
        except BaseException:
            self._metrics.batch_failures.inc()
            raise
        # Committed: the with block above has exited cleanly.
        self._metrics.write_succeeded()
        if counting is not None and counting.entries:
            self._metrics.batch_entries.observe(counting.entries)
            self._metrics.batch_seconds.observe(time.perf_counter() - started)

    def as_store(self) -> LogStore:
        """This wrapper, typed as the store it stands for."""
        return cast(LogStore, self)


class ObservabilityMiddleware:
    """Times, counts and logs every HTTP request; adds ``X-Request-ID`` (see the module)."""

    def __init__(self, app: ASGIApp, metrics_of: Callable[[], Metrics | None]) -> None:
        self.app = app
        self.metrics_of = metrics_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, request_id, status, time.perf_counter() - started)

    def _record(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        """Count the request in the metrics and write its access-log record."""
        route = _route_template(scope)
        method = str(scope.get("method", ""))
        metrics = self.metrics_of()
        if metrics is not None:
            metrics.observe_request(
                method,
                route,
                status,
                seconds,
                submission=method == "POST" and route == "/v1/statements",
            )
        if not access_log.isEnabledFor(logging.INFO):
            return
        client = scope.get("client") or ("-", 0)
        fields = {
            "event": "request",
            "request_id": request_id,
            "method": method,
            "path": str(scope.get("path", "")),
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": str(client[0]),
        }
        access_log.info(
            " ".join(f"{k}={_logfmt(v)}" for k, v in fields.items()), extra={"fields": fields}
        )


def _request_id(scope: Scope) -> str:
    """The client's ``X-Request-ID`` if it is a sane token, else a fresh one."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            try:
                text = bytes(value).decode("ascii")
            except UnicodeDecodeError:
                break
            if _REQUEST_ID.match(text):
                return text
            break
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"


# Fresh request IDs: a random per-process prefix and a counter. Unique across processes and
# restarts (48 random bits) without a system call per request, as uuid4 would make.
_ID_PREFIX = secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path: object = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _logfmt(value: object) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "._:/-{}+" for c in text):
        return text
    return json.dumps(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any structured ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_json_logging(level: str = "INFO") -> None:
    """Send every log record to stderr as JSON lines (for ``uvicorn --factory`` deployments)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
