"""The log side of witnessing, against real witness processes (``amnesty witness serve``):
checkpoints get cosigned with consistency proofs, the served note and tlog-proof files carry the
cosignatures, a tlog-policy quorum accepts them, and a restarted cosigner catches up."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from ledger.errors import SignatureError
from ledger.server.logview import LogView
from ledger.server.sequencer import Sequencer
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import open_witnessed_checkpoint, parse_policy, verify_cosignatures
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.note import NoteSignature, VerifierKey
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof
from ledger.witness.client import request_cosignatures
from ledger.witness.cosigner import Cosigner, Pacing, WitnessEndpoint
from tests.livelog import REPO, Attester, Server, free_port, make_demo_log
from tests.support import OpaquePolicy, create_log, make_signer


def request(
    url: str,
    keys: tuple[VerifierKey, ...],
    note: bytes,
    old: int,
    proof: Sequence[bytes],
    prove: object,
) -> Sequence[NoteSignature]:
    return request_cosignatures(url, keys, note, old, proof, prove=prove)  # type: ignore[arg-type]


UNPACED = Pacing(min_interval_s=0)
"""These tests ask in quick succession; pacing has its own tests (test_witness_citizen)."""


@contextlib.contextmanager
def witness(folder: Path, name: str, log_vkey: str) -> Iterator[tuple[str, str]]:
    key = folder / f"{name}.key"
    vkey = subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger",
            "witness",
            "keygen",
            f"witness.example/{name}",
            "--out",
            str(key),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    log = (folder / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ledger",
            "witness",
            "serve",
            "--key",
            str(key),
            "--state",
            str(folder / f"{name}.json"),
            "--log",
            log_vkey,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(url + "/add-checkpoint", content=b"", timeout=1)
                break
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"witness {name} did not start: {(folder / f'{name}.log').read_text()}")
            time.sleep(0.05)
        yield url, vkey
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_witnesses_cosign_the_log_and_a_policy_quorum_accepts_it(tmp_path: Path) -> None:
    signer = make_signer()
    store = create_log(f"sqlite:///{tmp_path / 'log.db'}", signer)
    policy = OpaquePolicy()
    sequencer = Sequencer(store, signer, policy)
    view = LogView(store)
    sequencer.sequence_now([policy.prepare(f"first {i}".encode()) for i in range(300)])
    with (
        witness(tmp_path, "w1", signer.vkey) as (url1, vkey1),
        witness(tmp_path, "w2", signer.vkey) as (url2, vkey2),
    ):
        endpoints = [
            WitnessEndpoint.parse(f"{vkey1} {url1}"),
            WitnessEndpoint.parse(f"{vkey2} {url2}"),
        ]
        cosigner = Cosigner(view, endpoints, request, pacing=UNPACED)
        assert cosigner.cosign_latest() == 2
        assert cosigner.cosign_latest() == 0  # nothing new to cosign
        sequencer.sequence_now([policy.prepare(f"second {i}".encode()) for i in range(77)])
        assert cosigner.cosign_latest() == 2  # with consistency proofs from 300 to 377
        # A cosigner that restarted knows nothing; the witnesses' 409s teach it their sizes.
        sequencer.sequence_now([policy.prepare(f"third {i}".encode()) for i in range(5)])
        assert Cosigner(view, endpoints, request, pacing=UNPACED).cosign_latest() == 2
        assert cosigner.failures == {}
    latest = view.latest()
    served = view.witnessed(latest)
    cosigned = verify_cosignatures(served, [VerifierKey.parse(vkey1), VerifierKey.parse(vkey2)])
    assert len(cosigned) == 2
    policy_text = f"log {signer.vkey}\nwitness w1 {vkey1}\nwitness w2 {vkey2}\ngroup both 2 w1 w2\nquorum both\n"
    trust = parse_policy(policy_text)
    assert open_witnessed_checkpoint(served, trust).size == 382
    proof = parse_tlog_proof(view.tlog_proof(123, latest))
    assert open_tlog_proof(proof, leaf_hash(store.read_entries(123, 124)[0]), trust).size == 382
    # Without the cosignatures the same quorum is not met.
    with pytest.raises(SignatureError, match="quorum"):
        open_witnessed_checkpoint(latest.note, trust)


def test_an_unreachable_witness_is_reported_and_does_not_block(tmp_path: Path) -> None:
    signer = make_signer()
    store = create_log(f"sqlite:///{tmp_path / 'log.db'}", signer)
    policy = OpaquePolicy()
    Sequencer(store, signer, policy).sequence_now([policy.prepare(b"x")])
    view = LogView(store)
    from ledger.tlog.checkpoint import CosignatureSigner

    key = CosignatureSigner.generate("witness.example/dead").verifier_key
    cosigner = Cosigner(view, [WitnessEndpoint(f"http://127.0.0.1:{free_port()}", (key,))], request)
    assert cosigner.cosign_latest() == 0
    assert key.vkey() in cosigner.failures
    assert view.witnessed(view.latest()) == view.latest().note


def test_a_served_log_publishes_witnessed_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``amnesty serve --witness-policy``: the service's cosigner gets every new checkpoint
    cosigned, and ``/checkpoint`` serves it with the cosignatures."""
    # Witnesses run by this test take any rate; the 60 s default is for the public network.
    monkeypatch.setenv("AMNESTY_WITNESS_MIN_INTERVAL_S", "0.2")
    db = make_demo_log(tmp_path)
    store = SqlLogStore(db)
    log_vkey, origin = store.identity().log_vkey, store.identity().origin
    store.close()
    with (
        witness(tmp_path, "w1", log_vkey) as (url1, vkey1),
        witness(tmp_path, "w2", log_vkey) as (url2, vkey2),
    ):
        policy_file = tmp_path / "policy.txt"
        policy_file.write_text(
            f"log {log_vkey}\nwitness w1 {vkey1} {url1}\nwitness w2 {vkey2} {url2}\n"
            "group both 2 w1 w2\nquorum both\n"
        )
        trust = parse_policy(policy_file.read_text())
        server = Server(db, tmp_path / "server.log", extra=["--witness-policy", str(policy_file)])
        server.start()
        try:
            attester = Attester(db, origin)
            for round_number in range(3):
                response = httpx.post(
                    server.url + "/v1/statements",
                    content=attester.next(str(round_number)),
                    timeout=10,
                )
                assert response.status_code == 201, response.text
                size = response.json()["index"] + 1
                deadline = time.monotonic() + 20
                while True:
                    note = httpx.get(server.url + "/checkpoint", timeout=10).content
                    try:
                        if open_witnessed_checkpoint(note, trust).size == size:
                            break
                    except SignatureError:
                        pass
                    assert time.monotonic() < deadline, (
                        f"checkpoint {size} was not witnessed: {note!r}"
                    )
                    time.sleep(0.1)
        finally:
            server.stop()
