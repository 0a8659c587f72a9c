"""PostgreSQL as the scale-out engine: two writers and two read-only API processes on one
database, behind a load balancer, with static tiles served from a mirror (docs/OPERATIONS.md,
"Scale-out on PostgreSQL").

Real ``amnesty serve`` processes on a real PostgreSQL (the ``pg_admin_url`` fixture: the tests
FAIL, never skip, without one). Two writers, each with its own copy of the log key (and so its
own ``<key>.published`` memory, as on two machines), take a stream of valid attestations from
two client threads, while the two read-only processes (``--read-only``: nothing but the
database URL) must answer alike: checkpoints only grow and agree on the root at every size; the
precedent at a size (with the same audit time), subjects, entry pages and tiles are the same
bytes from both; each one's proofs verify against the other's checkpoints; a submission to a
reader is its documented 503 problem. A verifying client (``LedgerClient``, pinned key) works
through a round-robin pool of all four processes, and a static mirror made by ``amnesty
mirror`` serves the API's tiles byte for byte.

Everything is observed over HTTP (and the mirror's files): nothing here depends on how a
server builds its protocol state.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ledger.client.json_api import LedgerClient
from ledger.statements.demo import DemoAuthor, DemoKeys, Ref
from ledger.tlog.checkpoint import Checkpoint, open_checkpoint
from ledger.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.tlog.note import VerifierKey
from ledger.tlog.tiles import bundles_for_size, tiles_for_size
from tests.livelog import Server, amnesty, free_port

SUBJECT_ID = 2
"""The demo log's first application (Prometheus-7): its index is the subject's id."""
DEMO_SIZE = 15
"""Entries ``amnesty demo`` writes."""
WAIT_S = 60.0
"""Upper bound on any wait for a condition (a poll, never a sleep): generous on a busy machine."""
PROBLEM = "application/problem+json"


# -- the deployment -------------------------------------------------------------------------------


class Attestations:
    """Valid, distinct attestations by the demo's first grantee, for any number of threads.

    The subject's reference is read over HTTP (``/v1/entries/2``), like any client would."""

    def __init__(self, base_url: str, origin: str) -> None:
        entry = httpx.get(f"{base_url}/v1/entries/{SUBJECT_ID}", timeout=30).json()["entry"]
        self.subject = Ref(SUBJECT_ID, leaf_hash(base64.b64decode(entry["entry_b64"])))
        keys = DemoKeys.deterministic()
        self.key = keys.subject("Prometheus-7")
        self.author = DemoAuthor(origin, keys, lambda datas: [], lambda: int(time.time() * 1000))
        self.period = int(time.time() * 1000) - 86_400_000
        self._lock = threading.Lock()

    def next(self, label: str) -> bytes:
        with self._lock:
            start = self.period
            self.period += 1
        body = self.author.attestation(self.subject, start, start + 1, f"Report {label}.")
        return self.author.by_subject(self.key, "attestation", body)


def statement_id(note: bytes) -> str:
    """Hex SHA-256 of a statement's text (without its signature lines)."""
    text = note.decode().rsplit("\n\n", 1)[0] + "\n"
    return hashlib.sha256(text.encode()).hexdigest()


class Gate:
    """Lets the test hold every appending thread between two submissions, so that the log
    stands still for a moment (a size both readers must then serve)."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._cond = threading.Condition()
        self._closed = False
        self._parked = 0

    def wait_if_closed(self, stop: threading.Event) -> None:
        """Called by an appender between submissions."""
        with self._cond:
            if not self._closed:
                return
            self._parked += 1
            self._cond.notify_all()
            while self._closed and not stop.is_set():
                self._cond.wait(0.5)
            self._parked -= 1

    @contextlib.contextmanager
    def closed(self, alive: Callable[[], int]) -> Iterator[None]:
        """Hold the appenders (``alive()`` of them still running) while the block runs."""
        with self._cond:
            self._closed = True
            deadline = time.monotonic() + WAIT_S
            while self._parked < alive():
                assert time.monotonic() < deadline, "the appenders did not stop in time"
                self._cond.wait(0.2)
        try:
            yield
        finally:
            with self._cond:
                self._closed = False
                self._cond.notify_all()


@dataclass
class Appenders:
    """One client thread per writer, each submitting attestations back to back until stopped."""

    writers: list[Server]
    statements: Attestations
    stop: threading.Event = field(default_factory=threading.Event)
    acknowledged: list[tuple[int, int]] = field(default_factory=list)
    """(writer number, index) of every acknowledged submission."""
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate = Gate(len(self.writers))

    def start(self) -> None:
        for number, writer in enumerate(self.writers):
            thread = threading.Thread(
                target=self._run, args=(writer, number), name=f"appender-{number}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def alive(self) -> int:
        return sum(thread.is_alive() for thread in self.threads)

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def _run(self, writer: Server, number: int) -> None:
        try:
            with httpx.Client(base_url=writer.url, timeout=30) as client:
                for n in itertools.count():
                    self.gate.wait_if_closed(self.stop)
                    if self.stop.is_set():
                        return
                    self._submit(client, number, self.statements.next(f"w{number}-{n}"))
        except Exception as exc:  # recorded, and the tests fail on it (see wait_for_appends)
            with self.lock:
                self.errors.append(f"appender {number}: {exc!r}")

    def _submit(self, client: httpx.Client, number: int, note: bytes) -> None:
        """Submit until acknowledged: a 503 with Retry-After (the other writer held the write
        lock too long on a busy machine) is retried, as the documentation tells clients to."""
        deadline = time.monotonic() + WAIT_S
        while True:
            response = client.post("/v1/statements", content=note)
            if response.status_code in (200, 201):
                with self.lock:
                    self.acknowledged.append((number, int(response.json()["index"])))
                return
            retry = response.headers.get("Retry-After")
            if response.status_code != 503 or retry is None or time.monotonic() > deadline:
                raise AssertionError(f"submission answered {response.status_code}: {response.text}")
            time.sleep(min(float(retry), 1.0))  # the server's own back-off, not synchronisation

    def by_writer(self) -> list[int]:
        """How many submissions each writer acknowledged."""
        with self.lock:
            return [sum(n == w for n, _ in self.acknowledged) for w in range(len(self.writers))]

    def wait_for_appends(self, more: int) -> None:
        """Wait (polling) until ``more`` further statements were acknowledged."""
        target = self.count() + more
        deadline = time.monotonic() + WAIT_S
        while self.count() < target:
            assert not self.errors, self.errors
            assert self.alive() == len(self.threads), "an appender stopped"
            assert time.monotonic() < deadline, f"only {self.count()} of {target} acknowledged"
            time.sleep(0.05)
        assert not self.errors, self.errors

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(WAIT_S)


@dataclass
class Deployment:
    db: str
    vkey: str
    log_key: VerifierKey
    key_files: list[Path]
    writers: list[Server]
    readers: list[Server]
    appenders: Appenders
    audit_time_ms: int

    @property
    def servers(self) -> list[Server]:
        return [*self.writers, *self.readers]

    @contextlib.contextmanager
    def standing_still(self) -> Iterator[Checkpoint]:
        """Hold the appenders; yield the checkpoint every process then serves (the same)."""
        with self.appenders.gate.closed(self.appenders.alive):
            notes = {server.url: fetch(server, "/checkpoint").content for server in self.servers}
            assert len(set(notes.values())) == 1, f"processes disagree on the latest: {notes}"
            yield open_checkpoint(next(iter(notes.values())), self.log_key)


def fetch(server: Server, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
    """GET ``path``; a 503 with Retry-After (e.g. a process still catching up) is polled until
    the bound. Returns the first other answer."""
    deadline = time.monotonic() + WAIT_S
    while True:
        response = httpx.get(server.url + path, params=params, timeout=30)
        retry = response.headers.get("Retry-After")
        if response.status_code != 503 or retry is None or time.monotonic() > deadline:
            return response
        time.sleep(min(float(retry), 0.5))


def ok(server: Server, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
    response = fetch(server, path, params)
    assert response.status_code == 200, f"{server.url}{path}: {response.text[:500]}"
    return response


def wait_ready(server: Server) -> None:
    """Poll ``/readyz`` (the load balancer's check) until it passes."""
    deadline = time.monotonic() + WAIT_S
    while httpx.get(server.url + "/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, f"{server.url} never became ready"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def deployment(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Two writers and two read-only processes on one fresh PostgreSQL database holding the
    demo log, and two clients appending through the writers for the whole module."""
    folder = tmp_path_factory.mktemp("scale-out")
    name = "amnesty_scale_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = pg_admin_url.partition("?")
    db = f"{base.rpartition('/')[0]}/{name}" + (f"?{query}" if query else "")
    servers: list[Server] = []
    appenders: Appenders | None = None
    try:
        amnesty("demo", "--db", db, "--keys", str(folder / "keys"))
        vkey = (folder / "keys" / "log.vkey").read_text().strip()
        log_key = VerifierKey.parse(vkey)
        # Two writing "machines": each its own copy of the key, so its own .published memory.
        key_files = []
        for machine in ("writer-a", "writer-b"):
            (folder / machine).mkdir()
            key = folder / machine / "log.key"
            shutil.copy2(folder / "keys" / "log.key", key)
            key_files.append(key)
        writers = [
            Server(db, folder / f"{key.parent.name}.log", extra=["--key", str(key)])
            for key in key_files
        ]
        readers = [Server(db, folder / f"reader-{n}.log", read_only=True) for n in (1, 2)]
        servers = [*writers, *readers]
        with ThreadPoolExecutor(len(servers)) as pool:
            for started in [pool.submit(s.start, WAIT_S) for s in servers]:
                started.result()
        for server in servers:
            wait_ready(server)
        appenders = Appenders(writers, Attestations(readers[0].url, log_key.name))
        appenders.start()
        appenders.wait_for_appends(10)
        yield Deployment(
            db=db,
            vkey=vkey,
            log_key=log_key,
            key_files=key_files,
            writers=writers,
            readers=readers,
            appenders=appenders,
            audit_time_ms=int(time.time() * 1000) + 86_400_000,
        )
        assert not appenders.errors, appenders.errors
    finally:
        if appenders is not None:
            appenders.close()
        for server in servers:
            server.stop()
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def checkpoint_of(server: Server, log_key: VerifierKey) -> Checkpoint:
    return open_checkpoint(ok(server, "/checkpoint").content, log_key)


def b64d(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


# -- the readers agree ----------------------------------------------------------------------------


def test_checkpoints_only_grow_and_agree_at_every_size(deployment: Deployment) -> None:
    """Sampled in turn from both readers while the writers append: each reader's sizes never
    go down, the root at any size is the same whoever served it, and the newest of one is
    consistent with the newest of the other by a proof from either."""
    a, b = deployment.readers
    roots: dict[int, bytes] = {}
    last = {a.url: 0, b.url: 0}
    newest: dict[str, Checkpoint] = {}
    start = deployment.appenders.count()
    rounds = 0
    deadline = time.monotonic() + WAIT_S
    while rounds < 10 or deployment.appenders.count() < start + 20:
        assert time.monotonic() < deadline, "the writers appended too little"
        rounds += 1
        for reader in (a, b):
            checkpoint = checkpoint_of(reader, deployment.log_key)
            assert checkpoint.size >= last[reader.url], f"{reader.url} went back in size"
            last[reader.url] = checkpoint.size
            assert roots.setdefault(checkpoint.size, checkpoint.root_hash) == checkpoint.root_hash
            newest[reader.url] = checkpoint
        small, large = sorted(newest.values(), key=lambda c: c.size)
        for prover in (a, b):
            proof = ok(prover, "/v1/proofs/consistency", {"from": small.size, "to": large.size})
            hashes = [b64d(h) for h in proof.json()["hashes"]]
            verify_consistency(small.size, large.size, hashes, small.root_hash, large.root_hash)
    assert deployment.appenders.count() >= start + 20
    with deployment.standing_still() as still:
        assert checkpoint_of(a, deployment.log_key) == checkpoint_of(b, deployment.log_key)
        assert still.size > DEMO_SIZE


def test_two_writers_with_their_own_memories_append_to_one_log(deployment: Deployment) -> None:
    """Both writers acknowledge submissions, no index is acknowledged twice (one log, no fork),
    and each writer keeps its own memory of what it published beside its own key file."""
    appenders = deployment.appenders
    deadline = time.monotonic() + WAIT_S
    while min(appenders.by_writer()) < 5:
        assert time.monotonic() < deadline, f"acknowledged per writer: {appenders.by_writer()}"
        appenders.wait_for_appends(1)
    with deployment.standing_still() as still:
        with appenders.lock:
            indexes = [index for _, index in appenders.acknowledged]
        assert len(set(indexes)) == len(indexes), "an index was acknowledged twice"
        assert min(indexes) >= DEMO_SIZE and max(indexes) < still.size
    for key in deployment.key_files:
        assert key.with_name(key.name + ".published").is_file(), f"no memory beside {key}"


def test_proofs_from_either_reader_verify_against_the_others_checkpoints(
    deployment: Deployment,
) -> None:
    a, b = deployment.readers
    deployment.appenders.wait_for_appends(5)
    for prover, other in ((a, b), (b, a)):
        checkpoint = checkpoint_of(other, deployment.log_key)
        for index in sorted({0, SUBJECT_ID, DEMO_SIZE, checkpoint.size // 2, checkpoint.size - 1}):
            entry = ok(other, f"/v1/entries/{index}").json()["entry"]
            leaf = leaf_hash(b64d(entry["entry_b64"]))
            proof = ok(
                prover, "/v1/proofs/inclusion", {"index": index, "size": checkpoint.size}
            ).json()
            assert b64d(proof["leaf_hash"]) == leaf
            hashes = [b64d(h) for h in proof["hashes"]]
            verify_inclusion(index, checkpoint.size, leaf, hashes, checkpoint.root_hash)
        # And from a size the other served to whatever the prover has now.
        later = checkpoint_of(prover, deployment.log_key)
        proof = ok(prover, "/v1/proofs/consistency", {"from": checkpoint.size, "to": later.size})
        assert proof.json()["to"] == later.size
        hashes = [b64d(h) for h in proof.json()["hashes"]]
        verify_consistency(
            checkpoint.size, later.size, hashes, checkpoint.root_hash, later.root_hash
        )


def test_same_size_same_bytes_while_the_log_grows(deployment: Deployment) -> None:
    """The precedent at a size (same audit time) and every tile of that size: the same bytes
    from both readers, and from the writers, while the writers go on appending."""
    a, _ = deployment.readers
    deployment.appenders.wait_for_appends(5)
    served = checkpoint_of(a, deployment.log_key).size  # a size this log signed
    params = {"audit_time_ms": deployment.audit_time_ms}
    for size in (DEMO_SIZE, served):
        bodies = {
            server.url: ok(server, "/v1/precedent", {"at": size, **params}).content
            for server in deployment.servers
        }
        assert len(set(bodies.values())) == 1, f"precedent at {size} differs between processes"
        report = json.loads(next(iter(bodies.values())))
        assert report["checkpoint"]["size"] == size
        texts = {
            ok(r, "/v1/precedent.txt", {"at": size, **params}).content for r in deployment.readers
        }
        assert len(texts) == 1
    paths = [t.path() for t in (*tiles_for_size(served), *bundles_for_size(served))]
    assert any("/entries/" in p for p in paths) and any(p.startswith("tile/0/") for p in paths)
    for path in paths:
        tiles = {ok(server, "/" + path).content for server in deployment.servers}
        assert len(tiles) == 1, f"{path} differs between processes"


def test_latest_answers_are_the_same_bytes_at_the_same_checkpoint(deployment: Deployment) -> None:
    """Answers "at the latest checkpoint" (a subject, pages of entries) are the same bytes from
    both readers whenever both stand at the same checkpoint: checked in a moment the appenders
    are held, after they have grown the log."""
    a, b = deployment.readers
    deployment.appenders.wait_for_appends(20)
    with deployment.standing_still() as still:
        middle = still.size // 2
        for path, params in (
            (f"/v1/subjects/{SUBJECT_ID}", {}),
            (f"/v1/subjects/{SUBJECT_ID}", {"after": middle, "limit": 7}),
            ("/v1/entries", {"limit": 20}),
            ("/v1/entries", {"after": middle, "limit": 50}),
            ("/v1/entries", {"type": "attestation", "subject": SUBJECT_ID, "limit": 30}),
            (f"/v1/entries/{still.size - 1}", {}),
            ("/v1/log", {}),
        ):
            first, second = ok(a, path, params), ok(b, path, params)
            assert first.content == second.content, f"{path} {params} differs between readers"
            answer = first.json()
            head = answer.get("checkpoint")
            size = head["size"] if isinstance(head, dict) else answer.get("size")
            assert size in (still.size, None), f"{path} answered at {size}, not {still.size}"
        subject = ok(a, f"/v1/subjects/{SUBJECT_ID}").json()
        assert subject["checkpoint"]["size"] == still.size


def test_a_read_only_server_refuses_submissions_with_its_problem(deployment: Deployment) -> None:
    note = deployment.appenders.statements.next("to a reader")
    for reader in deployment.readers:
        response = httpx.post(reader.url + "/v1/statements", content=note, timeout=30)
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        assert "Retry-After" not in response.headers  # docs/API.md: retrying here won't help
        problem = response.json()
        assert problem["type"].endswith("/read-only"), problem
        assert problem["title"] == "Read-only server"
        assert "serves reads only" in problem["detail"]
        assert ok(reader, "/v1/log").json()["read_only"] is True
        health = ok(reader, "/healthz").json()
        assert health["read_only"] is True and health["sequencer"] == "none"
    for writer in deployment.writers:
        assert ok(writer, "/v1/log").json()["read_only"] is False
    # Nothing was logged.
    assert fetch(deployment.writers[0], f"/v1/statements/{statement_id(note)}").status_code == 404


# -- a verifying client through a load balancer ---------------------------------------------------


class RoundRobin(httpx.BaseTransport):
    """The smallest load balancer: writes (POST) to the writers in turn, reads (GET, HEAD) to
    every process in turn; counts what each backend got."""

    def __init__(self, writers: list[str], readers: list[str]) -> None:
        self._writes = itertools.cycle(writers)
        self._reads = itertools.cycle(readers)
        self._lock = threading.Lock()
        self._inner = httpx.HTTPTransport()
        self.served: dict[str, int] = dict.fromkeys([*writers, *readers], 0)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            backend = next(self._writes if request.method == "POST" else self._reads)
            self.served[backend] += 1
        target = httpx.URL(backend)
        request.url = request.url.copy_with(
            scheme=target.scheme, host=target.host, port=target.port
        )
        request.headers["Host"] = f"{target.host}:{target.port}"
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def test_a_verifying_client_works_through_a_round_robin_pool(deployment: Deployment) -> None:
    """``LedgerClient`` pinned to the log key, through a balancer that sends each read to the
    next process (readers and writers) and each write to the next writer: every checkpoint it
    is shown, by whichever process, is consistent with the ones before; its receipts, entries
    and the subject computed from its verified replica all check out."""
    writers = [w.url for w in deployment.writers]
    balancer = RoundRobin(writers, [s.url for s in deployment.servers])
    http = httpx.Client(transport=balancer, timeout=30)
    with LedgerClient(
        "http://pool.invalid", deployment.vkey, http=http, max_catch_up=None
    ) as client:
        receipts = [
            client.submit(deployment.appenders.statements.next(f"pool {n}")) for n in range(4)
        ]
        assert [r.duplicate for r in receipts] == [False] * 4
        sizes = [client.checkpoint().size for _ in range(8)]  # two rounds over the four
        assert sizes == sorted(sizes) and sizes[0] > receipts[-1].index
        for receipt in receipts:
            assert client.entry(receipt.index).data == receipt.data
        subject = client.subject(SUBJECT_ID)
        assert subject.verified, subject.provenance
        assert subject.view["subject_id"] == SUBJECT_ID and subject.head.size >= sizes[0]
        listed = {event["index"] for event in subject.view["timeline"]}
        assert {r.index for r in receipts} <= listed
    assert all(count > 0 for count in balancer.served.values()), balancer.served


# -- static tiles ---------------------------------------------------------------------------------


@pytest.fixture
def static_host(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A plain static file server (``python -m http.server``) over an empty folder."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + WAIT_S
        while True:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url + "/", timeout=2)
                break
            assert process.poll() is None, "the static server exited"
            assert time.monotonic() < deadline, "the static server did not start"
            time.sleep(0.05)
        yield folder, url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_a_static_mirror_serves_the_apis_tiles_byte_for_byte(
    deployment: Deployment, static_host: tuple[Path, str]
) -> None:
    """``amnesty mirror`` of a reader (pinned key) written to a static host: every tile and
    bundle it serves is the API's, byte for byte, and the static host is a log ``amnesty
    verify`` accepts. A mirror made straight from the database holds the same tiles."""
    folder, static = static_host
    a, b = deployment.readers
    deployment.appenders.wait_for_appends(5)
    amnesty("mirror", a.url, str(folder), "--vkey", deployment.vkey, "--quiet", "--workers", "0")
    mirrored = open_checkpoint((folder / "checkpoint").read_bytes(), deployment.log_key)
    tiles = sorted(p.relative_to(folder).as_posix() for p in (folder / "tile").rglob("*"))
    tiles = [p for p in tiles if (folder / p).is_file()]
    assert {
        t.path() for t in (*tiles_for_size(mirrored.size), *bundles_for_size(mirrored.size))
    } <= set(tiles)
    for path in tiles:
        from_static = httpx.get(f"{static}/{path}", timeout=30)
        assert from_static.status_code == 200, path
        assert from_static.content == ok(b, "/" + path).content, f"{path} differs from the API's"
    # The checkpoint the mirror serves is one the log signed at that size.
    assert checkpoint_of(b, deployment.log_key).size >= mirrored.size
    proof = ok(b, "/v1/proofs/inclusion", {"index": 0, "size": mirrored.size}).json()
    assert proof["checkpoint"]["root_hash"] == base64.b64encode(mirrored.root_hash).decode()
    verified = amnesty("verify", static, "--vkey", deployment.vkey, "--quiet", "--workers", "0")
    assert f"size {mirrored.size}" in verified.stdout
