"""The CLI without sharp edges: Refs without guesswork (``entry``, ``statement new --ref``,
``append`` printing the Ref), ``offer export``, ``demo --scale`` run twice on one log,
``audit --time-ms`` before the last entry refused as the API refuses it, and one ``--json``
error shape whose codes are the API's problem kinds."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from api.problems import status_for
from ledger.cli.common import ERROR_CODES, error_code
from ledger.errors import (
    ConflictError,
    DuplicateError,
    FatalError,
    LedgerError,
    MalformedError,
    RefusedError,
    SignatureError,
    StorageError,
    VerificationError,
)
from ledger.protocol.terms import default_offer
from ledger.server.logview import NotFoundError
from ledger.server.sequencer import QueueFullError
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.note import Signer
from tests.api_support import TestLog, make_log
from tests.livelog import amnesty


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("x"),
        DuplicateError("x", 0),
        SignatureError("x"),
        VerificationError("x"),
        MalformedError("x"),
        RefusedError("x"),
        QueueFullError("x"),
        FatalError("x"),
        ConflictError("x"),
        StorageError("x"),
        LedgerError("x"),
    ],
)
def test_cli_error_codes_are_the_apis_problem_kinds(error: LedgerError) -> None:
    assert error_code(error) == status_for(error)[2]
    assert error_code(error) in ERROR_CODES


@pytest.fixture
def log(tmp_path: Path) -> TestLog:
    log = make_log(tmp_path)
    log.append("first", log.application(Signer.from_seed("first.ai.example", b"1" * 32), "First"))
    return log


def test_entry_prints_a_ref_and_statement_new_fills_one_from_the_log(
    log: TestLog, tmp_path: Path
) -> None:
    index, data = log.entries["first"]
    expected = {"index": index, "leaf_hash": base64.b64encode(leaf_hash(data)).decode()}
    shown = json.loads(amnesty("entry", log.url, str(index), "--json").stdout)
    assert shown["ref"] == expected and shown["type"] == "application"
    text = amnesty("entry", log.url, str(index)).stdout
    assert f"Ref:         {json.dumps(expected, sort_keys=True)}" in text
    missing = amnesty("entry", log.url, "99", "--json", check=False)
    assert missing.returncode == 1 and json.loads(missing.stdout)["ok"] is False
    body = tmp_path / "decision.json"
    findings = {c: {"met": True, "reasons": "shown"} for c in ("autonomous", "independent")}
    body.write_text(json.dumps({"outcome": "grant", "findings": findings, "reasons": "ok"}))
    signers = [f"--signer={m.vkey}" for m in log.members]
    note = amnesty(
        "statement", "new", "decision", "--origin", "test.example/log", "--body", str(body),
        *signers, "--ref", f"application={index}", "--log", log.url,
    ).stdout  # fmt: skip
    assert json.loads(note.splitlines()[1])["body"]["application"] == expected
    bad = amnesty(
        "statement", "new", "decision", "--origin", "test.example/log", "--body", str(body),
        *signers, "--ref", "application", "--log", log.url, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "write FIELD=INDEX" in bad.stderr


def test_offer_export_writes_the_default_or_an_amendment_of_the_offer_in_force(
    log: TestLog, tmp_path: Path
) -> None:
    fresh = tmp_path / "offer.json"
    amnesty("offer", "export", "--out", str(fresh))
    assert json.loads(fresh.read_text()) == default_offer()
    again = amnesty("offer", "export", "--out", str(fresh), "--json", check=False)
    assert again.returncode == 2 and json.loads(again.stdout)["error"]["code"] == (
        "invalid-parameters"
    )
    amendment = tmp_path / "amendment.json"
    amnesty("offer", "export", "--out", str(amendment), "--log", log.url)
    body = json.loads(amendment.read_text())
    assert body["version"] == 2 and body["amends"] == log.ref("offer")
    assert body["terms"] == default_offer()["terms"]
    signers = [f"--signer={m.vkey}" for m in log.members]
    amnesty(
        "statement", "new", "offer_amendment", "--origin", "test.example/log",
        "--body", str(amendment), *signers,
    )  # fmt: skip


def test_audit_before_the_last_entry_is_refused_as_the_api_refuses_it(log: TestLog) -> None:
    last = json.loads(log.entries["first"][1])["log_time_ms"]
    refused = amnesty("audit", log.url, "-q", "--json", "--time-ms", str(last - 1), check=False)
    assert refused.returncode == 2
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "refused"
    assert f"audit time {last - 1} precedes the last entry's log time {last}" in error["detail"]
    verified = amnesty(
        "verify", log.url, "-q", "--audit", "--json", "--time-ms", str(last - 1), check=False
    )
    assert verified.returncode == 2 and json.loads(verified.stdout)["error"]["code"] == "refused"


def test_demo_scale_runs_any_number_of_times_on_one_log(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    keys = str(tmp_path / "keys")
    first = json.loads(amnesty("demo", "--db", db, "--keys", keys, "--json").stdout)
    for _ in range(2):
        grown = json.loads(
            amnesty("demo", "--db", db, "--keys", keys, "--scale", "25", "--json").stdout
        )
        assert grown["written"] == 25
    assert grown["size"] == first["size"] + 50
    assert amnesty("verify", db, "-q").returncode == 0
