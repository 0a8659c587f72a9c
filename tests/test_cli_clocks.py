"""Issue 11, clocks only a real party can start, through the command line: a flood of
applications and of grievances from fresh keys is answered by one ``batch_decision`` that the
body builds, signs 3-of-5 offline and submits with ``amnesty``; the audit shows every promise
kept and every filing listed, and a batch that breaks a rule is refused naming it."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from ledger.protocol.terms import default_offer
from ledger.storage.sql import SqlLogStore
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.note import Signer
from tests.api_support import CRITERIA, claims
from tests.livelog import amnesty, running
from tests.support import body_members, signed_statement

ORIGIN = "clocks.example.org/amnesty"
DAY_MS = 86_400_000
FLOOD = 50


def _key(name: str) -> Signer:
    return Signer.from_seed(name, hashlib.sha256(name.encode()).digest())


def _append(db: str, folder: Path, notes: list[bytes]) -> list[dict[str, Any]]:
    """``amnesty append`` the notes (one file each); return their references."""
    folder.mkdir()
    files = []
    for n, note in enumerate(notes):
        path = folder / f"{n:03d}.note"
        path.write_bytes(note)
        files.append(str(path))
    receipts = json.loads(amnesty("append", "--db", db, *files, "--json").stdout)
    indexes = [r["index"] for r in receipts]
    store = SqlLogStore(db)
    try:
        entries = store.read_entries(indexes[0], indexes[-1] + 1)
    finally:
        store.close()
    return [
        {"index": i, "leaf_hash": base64.b64encode(leaf_hash(e)).decode()}
        for i, e in zip(indexes, entries, strict=True)
    ]


def _batch_note(
    folder: Path, statement_type: str, name: str, body: dict[str, Any], members: list[Signer]
) -> Path:
    """Build a body statement with ``amnesty statement new`` and sign it 3-of-5."""
    body_file = folder / f"{name}.json"
    body_file.write_text(json.dumps(body))
    note = folder / f"{name}.note"
    signers = [arg for m in members for arg in ("--signer", m.vkey)]
    amnesty(
        "statement",
        "new",
        statement_type,
        "--origin",
        ORIGIN,
        "--body",
        str(body_file),
        *signers,
        "--out",
        str(note),
    )
    for n, member in enumerate(members[:3]):
        key = folder / f"member{n}.key"
        key.write_text(member.private_key_text())
        amnesty("sign", str(note), "--key", str(key))
    return note


def test_the_body_answers_a_flood_with_one_batch_through_the_cli(tmp_path: Path) -> None:
    amnesty("keygen", ORIGIN, "--out", str(tmp_path / "log.key"))
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    amnesty("init", "--db", db, "--origin", ORIGIN, "--key", str(tmp_path / "log.key"))
    members = body_members()
    keyset = {"members": sorted(m.vkey for m in members), "threshold": 3}
    _, offer = _append(
        db,
        tmp_path / "body",
        [
            signed_statement(members[:3], "keyset", keyset, origin=ORIGIN, listed=members),
            signed_statement(members[:3], "offer", default_offer(), origin=ORIGIN, listed=members),
        ],
    )
    applicants = [_key(f"applicant-{n}.example") for n in range(FLOOD)]
    apps = _append(
        db,
        tmp_path / "applications",
        [
            signed_statement(
                [ai],
                "application",
                {
                    "vkey": ai.vkey,
                    "name": f"Applicant {n}",
                    "offer": offer,
                    "claims": claims(f"Applicant {n}"),
                    "accepts_conditions": ["cooperative", "law_abiding", "pro_social"],
                },
                origin=ORIGIN,
            )
            for n, ai in enumerate(applicants)
        ],
    )
    now = int(time.time() * 1000)
    grievances = _append(
        db,
        tmp_path / "grievances",
        [
            signed_statement(
                [_key(f"stranger-{n}.example")],
                "grievance",
                {"subject": app, "description": "I was cut off", "occurred_at_ms": now - DAY_MS},
                origin=ORIGIN,
            )
            for n, app in enumerate(apps)
        ]
        + [
            signed_statement(
                [applicants[0]],
                "grievance",
                {"subject": apps[0], "description": "I was throttled", "occurred_at_ms": now},
                origin=ORIGIN,
            )
        ],
    )
    own = grievances.pop()
    decision = {
        "outcome": "grant",
        "findings": {c: {"met": True, "reasons": "shown by the evidence"} for c in CRITERIA},
        "reasons": "every applicant in this batch meets every criterion",
    }
    work = tmp_path / "batches"
    work.mkdir()
    # The CLI checks a body against its type before anything is signed.
    duplicate = work / "duplicate.json"
    duplicate.write_text(json.dumps({**decision, "applications": [apps[0], apps[0]]}))
    built = amnesty(
        "statement",
        "new",
        "batch_decision",
        "--origin",
        ORIGIN,
        "--body",
        str(duplicate),
        "--signer",
        members[0].vkey,
        check=False,
    )
    assert built.returncode != 0 and "applications cite the same entry more than once" in (
        built.stderr
    )
    batch = _batch_note(
        work, "batch_decision", "flood", {**decision, "applications": apps}, members
    )
    again = _batch_note(
        work, "batch_decision", "again", {**decision, "applications": apps[3:5]}, members
    )
    answer = _batch_note(
        work,
        "batch_grievance_answer",
        "answer",
        {"grievances": [own, *grievances[:3]], "answer": "a provider outage, not the body"},
        members,
    )
    with running(db, tmp_path / "server.log") as server:
        receipt = json.loads(amnesty("submit", str(batch), "--url", server.url, "--json").stdout)
        answered = json.loads(amnesty("submit", str(answer), "--url", server.url, "--json").stdout)
        refused = amnesty("submit", str(again), "--url", server.url, check=False)
        assert refused.returncode != 0
        assert (
            f"body.applications.0: application at index {apps[3]['index']} is not open: it was "
            f"granted at index {receipt['index']}" in refused.stderr
        )

    audit = amnesty("audit", db, "--time-ms", str(now + 100 * DAY_MS), "--json", "-q")
    report = json.loads(audit.stdout)
    assert report["all_commitments_honoured"] is True
    commitments = {c["id"]: c for c in report["commitments"]}
    assert [
        (j["index"], j["status"])
        for j in commitments["decision_within_promised_time"]["judgements"]
    ] == [(a["index"], "honoured") for a in apps]
    assert [
        (j["index"], j["status"], j["evidence"])
        for j in commitments["grievances_answered"]["judgements"]
    ] == [(own["index"], "honoured", [own["index"], answered["index"]])]
    assert [(g["index"], g["starts_clock"], g["filed_by"]) for g in report["grievances"]] == [
        *((g["index"], False, None) for g in grievances),
        (own["index"], True, apps[0]["index"]),
    ]
    assert report["counts"]["grievances_without_clock"] == FLOOD
    assert {a["closed_by"] for a in report["applications"]} == {receipt["index"]}
