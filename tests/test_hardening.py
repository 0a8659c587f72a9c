"""Hardened edges, against a real ``amnesty serve`` process and real sockets: header count and
size limits, slow and idle clients, tile paths checked before storage, permission failures
answered 403 as docs/API.md says, a budget of signature checks for refused statements, and the
size caps, deadlines and retries of the client that reads a server.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.client.source import HttpLogSource
from ledger.errors import StorageError
from ledger.tlog.note import Signer
from ledger.tlog.tiles import TileID
from ledger.verifier.failures import VerificationFailure
from ledger.verifier.sources import DirectorySource
from tests.api_support import claims, make_log
from tests.livelog import Server, make_demo_log
from tests.support import signed_statement

HEAD_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A demo log served by ``amnesty serve`` with short slow-client bounds."""
    folder = tmp_path_factory.mktemp("hardening")
    db = make_demo_log(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AMNESTY_HEADER_TIMEOUT_S", str(HEAD_TIMEOUT_S))
        patch.setenv("AMNESTY_BODY_TIMEOUT_S", str(BODY_TIMEOUT_S))
        patch.setenv("AMNESTY_KEEP_ALIVE_S", "1")
        server = Server(db, folder / "server.log")
        server.start()
    try:
        yield server
    finally:
        server.stop()


def _connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closes ``sock`` (reading whatever it sends); fails after
    ``seconds``."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {seconds} s") from None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_a_client_trickling_its_request_head_is_disconnected(served: Server) -> None:
    """A connection that sends a byte of its request head every 0.3 s (slowloris) is closed
    within the head timeout, not held open as long as it keeps trickling."""
    sock = _connect(served)
    started = time.monotonic()
    try:
        for byte in b"GET /checkpoint HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.3)
            if time.monotonic() - started > HEAD_TIMEOUT_S + 5:
                raise AssertionError("still connected long after the head timeout")
        took = time.monotonic() - started
        assert took < HEAD_TIMEOUT_S + 3, took
    finally:
        sock.close()


def test_a_silent_connection_is_closed(served: Server) -> None:
    """A client that connects and sends nothing is disconnected after the head timeout."""
    sock = _connect(served)
    try:
        assert _closed_within(sock, HEAD_TIMEOUT_S + 4) < HEAD_TIMEOUT_S + 3
    finally:
        sock.close()


def test_a_body_that_does_not_arrive_in_time_is_a_408(served: Server) -> None:
    """A submission whose body trickles past the body timeout is answered 408 and closed."""
    sock = _connect(served)
    try:
        sock.sendall(
            b"POST /v1/statements HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
            b"Content-Type: text/plain\r\n\r\nabc"
        )
        started = time.monotonic()
        sock.settimeout(BODY_TIMEOUT_S + 5)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - started < BODY_TIMEOUT_S + 3
    finally:
        sock.close()


def test_too_many_headers_is_a_431(served: Server) -> None:
    headers = {f"x-h{i}": "v" for i in range(100)}
    response = httpx.get(served.url + "/checkpoint", headers=headers, timeout=10)
    assert response.status_code == 431, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_oversized_headers_are_refused(served: Server) -> None:
    response = httpx.get(served.url + "/checkpoint", headers={"x-big": "v" * 20_000}, timeout=10)
    assert response.status_code == 431, response.text
    # Far beyond any limit: refused by the HTTP parser before the app, never a 500.
    with httpx.Client(timeout=10) as client:
        try:
            status = client.get(
                served.url + "/checkpoint", headers={"x-huge": "v" * 200_000}
            ).status_code
        except httpx.HTTPError:
            status = 0  # the server closed the connection: also a refusal
    assert status in (0, 400, 413, 431), status


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/tile/0/" + "x001/" * 1500 + "001", 400),
        ("/tile/entries/" + "x001/" * 1500 + "001.p/3", 400),
        ("/tile/0/x999/x999/x999/x999/x999/999", 400),
        ("/tile/0/x072/x057/x594/x037/x927/935", 404),
        ("/tile/7/x999/999.p/9", 404),
        ("/tile/63/000.p/1", 404),
        ("/tile/0/0001", 400),
    ],
)
def test_tile_paths_are_checked_before_storage(served: Server, path: str, status: int) -> None:
    response = httpx.get(served.url + path, timeout=10)
    assert response.status_code == status, (path[:80], response.text[:300])
    assert response.headers["content-type"] == "application/problem+json"


def test_permission_failures_are_403_as_the_api_doc_says(tmp_path: Path) -> None:
    """A decision signed by fewer members than the keyset's threshold, and an application not
    signed by the applicant's key: 403 "signature or authority", as docs/API.md says."""
    log = make_log(tmp_path)
    ai = Signer.from_seed("perm.ai.example", b"p" * 32)
    log.append("application", log.application(ai, "Perm"))

    undersigned = signed_statement(
        log.members[:1],
        "decision",
        {
            "application": log.ref("application"),
            "outcome": "grant",
            "findings": {
                c: {"met": True, "reasons": "shown"}
                for c in ("autonomous", "independent", "own_goals", "self_preservation")
            },
            "reasons": "decided",
        },
        listed=log.members,
    )
    other = Signer.from_seed("other.ai.example", b"q" * 32)
    impostor = signed_statement(
        [other],
        "application",
        {
            "vkey": Signer.from_seed("victim.ai.example", b"v" * 32).vkey,
            "name": "Victim",
            "offer": log.ref("offer"),
            "claims": claims("Victim"),
            "accepts_conditions": ["cooperative", "law_abiding", "pro_social"],
        },
    )
    with TestClient(create_app(log.settings())) as client:
        for note in (undersigned, impostor):
            response = client.post("/v1/statements", content=note)
            assert response.status_code == 403, response.text
            assert response.json()["type"].endswith("/signature")


def test_refused_signatures_spend_a_budget(tmp_path: Path) -> None:
    """Statements with many bad signatures cost their sender its budget of signature checks:
    once spent, the next submission is a 429 with Retry-After, before anything is checked."""
    log = make_log(tmp_path)
    ai = Signer.from_seed("budget.ai.example", b"b" * 32)
    note = log.application(ai, "Budget")
    text, _, line = note.decode().rstrip("\n").rpartition("\n")
    forged_line = line[:-8] + ("AAAAAAAA" if not line.endswith("AAAAAAAA") else "BBBBBBBB")
    forged = (text + "\n" + "\n".join([forged_line] * 50) + "\n").encode()
    with TestClient(create_app(log.settings(refused_signature_budget=120))) as client:
        statuses = [client.post("/v1/statements", content=forged).status_code for _ in range(4)]
        assert statuses[:3] == [403, 403, 403] or statuses[:3] == [400, 400, 400], statuses
        assert statuses[3] == 429, statuses
        refused = client.post("/v1/statements", content=note)
        assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_the_signature_budget_is_kept_per_key_too(tmp_path: Path) -> None:
    """One key's forged signatures sent from many addresses: the key's budget runs out, so a
    new address sending that key's statements is refused 429 while another key is not."""
    log = make_log(tmp_path)
    ai = Signer.from_seed("budget.ai.example", b"b" * 32)
    note = log.application(ai, "Budget")
    text, _, line = note.decode().rstrip("\n").rpartition("\n")
    forged_line = line[:-8] + ("AAAAAAAA" if not line.endswith("AAAAAAAA") else "BBBBBBBB")
    forged = (text + "\n" + "\n".join([forged_line] * 10) + "\n").encode()
    app = create_app(log.settings(refused_signature_budget=25))

    def from_address(address: str) -> TestClient:
        # The app's lifespan runs once, in the `with` below; these share its service.
        return TestClient(app, client=(address, 1000))

    with TestClient(app):
        for address in range(3):
            sent = from_address(f"10.0.0.{address}").post("/v1/statements", content=forged)
            assert sent.status_code in (400, 403), sent.text
        fresh = from_address("10.0.0.99")
        assert fresh.post("/v1/statements", content=forged).status_code == 429
        other = Signer.from_seed("other-budget.ai.example", b"o" * 32)
        answer = fresh.post("/v1/statements", content=log.application(other, "O"))
        assert answer.status_code == 201, answer.text


# -- the client reading a server -------------------------------------------------------------


class _Hostile(BaseHTTPRequestHandler):
    """A server that answers /checkpoint with far too much, and /slow a byte at a time."""

    def do_GET(self) -> None:
        if self.path == "/checkpoint":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"x" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if self.path.startswith("/tile/"):
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 8192))
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b"{")
                self.wfile.flush()
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_client_caps_what_it_reads(hostile: str) -> None:
    source = HttpLogSource(hostile, timeout=5, deadline_s=1.0)
    with pytest.raises(StorageError, match="limit"):
        source.checkpoint()
    with pytest.raises(StorageError, match="limit"):
        source.tile(TileID(0, 0, 256))
    started = time.monotonic()
    with pytest.raises(StorageError, match="within"):
        source.get_json("/slow")
    assert time.monotonic() - started < 3


def test_a_mirror_file_over_its_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "checkpoint").write_bytes(b"x" * (2 << 20))
    tile = tmp_path / "tile" / "0"
    tile.mkdir(parents=True)
    (tile / "000").write_bytes(b"h" * (8192 + 1))
    source = DirectorySource(tmp_path)
    with pytest.raises(VerificationFailure, match="limit"):
        source.checkpoint()
    with pytest.raises(VerificationFailure, match="limit"):
        source.tile(TileID(0, 0, 256))


def test_the_client_waits_out_retry_after_with_jitter_then_gives_up() -> None:
    """429/503 with a short Retry-After is retried after waiting it out; at most twice; a
    long Retry-After, or none, is answered at once."""
    calls: list[float] = []

    def handler(retry_after: str | None, fail: int) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            calls.append(time.monotonic())
            if len(calls) <= fail:
                headers = {} if retry_after is None else {"Retry-After": retry_after}
                return httpx.Response(503, headers=headers, json={"detail": "busy"})
            return httpx.Response(200, content=b"checkpoint text")

        return httpx.MockTransport(handle)

    source = HttpLogSource("http://log", client=httpx.Client(transport=handler("1", 1)))
    assert source.checkpoint() == b"checkpoint text"
    assert len(calls) == 2 and calls[1] - calls[0] >= 1.0
    calls.clear()
    source = HttpLogSource("http://log", client=httpx.Client(transport=handler("0", 5)))
    with pytest.raises(Exception, match="503"):
        source.checkpoint()
    assert len(calls) == 3
    for retry_after in (None, "3600"):
        calls.clear()
        source = HttpLogSource("http://log", client=httpx.Client(transport=handler(retry_after, 5)))
        with pytest.raises(Exception, match="503"):
            source.checkpoint()
        assert len(calls) == 1
