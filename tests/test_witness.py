"""C2SP tlog-witness: the witness's rules, its state, its HTTP server, and the log-side client.

The spec's answers are checked one by one over HTTP (200, 409 with the witness's size, 422,
403, 404, 400), then a real witness server on a loopback port cosigns successive checkpoints of
a real log, and the cosigned checkpoints are opened under a tlog-policy quorum.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.witness_app import WitnessSettings, create_witness_app
from ledger.cli.main import build_app
from ledger.client.source import RemoteError
from ledger.errors import (
    ConflictError,
    FatalError,
    MalformedError,
    ProofError,
    SignatureError,
    StorageError,
)
from ledger.server.logview import LogView
from ledger.server.sequencer import Receipt, Sequencer
from ledger.tlog.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    open_witnessed_checkpoint,
    parse_policy,
    sign_checkpoint,
    verify_cosignatures,
)
from ledger.tlog.merkle import EMPTY_ROOT
from ledger.tlog.note import (
    ALG_MLDSA44,
    Note,
    NoteSignature,
    Signer,
    VerifierKey,
    format_note,
    parse_note,
)
from ledger.verifier.evidence import parse_evidence, verify_evidence
from ledger.witness.client import request_cosignature
from ledger.witness.witness import (
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    ConflictingRootError,
    JsonFileWitnessState,
    OldSizeMismatchError,
    StaleTimestampError,
    UnknownLogError,
    Witness,
    WitnessedCheckpoint,
    format_add_checkpoint,
    parse_add_checkpoint,
)
from tests.support import ORIGIN, OpaquePolicy, create_log, make_signer

REPO = Path(__file__).resolve().parents[1]
W1 = CosignatureSigner.from_seed("witness.example/w1", hashlib.sha256(b"w1").digest())
W2 = CosignatureSigner.from_seed("witness.example/w2", hashlib.sha256(b"w2").digest())
T0 = 1_700_000_000


class Log:
    """A real log (SQLite, sequencer, log view) whose entries are ``<label> <index>``."""

    def __init__(self, path: Path, label: str = "entry", signer: Signer | None = None) -> None:
        self.signer = signer if signer is not None else make_signer()
        self.store = create_log(f"sqlite:///{path}", self.signer, self.signer.name)
        self.policy = OpaquePolicy()
        self.sequencer = Sequencer(self.store, self.signer, self.policy)
        self.view = LogView(self.store)
        self.label = label

    def grow(self, count: int) -> bytes:
        """Append ``count`` entries in one batch; return the new signed checkpoint note."""
        start = self.view.latest().size
        payloads = [f"{self.label} {i}".encode() for i in range(start, start + count)]
        results = self.sequencer.sequence_now([self.policy.prepare(p) for p in payloads])
        assert all(isinstance(r, Receipt) for r in results), results
        return self.view.latest().note

    @property
    def size(self) -> int:
        return self.view.latest().size

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        """The consistency proof from ``old`` to ``new`` (default: the latest size)."""
        return self.view.consistency_proof(old, self.size if new is None else new)

    def close(self) -> None:
        self.store.close()


def body(old: int, proof: list[bytes], note: bytes) -> bytes:
    return format_add_checkpoint(AddCheckpointRequest(old, tuple(proof), parse_note(note)))


class Clock:
    """A settable clock for cosignature timestamps."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    value = Log(tmp_path / "log.db")
    yield value
    value.close()


@pytest.fixture
def fork(tmp_path: Path) -> Iterator[Log]:
    """The same log key and origin signing another history: a split view of ``log``."""
    value = Log(tmp_path / "fork.db", label="fork")
    yield value
    value.close()


def write_key(path: Path, signer: CosignatureSigner) -> Path:
    path.write_text(signer.private_key_text() + "\n", encoding="utf-8")
    return path


def settings_for(
    tmp_path: Path,
    *,
    signer: CosignatureSigner = W1,
    logs: tuple[str, ...] | None = None,
    clock: Clock | None = None,
    name: str = "w1",
) -> WitnessSettings:
    return WitnessSettings(
        key_path=write_key(tmp_path / f"{name}.key", signer),
        state_path=tmp_path / f"{name}-state.json",
        log_vkeys=logs if logs is not None else (make_signer().vkey,),
        create_state=True,
        evidence_dir=tmp_path / f"{name}-evidence",
        clock=clock if clock is not None else Clock(),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def witness_http(tmp_path: Path, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_witness_app(settings_for(tmp_path, clock=clock))) as client:
        yield client


def post(client: TestClient, data: bytes) -> Any:
    """POST ``data`` to the witness's add-checkpoint; return the response."""
    return client.post("/add-checkpoint", content=data)


def cosigned(note: bytes, lines: bytes) -> bytes:
    """The checkpoint note with the witness's answer lines appended."""
    return note + lines


# -- request syntax ----------------------------------------------------------------------------

SPEC_EXAMPLE = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49"
    "/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
).encode()


def test_the_spec_example_request_parses_and_formats_back() -> None:
    request = parse_add_checkpoint(SPEC_EXAMPLE)
    assert request.old_size == 20852014
    assert len(request.proof) == 4
    assert request.checkpoint().size == 20852163
    assert len(request.note.signatures) == 2
    assert format_add_checkpoint(request) == SPEC_EXAMPLE


_NOTE = SPEC_EXAMPLE[SPEC_EXAMPLE.index(b"\n\n") + 2 :]
_HASH = base64.b64encode(bytes(32))
MALFORMED_BODIES = {
    "empty": b"",
    "no empty line": b"old 0\n" + _NOTE.replace(b"\n\n", b"\n"),
    "no old line": b"\n" + _NOTE,
    "old without space": b"old0\n\n" + _NOTE,
    "old with two spaces": b"old  0\n\n" + _NOTE,
    "old leading zero": b"old 01\n\n" + _NOTE,
    "old negative": b"old -1\n\n" + _NOTE,
    "old beyond int63": b"old 9223372036854775808\n\n" + _NOTE,
    "old in capitals": b"OLD 0\n\n" + _NOTE,
    "old with CR": b"old 0\r\n\n" + _NOTE,
    "proof not base64": b"old 0\nnot-base64!\n\n" + _NOTE,
    "proof of 31 bytes": b"old 0\n" + base64.b64encode(bytes(31)) + b"\n\n" + _NOTE,
    "proof unpadded": b"old 0\n" + _HASH.rstrip(b"=") + b"\n\n" + _NOTE,
    "64 proof lines": b"old 0\n" + (_HASH + b"\n") * 64 + b"\n" + _NOTE,
    "not ASCII before the note": "old ٣\n\n".encode() + _NOTE,
    "note without signature": b"old 0\n\nexample.com/x\n1\n" + _HASH + b"\n\n",
    "note not a checkpoint": b"old 0\n\nhello\n\n" + _NOTE.split(b"\n\n")[1],
    "note not UTF-8": b"old 0\n\n" + _NOTE.replace(b"sofa", b"sof\xff"),
    "note truncated": b"old 0\n\n" + _NOTE[:-1],
}


@pytest.mark.parametrize("case", sorted(MALFORMED_BODIES))
def test_malformed_bodies_are_refused_with_400(case: str, witness_http: TestClient) -> None:
    data = MALFORMED_BODIES[case]
    with pytest.raises(MalformedError):
        parse_add_checkpoint(data)
    response = post(witness_http, data)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("couldn't parse add-checkpoint request")


def test_63_proof_lines_are_accepted_by_the_parser() -> None:
    request = parse_add_checkpoint(b"old 1\n" + (_HASH + b"\n") * 63 + b"\n" + _NOTE)
    assert len(request.proof) == 63


# -- the cosignature ---------------------------------------------------------------------------


def test_the_cosignature_is_the_vector_byte_for_byte(tmp_path: Path) -> None:
    """shared/vectors/README.md, signed notes vector 3: same seeds and time, same line."""
    log_signer = Signer.from_seed("example.com/testlog", bytes(range(32)))
    witness_signer = CosignatureSigner.from_seed("witness.example.com/w1", bytes(range(32, 64)))
    assert witness_signer.vkey == (
        "witness.example.com/w1+969980cf+BCmsuuFBvMrwsi4alNNNC8c2HlJtC/4SyJeUvJMilm3X"
    )
    root = base64.b64decode("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=")
    note = sign_checkpoint(Checkpoint("example.com/testlog", 8, root), log_signer)
    state = JsonFileWitnessState(
        tmp_path / "state.json", witness_signer.verifier_key, create_missing=True
    )
    witness = Witness(witness_signer, [log_signer.verifier_key], state)
    (line,) = witness.add_checkpoint(parse_add_checkpoint(b"old 0\n\n" + note), 1_700_000_000)
    assert line.line() == (
        "— witness.example.com/w1 lpmAzwAAAABlU/EATGG2qL4btdK0clQDN0YPuOF7nG1HMpAzXjDNOMwuC53Rq"
        "LJ5hU9FR6XYqLD0uVGIiPZ/CglPQYdRXODtJ+00AA==\n"
    )


# -- the spec's answers, one by one -----------------------------------------------------------


def test_200_cosigns_the_first_checkpoint_of_a_log(witness_http: TestClient, log: Log) -> None:
    note = log.grow(5)
    response = post(witness_http, body(0, [], note))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    lines = response.content
    assert lines.startswith("— witness.example/w1 ".encode()) and lines.endswith(b"\n")
    assert lines.count(b"\n") == 1
    assert verify_cosignatures(cosigned(note, lines), [W1.verifier_key]) == {W1.verifier_key: T0}


def test_200_cosigns_a_consistent_successor(
    witness_http: TestClient, log: Log, clock: Clock
) -> None:
    assert post(witness_http, body(0, [], log.grow(5))).status_code == 200
    for step, count in enumerate((1, 7, 300, 2), 1):
        old = log.size
        note = log.grow(count)
        clock.now = T0 + step
        response = post(witness_http, body(old, log.proof(old), note))
        assert response.status_code == 200, response.text
        assert verify_cosignatures(cosigned(note, response.content), [W1.verifier_key]) == {
            W1.verifier_key: T0 + step
        }


def test_409_reports_the_witness_size_as_text_x_tlog_size(
    witness_http: TestClient, log: Log
) -> None:
    assert post(witness_http, body(0, [], log.grow(5))).status_code == 200
    note = log.grow(3)
    for wrong_old in (0, 4, 6, 8):
        response = post(witness_http, body(wrong_old, log.proof(wrong_old), note))
        assert response.status_code == 409, response.text
        assert response.headers["content-type"] == SIZE_CONTENT_TYPE
        assert response.content == b"5\n"
    assert post(witness_http, body(5, log.proof(5), note)).status_code == 200


def test_409_when_a_never_seen_log_is_sent_a_nonzero_old_size(
    witness_http: TestClient, log: Log
) -> None:
    note = log.grow(8)
    response = post(witness_http, body(4, log.proof(4), note))
    assert response.status_code == 409
    assert response.content == b"0\n"


def test_422_for_a_proof_that_does_not_verify(witness_http: TestClient, log: Log) -> None:
    assert post(witness_http, body(0, [], log.grow(5))).status_code == 200
    note = log.grow(6)
    proof = log.proof(5)
    tampered = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    for bad in (tampered, proof[:-1], [*proof, proof[0]], []):
        response = post(witness_http, body(5, bad, note))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert post(witness_http, body(5, proof, note)).status_code == 200


def test_422_for_a_proof_sent_with_old_size_zero(witness_http: TestClient, log: Log) -> None:
    note = log.grow(8)
    response = post(witness_http, body(0, log.proof(4)[:1], note))
    assert response.status_code == 422


def test_404_for_a_log_the_witness_does_not_know(witness_http: TestClient, tmp_path: Path) -> None:
    other = Log(tmp_path / "other.db", signer=make_signer("other.example/log"))
    response = post(witness_http, body(0, [], other.grow(3)))
    other.close()
    assert response.status_code == 404, response.text
    assert "not a log this witness knows" in response.json()["detail"]


def test_403_for_a_checkpoint_no_trusted_key_signed(
    witness_http: TestClient, log: Log, tmp_path: Path
) -> None:
    impostor = Signer.from_seed(ORIGIN, hashlib.sha256(b"impostor").digest())
    forged = Log(tmp_path / "forged.db", signer=impostor)
    response = post(witness_http, body(0, [], forged.grow(3)))
    forged.close()
    assert response.status_code == 403, response.text


def test_403_for_a_bad_signature_from_the_log_key(witness_http: TestClient, log: Log) -> None:
    note = parse_note(log.grow(3))
    line = note.signatures[0]
    broken = NoteSignature(line.name, line.key_id, bytes(64))
    response = post(witness_http, body(0, [], format_note(Note(note.text, (broken,)))))
    assert response.status_code == 403, response.text
    # A valid log signature does not excuse a bad one by the same key.
    both = format_note(Note(note.text, (line, broken)))
    assert post(witness_http, body(0, [], both)).status_code == 403


def test_unknown_signatures_are_ignored(witness_http: TestClient, log: Log) -> None:
    note = parse_note(log.grow(3))
    grease = NoteSignature("grease.example/x", b"\x01\x02\x03\x04", os.urandom(64))
    other_witness = W2.cosign(Checkpoint.parse(note.text), T0)
    extra = format_note(Note(note.text, (grease, *note.signatures, other_witness)))
    assert post(witness_http, body(0, [], extra)).status_code == 200


def test_400_when_old_exceeds_the_checkpoint_size(witness_http: TestClient, log: Log) -> None:
    note = log.grow(3)
    response = post(witness_http, body(4, [], note))
    assert response.status_code == 400
    assert "larger than the checkpoint" in response.json()["detail"]


def test_a_smaller_checkpoint_is_never_cosigned(witness_http: TestClient, log: Log) -> None:
    small = log.grow(5)
    old = log.size
    large = log.grow(5)
    assert post(witness_http, body(0, [], large)).status_code == 200
    assert post(witness_http, body(old, [], small)).status_code == 409
    assert post(witness_http, body(10, [], small)).status_code == 400


def test_resubmitting_the_same_checkpoint_is_cosigned_again(
    witness_http: TestClient, log: Log, clock: Clock
) -> None:
    """What a log does after a crash lost the first answer: 409, then old == size."""
    note = log.grow(5)
    assert post(witness_http, body(0, [], note)).status_code == 200
    retry = post(witness_http, body(0, [], note))
    assert (retry.status_code, retry.content) == (409, b"5\n")
    clock.now = T0 + 60
    again = post(witness_http, body(5, [], note))
    assert again.status_code == 200
    assert verify_cosignatures(cosigned(note, again.content), [W1.verifier_key]) == {
        W1.verifier_key: T0 + 60
    }
    assert post(witness_http, body(5, log.proof(4, 5)[:1], note)).status_code == 422


# -- split views -------------------------------------------------------------------------------


def test_a_split_view_of_equal_size_is_refused_and_kept_as_evidence(
    tmp_path: Path, log: Log, fork: Log
) -> None:
    settings = settings_for(tmp_path)
    honest, forked = log.grow(8), fork.grow(8)
    with TestClient(create_witness_app(settings)) as client:
        assert post(client, body(0, [], honest)).status_code == 200
        response = post(client, body(8, [], forked))
    # tlog-witness since C2SP PR #280: a same-size fork is an inconsistent request, 422.
    assert response.status_code == 422
    assert response.headers["content-type"] != SIZE_CONTENT_TYPE
    assert settings.evidence_dir is not None
    (kept,) = settings.evidence_dir.iterdir()
    proven = verify_evidence(parse_evidence(kept.read_bytes()), log.signer.verifier_key)
    assert proven.checkpoint1.root_hash != proven.checkpoint2.root_hash
    state = JsonFileWitnessState(settings.state_path, W1.verifier_key)
    stored = state.latest(ORIGIN)
    assert stored is not None and stored.note == honest


def test_a_checkpoint_that_does_not_extend_the_cosigned_one_is_refused(
    witness_http: TestClient, log: Log, fork: Log
) -> None:
    assert post(witness_http, body(0, [], log.grow(8))).status_code == 200
    forked = fork.grow(12)
    response = post(witness_http, body(8, fork.proof(8), forked))
    assert response.status_code == 422
    honest = log.grow(4)
    assert post(witness_http, body(8, log.proof(8), honest)).status_code == 200


def test_a_fork_cosigned_first_locks_the_honest_history_out(
    witness_http: TestClient, log: Log, fork: Log
) -> None:
    """The witness takes no side: whichever history it saw first, it refuses the other."""
    assert post(witness_http, body(0, [], fork.grow(3))).status_code == 200
    honest = log.grow(6)
    response = post(witness_http, body(3, log.proof(3, 6), honest))
    assert response.status_code == 422


# -- state, restarts and races -----------------------------------------------------------------


def test_restart_keeps_the_state(tmp_path: Path, log: Log, fork: Log) -> None:
    settings = settings_for(tmp_path)
    with TestClient(create_witness_app(settings)) as client:
        assert post(client, body(0, [], log.grow(8))).status_code == 200
    with TestClient(create_witness_app(settings)) as client:
        response = post(client, body(0, [], fork.grow(10)))
        assert (response.status_code, response.content) == (409, b"8\n")
        assert post(client, body(8, fork.proof(8), fork.view.latest().note)).status_code == 422
        grown = log.grow(3)
        assert post(client, body(8, log.proof(8, 11), grown)).status_code == 200


def test_state_file_format(tmp_path: Path, log: Log) -> None:
    path = tmp_path / "state.json"
    state = JsonFileWitnessState(path, W1.verifier_key, create_missing=True)
    note = log.grow(2)
    record = WitnessedCheckpoint(note, Checkpoint.parse(parse_note(note).text), T0)
    state.compare_and_swap(ORIGIN, None, record)
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "format": "amnesty-ledger.witness-state/v1",
        "witness": W1.vkey,
        "logs": {ORIGIN: {"checkpoint": note.decode(), "timestamp": T0}},
    }
    assert JsonFileWitnessState(path, W1.verifier_key).latest(ORIGIN) == record
    assert not list(tmp_path.glob(".state.json.*.tmp"))


def test_state_refuses_to_guess(tmp_path: Path, log: Log) -> None:
    path = tmp_path / "state.json"
    with pytest.raises(StorageError, match="does not exist"):
        JsonFileWitnessState(path, W1.verifier_key)
    JsonFileWitnessState(path, W1.verifier_key, create_missing=True)
    with pytest.raises(FatalError, match="belongs to witness"):
        JsonFileWitnessState(path, W2.verifier_key)
    path.write_text('{"format": "amnesty-ledger.witness-state/v1"', encoding="utf-8")
    with pytest.raises(FatalError, match="not UTF-8 JSON"):
        JsonFileWitnessState(path, W1.verifier_key, create_missing=True)
    note = log.grow(1).decode()
    for bad_record in (
        {"checkpoint": note, "timestamp": -1},
        {"checkpoint": note, "timestamp": True},
        {"checkpoint": note},
        {"checkpoint": note.replace("\n\n", "\n"), "timestamp": 1},
    ):
        state = {"format": "amnesty-ledger.witness-state/v1", "witness": W1.vkey}
        path.write_text(json.dumps({**state, "logs": {ORIGIN: bad_record}}), encoding="utf-8")
        with pytest.raises(FatalError, match="couldn't load witness state"):
            JsonFileWitnessState(path, W1.verifier_key)
    mislabelled = {"format": "amnesty-ledger.witness-state/v1", "witness": W1.vkey}
    mislabelled["logs"] = {"other.example/log": {"checkpoint": note, "timestamp": 1}}  # type: ignore[assignment]
    path.write_text(json.dumps(mislabelled), encoding="utf-8")
    with pytest.raises(FatalError, match="holds a checkpoint of"):
        JsonFileWitnessState(path, W1.verifier_key)


def test_compare_and_swap_refuses_a_stale_expectation(tmp_path: Path, log: Log) -> None:
    path = tmp_path / "state.json"
    first = JsonFileWitnessState(path, W1.verifier_key, create_missing=True)
    second = JsonFileWitnessState(path, W1.verifier_key)  # another process, in effect
    note2, note4 = log.grow(2), log.grow(2)
    record2 = WitnessedCheckpoint(note2, Checkpoint.parse(parse_note(note2).text), T0)
    record4 = WitnessedCheckpoint(note4, Checkpoint.parse(parse_note(note4).text), T0)
    first.compare_and_swap(ORIGIN, None, record2)
    with pytest.raises(ConflictError, match="holds size 2, not the expected size none"):
        second.compare_and_swap(ORIGIN, None, record4)
    second.compare_and_swap(ORIGIN, record2, record4)
    with pytest.raises(ConflictError):
        first.compare_and_swap(ORIGIN, record2, record2)
    assert first.latest(ORIGIN) == record4


class _RacingState:
    """A state whose first swap is preceded by another request's complete add-checkpoint:
    the interleaving of the spec's rollback race (A checked, then B checked and persisted)."""

    def __init__(self, inner: JsonFileWitnessState, race: Witness, racer: bytes) -> None:
        self.inner = inner
        self.race = race
        self.racer = racer
        self.raced = False

    def latest(self, origin: str) -> WitnessedCheckpoint | None:
        return self.inner.latest(origin)

    def compare_and_swap(
        self, origin: str, old: WitnessedCheckpoint | None, new: WitnessedCheckpoint
    ) -> None:
        if not self.raced:
            self.raced = True
            self.race.add_checkpoint(parse_add_checkpoint(self.racer), T0)
        self.inner.compare_and_swap(origin, old, new)


def test_the_spec_rollback_race_cannot_happen(tmp_path: Path, log: Log) -> None:
    path = tmp_path / "state.json"
    keys = [log.signer.verifier_key]
    base = Witness(W1, keys, JsonFileWitnessState(path, W1.verifier_key, create_missing=True))
    base.add_checkpoint(parse_add_checkpoint(body(0, [], log.grow(4))), T0)
    size_n = log.grow(2)  # request A: 4 -> 6
    size_nk = log.grow(4)  # request B: 4 -> 10
    racer = Witness(W1, keys, JsonFileWitnessState(path, W1.verifier_key))
    state = _RacingState(
        JsonFileWitnessState(path, W1.verifier_key), racer, body(4, log.proof(4, 10), size_nk)
    )
    slow = Witness(W1, keys, state)
    with pytest.raises(OldSizeMismatchError) as caught:
        slow.add_checkpoint(parse_add_checkpoint(body(4, log.proof(4, 6), size_n)), T0)
    assert caught.value.latest_size == 10
    stored = JsonFileWitnessState(path, W1.verifier_key).latest(ORIGIN)
    assert stored is not None and stored.checkpoint.size == 10


def test_racing_forks_get_exactly_one_cosignature(tmp_path: Path, log: Log, fork: Log) -> None:
    path = tmp_path / "state.json"
    JsonFileWitnessState(path, W1.verifier_key, create_missing=True)
    keys = [log.signer.verifier_key]
    # Each thread has its own state object (its own lock file descriptor), as processes would.
    witnesses = [Witness(W1, keys, JsonFileWitnessState(path, W1.verifier_key)) for _ in range(8)]
    notes = [log.grow(5), fork.grow(5)]
    outcomes: list[object] = [None] * 8
    start = threading.Barrier(8)

    def submit(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = witnesses[i].add_checkpoint(
                parse_add_checkpoint(body(0, [], notes[i % 2])), T0
            )
        except OldSizeMismatchError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, o in enumerate(outcomes) if isinstance(o, tuple)]
    assert len(winners) == 1, outcomes
    assert all(
        isinstance(o, OldSizeMismatchError) and o.latest_size == 5
        for i, o in enumerate(outcomes)
        if i != winners[0]
    )
    stored = JsonFileWitnessState(path, W1.verifier_key).latest(ORIGIN)
    assert stored is not None and stored.note == notes[winners[0] % 2]


def test_a_clock_that_went_back_is_refused(tmp_path: Path, log: Log, clock: Clock) -> None:
    settings = settings_for(tmp_path, clock=clock)
    with TestClient(create_witness_app(settings)) as client:
        assert post(client, body(0, [], log.grow(2))).status_code == 200
        clock.now = T0 - 1
        grown = log.grow(1)
        response = post(client, body(2, log.proof(2, 3), grown))
        assert response.status_code == 503
        assert "is before" in response.json()["detail"]
        clock.now = T0
        assert post(client, body(2, log.proof(2, 3), log.view.latest().note)).status_code == 200
    with pytest.raises(StaleTimestampError):
        Witness(
            W1,
            [log.signer.verifier_key],
            JsonFileWitnessState(settings.state_path, W1.verifier_key),
        ).add_checkpoint(parse_add_checkpoint(body(3, [], log.view.latest().note)), T0 - 5)


def test_core_errors_name_the_checkpoint(tmp_path: Path, log: Log) -> None:
    witness = Witness(
        W1,
        [log.signer.verifier_key],
        JsonFileWitnessState(tmp_path / "s.json", W1.verifier_key, create_missing=True),
    )
    note = log.grow(3)
    with pytest.raises(
        ProofError, match=re.escape(f"couldn't add checkpoint of '{ORIGIN}' size 3")
    ):
        witness.add_checkpoint(parse_add_checkpoint(body(0, [EMPTY_ROOT], note)), T0)
    stranger = Log(tmp_path / "x.db", signer=make_signer("x.example/log"))
    with pytest.raises(UnknownLogError, match=re.escape(f"known: {ORIGIN}")):
        witness.add_checkpoint(parse_add_checkpoint(body(0, [], stranger.grow(1))), T0)
    stranger.close()
    with pytest.raises(MalformedError, match="timestamp"):
        witness.add_checkpoint(parse_add_checkpoint(body(0, [], note)), -1)
    with pytest.raises(MalformedError, match="not 0x01"):
        Witness(W1, [W2.verifier_key], JsonFileWitnessState(tmp_path / "s.json", W1.verifier_key))


def test_http_edges(witness_http: TestClient, log: Log) -> None:
    too_big = witness_http.post("/add-checkpoint", content=b"old 0\n" + b"x" * 70_000)
    assert too_big.status_code == 413
    assert witness_http.get("/add-checkpoint").status_code == 405
    assert witness_http.post("/checkpoint", content=b"").status_code == 404


def test_a_submission_prefix(tmp_path: Path, log: Log) -> None:
    base = settings_for(tmp_path)
    settings = WitnessSettings(
        key_path=base.key_path,
        state_path=base.state_path,
        log_vkeys=base.log_vkeys,
        prefix="/witness/v1",
        create_state=True,
        clock=Clock(),
    )
    with TestClient(create_witness_app(settings)) as client:
        assert client.post(
            "/witness/v1/add-checkpoint", content=body(0, [], log.grow(1))
        ).is_success
        assert client.post("/add-checkpoint", content=b"").status_code == 404


# -- a real witness server and the log-side client --------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def live_witness(settings: WitnessSettings) -> Iterator[str]:
    """Serve the witness app with uvicorn on a loopback port in a thread; yield its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_witness_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name=f"witness-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the witness on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_real_witnesses_cosign_a_growing_log_to_a_policy_quorum(tmp_path: Path, log: Log) -> None:
    clock1, clock2 = Clock(), Clock()
    s1 = settings_for(tmp_path, signer=W1, clock=clock1, name="w1")
    s2 = settings_for(tmp_path, signer=W2, clock=clock2, name="w2")
    policy = parse_policy(
        f"log {log.signer.vkey}\n"
        f"witness w1 {W1.vkey}\n"
        f"witness w2 {W2.vkey}\n"
        "group both 2 w1 w2\n"
        "quorum both\n"
    )
    one_of_two = parse_policy(
        f"log {log.signer.vkey}\nwitness w1 {W1.vkey}\nwitness w2 {W2.vkey}\n"
        "group any-one any w1 w2\nquorum any-one\n"
    )
    with live_witness(s1) as url1, live_witness(s2) as url2, httpx.Client() as http:
        known = {url1: 0, url2: 0}  # the size each witness last cosigned, as the log knows it
        for step, count in enumerate((1, 4, 250, 7, 1), 1):
            note = log.grow(count)
            size = log.size
            clock1.now = clock2.now = T0 + step
            merged = parse_note(note)
            for url, key in ((url1, W1.vkey), (url2, W2.vkey)):
                line = request_cosignature(
                    url,
                    key,
                    note,
                    known[url],
                    log.proof(known[url]) if known[url] else [],
                    prove=log.proof,  # from m to the latest size, this checkpoint's
                    client=http,
                )
                known[url] = size
                merged = merged.with_signature(line)
            served = format_note(merged)
            assert verify_cosignatures(served, policy.witness_keys()) == {
                W1.verifier_key: T0 + step,
                W2.verifier_key: T0 + step,
            }
            assert open_witnessed_checkpoint(served, policy).size == size
            # The log's own signature is untouched by the merge.
            assert parse_note(served).signatures[0] == parse_note(note).signatures[0]
        only_w1 = format_note(
            Note(merged.text, tuple(s for s in merged.signatures if s.name != W2.verifier_key.name))
        )
        with pytest.raises(SignatureError, match="quorum 'both' is not met"):
            open_witnessed_checkpoint(only_w1, policy)
        assert open_witnessed_checkpoint(only_w1, one_of_two).size == log.size


def test_the_client_follows_a_409_to_the_witness_size(tmp_path: Path, log: Log) -> None:
    with live_witness(settings_for(tmp_path)) as url:
        request_cosignature(url, W1.vkey, log.grow(10), 0, [])
        note = log.grow(5)
        sent: list[bytes] = []

        def record(request: httpx.Request) -> None:
            sent.append(request.read())

        with httpx.Client(event_hooks={"request": [record]}) as http:
            line = request_cosignature(
                url, W1.vkey, note, 0, [], prove=lambda m: log.proof(m, 15), client=http
            )
        assert [s.split(b"\n", 1)[0] for s in sent] == [b"old 0", b"old 10"]
        assert verify_cosignatures(note + line.line().encode(), [W1.verifier_key])
        # Without a proof function the 409 is the caller's to handle.
        with pytest.raises(OldSizeMismatchError) as caught:
            request_cosignature(url, W1.vkey, log.grow(1), 0, [])
        assert caught.value.latest_size == 15


def test_the_client_reports_what_the_witness_refused(tmp_path: Path, log: Log, fork: Log) -> None:
    with live_witness(settings_for(tmp_path)) as url:
        honest = log.grow(8)
        request_cosignature(url, W1.vkey, honest, 0, [])
        # A split view: same size, another root.
        with pytest.raises(ConflictingRootError):
            request_cosignature(url, W1.vkey, fork.grow(8), 8, [], prove=fork.proof)
        # The witness holds a larger tree than this (stale) checkpoint.
        stale = log.view.checkpoint_at(8).note
        log.grow(4)
        request_cosignature(url, W1.vkey, log.view.latest().note, 8, log.proof(8))
        with pytest.raises(OldSizeMismatchError, match="larger than this checkpoint"):
            request_cosignature(url, W1.vkey, stale, 0, [], prove=log.proof)
        # An inconsistent proof: 422 with the problem document.
        with pytest.raises(RemoteError) as caught:
            request_cosignature(url, W1.vkey, log.grow(1), 12, [EMPTY_ROOT] * 4)
        assert caught.value.status == 422
        # A witness whose answer does not verify under the key we trust is refused.
        with pytest.raises(SignatureError, match="no line from"):
            request_cosignature(url, W2.vkey, log.grow(1), 12, log.proof(12))
        unknown = Log(tmp_path / "unknown.db", signer=make_signer("unknown.example/log"))
        with pytest.raises(RemoteError) as caught:
            request_cosignature(url, W1.vkey, unknown.grow(1), 0, [])
        unknown.close()
        assert caught.value.status == 404
    with pytest.raises(StorageError, match="couldn't send"):
        request_cosignature(url, W1.vkey, log.grow(1), 14, log.proof(14), timeout=2)


def test_the_client_rejects_a_forged_cosignature(log: Log) -> None:
    note = log.grow(3)
    checkpoint = Checkpoint.parse(parse_note(note).text)
    good = W1.cosign(checkpoint, T0)
    forged = NoteSignature(
        good.name, good.key_id, good.signature[:-1] + bytes([good.signature[-1] ^ 1])
    )

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=forged.line().encode())

    with (
        httpx.Client(transport=httpx.MockTransport(answer)) as http,
        pytest.raises(SignatureError, match="Ed25519 verification failed"),
    ):
        request_cosignature("http://witness.invalid", W1.vkey, note, 0, [], client=http)

    def wrong_type(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, content=b"2\n", headers={"content-type": "text/plain"})

    with (
        httpx.Client(transport=httpx.MockTransport(wrong_type)) as http,
        pytest.raises(MalformedError, match="content type"),
    ):
        request_cosignature("http://witness.invalid", W1.vkey, note, 0, [], client=http)


def test_restarted_server_remembers(tmp_path: Path, log: Log) -> None:
    settings = settings_for(tmp_path)
    with live_witness(settings) as url:
        request_cosignature(url, W1.vkey, log.grow(6), 0, [])
    with live_witness(settings) as url:
        with pytest.raises(OldSizeMismatchError) as caught:
            request_cosignature(url, W1.vkey, log.grow(1), 0, [])
        assert caught.value.latest_size == 6


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_keygen_then_serve(tmp_path: Path, log: Log) -> None:
    key = tmp_path / "witness.key"
    result = CliRunner().invoke(
        build_app(), ["witness", "keygen", "witness.example/cli", "--out", str(key), "--json"]
    )
    assert result.exit_code == 0, result.output
    vkey = json.loads(result.stdout)["vkey"]
    assert vkey.startswith("witness.example/cli+")
    assert CosignatureSigner.parse_private_key(key.read_text().strip()).vkey == vkey
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    again = CliRunner().invoke(build_app(), ["witness", "keygen", "x", "--out", str(key)])
    assert again.exit_code == 2

    port = free_port()
    state = tmp_path / "cli-state.json"
    command = [
        sys.executable, "-m", "ledger", "witness", "serve",
        "--key", str(key), "--state", str(state),
        "--log", log.signer.vkey, "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    output = tmp_path / "serve.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=sink)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.post(f"{url}/add-checkpoint", content=b"", timeout=1).status_code == 400:
                    break
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
        note = log.grow(4)
        line = request_cosignature(url, vkey, note, 0, [])
        assert verify_cosignatures(note + line.line().encode(), [VerifierKey.parse(vkey)])
    finally:
        process.terminate()
        process.wait(15)
    assert "created a new, empty witness state" in output.read_text()
    stored = JsonFileWitnessState(state, VerifierKey.parse(vkey)).latest(ORIGIN)
    assert stored is not None and stored.checkpoint.size == 4


def test_cli_serve_refuses_bad_configuration(tmp_path: Path) -> None:
    key = write_key(tmp_path / "w.key", W1)
    runner = CliRunner()
    bad_log = runner.invoke(
        build_app(),
        ["witness", "serve", "--key", str(key), "--state", str(tmp_path / "s.json"),
         "--log", W2.vkey],
    )  # fmt: skip
    assert bad_log.exit_code == 2
    assert "not 0x01" in bad_log.output
    missing_key = runner.invoke(
        build_app(),
        ["witness", "serve", "--key", str(tmp_path / "none.key"),
         "--state", str(tmp_path / "s.json"), "--log", make_signer().vkey],
    )  # fmt: skip
    assert missing_key.exit_code == 2
    assert "couldn't read witness key" in missing_key.output


# -- docs/WITNESS.md ----------------------------------------------------------------------------


def test_the_policy_example_in_the_doc_parses_and_means_two_of_three() -> None:
    doc = (REPO / "docs" / "WITNESS.md").read_text(encoding="utf-8")
    match = re.search(r"```\n(# The amnesty log.*?)```", doc, re.DOTALL)
    assert match is not None
    policy = parse_policy(match.group(1))
    log_signer = Signer.from_seed("amnesty.example.org/log", hashlib.sha256(b"doc log").digest())
    names = ("witness.example.org/w1", "witness.example.net/w2", "witness.example.com/w3")
    cosigners = [CosignatureSigner.from_seed(n, hashlib.sha256(n.encode()).digest()) for n in names]
    assert [w.key for w in policy.witnesses] == [c.verifier_key for c in cosigners]
    assert [entry.key for entry in policy.logs] == [log_signer.verifier_key]
    checkpoint = Checkpoint("amnesty.example.org/log", 3, EMPTY_ROOT)
    note = parse_note(sign_checkpoint(checkpoint, log_signer))
    one = note.with_signature(cosigners[0].cosign(checkpoint, T0))
    with pytest.raises(SignatureError, match="quorum 'two-of-three' is not met"):
        open_witnessed_checkpoint(format_note(one), policy)
    two = one.with_signature(cosigners[2].cosign(checkpoint, T0))
    assert open_witnessed_checkpoint(format_note(two), policy) == checkpoint


def test_c2sp_pr_280_a_size_zero_checkpoint_must_carry_the_empty_root(
    witness_http: TestClient,
) -> None:
    """tlog-witness as amended by C2SP PR #280: a size-0 checkpoint whose root is not the
    empty tree's is an inconsistent request (422), and so is a proof sent with ``old 0``."""
    signer = make_signer()
    wrong = sign_checkpoint(Checkpoint(ORIGIN, 0, b"\x01" * 32), signer)
    response = post(witness_http, body(0, [], wrong))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] != SIZE_CONTENT_TYPE
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), signer)
    assert post(witness_http, body(0, [EMPTY_ROOT], empty)).status_code == 422
    assert post(witness_http, body(0, [], empty)).status_code == 200


def test_a_witness_with_both_key_types_answers_both_lines(tmp_path: Path, log: Log) -> None:
    """One name, a 0x04 and a 0x06 key: every cosignature comes as two lines, each verifying
    under its key (cosignature/v1 and subtree/v1), over HTTP."""
    pq = CosignatureSigner.from_seed(W1.name, hashlib.sha256(b"w1-pq").digest(), ALG_MLDSA44)
    settings = settings_for(tmp_path)
    settings.key_path.write_text(W1.private_key_text() + "\n" + pq.private_key_text() + "\n")
    note = log.grow(3)
    with TestClient(create_witness_app(settings)) as client:
        response = post(client, body(0, [], note))
    assert response.status_code == 200, response.text
    assert len(response.text.splitlines()) == 2
    keys = [W1.verifier_key, pq.verifier_key]
    assert set(verify_cosignatures(cosigned(note, response.content), keys)) == set(keys)
