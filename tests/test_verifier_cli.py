"""The verifier's commands end to end: verify, export, mirror, proof, evidence and monitor, on a
database, a static mirror directory and a live HTTP server."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from typer.testing import CliRunner

from ledger.cli.main import build_app
from ledger.tlog.note import ALG_MLDSA44, Signer
from ledger.tlog.tlogproof import format_tlog_proof, parse_tlog_proof
from ledger.verifier.evidence import parse_evidence
from tests.livelog import Attester, make_demo_log, running
from tests.verifier_logs import LogBuilder, granted_log, sqlite_url, subject_key

runner = CliRunner()
SUBJECT = subject_key("prometheus-7")  # the subject of granted_log, whose application is entry 2


def amnesty(*args: str) -> Any:
    return runner.invoke(build_app(), list(args), catch_exceptions=False)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[tuple[LogBuilder, str, str]]:
    builder, _key, _subject = granted_log(sqlite_url(tmp_path), attestations=296)
    yield builder, builder.url, builder.log_signer.vkey
    builder.close()


def test_verify_a_database_with_state_and_audit(
    log: tuple[LogBuilder, str, str], tmp_path: Path
) -> None:
    builder, db, vkey = log
    state = tmp_path / "trust.json"
    first = amnesty("verify", db, "--json", "--quiet", "--state", str(state), "--audit")
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)
    assert result["ok"] and result["entries_verified"] == 300 and result["start_size"] == 0
    assert result["precedent"]["all_commitments_honoured"] is True
    assert result["precedent"]["checkpoint"]["size"] == 300
    assert json.loads(state.read_text())["format"] == "amnesty-ledger.verifier-state/v1"

    builder.attest(SUBJECT, 2, 20, first=3000)
    second = amnesty("verify", db, "--vkey", vkey, "--state", str(state), "--quiet")
    assert second.exit_code == 0, second.output
    assert "OK: " in second.stdout and "20 new entries (from size 300)" in second.stdout


def test_export_mirror_and_verify_the_directory(
    log: tuple[LogBuilder, str, str], tmp_path: Path
) -> None:
    builder, db, vkey = log
    mirror = tmp_path / "mirror"
    exported = amnesty("export", db, str(mirror), "--quiet", "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["size"] == 300
    for name in ("checkpoint", "README.md", "precedent.json", "precedent.txt", "tile/entries/000"):
        assert (mirror / name).is_file(), name
    assert vkey in (mirror / "README.md").read_text()
    assert sorted(p.name for p in (mirror / "schemas").glob("*.json")) == sorted(
        p.name for p in (Path(__file__).resolve().parents[1] / "schemas").glob("*.json")
    )
    again = amnesty("export", db, str(mirror), "--quiet")
    assert again.exit_code == 2 and "already holds a log" in again.output

    verified = amnesty("verify", str(mirror), "--vkey", vkey, "--quiet")
    assert verified.exit_code == 0, verified.output
    assert "300 entries" in verified.stdout

    builder.attest(SUBJECT, 2, 250, first=4000)
    updated = amnesty("mirror", db, str(mirror), "--quiet", "--json")
    assert updated.exit_code == 0, updated.output
    summary = json.loads(updated.stdout)
    assert (summary["start_size"], summary["entries_verified"], summary["size"]) == (300, 250, 550)
    assert (mirror / "checkpoint").read_bytes() == builder.store.checkpoint()
    assert not (mirror / ".amnesty" / "staging").exists()
    assert amnesty("verify", str(mirror), "--vkey", vkey, "-q").exit_code == 0

    # A mirror refuses to follow a log that forked away from it, and keeps the evidence.
    fork, key, subject = granted_log(sqlite_url(tmp_path, "fork.db"), attestations=0)
    fork.attest(key, subject, 600, first=70_000)
    before = (mirror / "checkpoint").read_bytes()
    refused = amnesty("mirror", fork.url, str(mirror), "--quiet", "--json")
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["split_view"] is True
    assert (mirror / ".amnesty" / "split-view.json").is_file()
    assert (mirror / "checkpoint").read_bytes() == before
    fork.close()


def test_offline_proofs_carry_the_statement(
    log: tuple[LogBuilder, str, str], tmp_path: Path
) -> None:
    _builder, db, vkey = log
    got = amnesty("proof", "get", db, "3")
    assert got.exit_code == 0, got.output
    proof_file = tmp_path / "decision.tlog-proof"
    proof_file.write_bytes(got.stdout_bytes)
    entry = json.loads(parse_tlog_proof(got.stdout_bytes).extra)
    statement = tmp_path / "decision.note"
    statement.write_text(entry["statement"])

    verified = amnesty(
        "proof", "verify", str(proof_file), "--vkey", vkey, "--statement", str(statement), "--json"
    )
    assert verified.exit_code == 0, verified.output
    result = json.loads(verified.stdout)
    assert (result["index"], result["type"], result["checkpoint_size"]) == (3, "decision", 300)
    assert len(result["verified_signers"]) == 3 and result["body"]["outcome"] == "grant"

    other = tmp_path / "other.note"
    other.write_text(
        json.loads(parse_tlog_proof(amnesty("proof", "get", db, "4").stdout_bytes).extra)[
            "statement"
        ]
    )
    wrong = amnesty("proof", "verify", str(proof_file), "--vkey", vkey, "--statement", str(other))
    assert wrong.exit_code == 1 and "not the given one" in wrong.stdout

    proof = parse_tlog_proof(got.stdout_bytes)
    forged = proof.extra.replace(b'"outcome\\":\\"grant', b'"outcome\\":\\"deny\\"')
    assert forged != proof.extra
    tampered = tmp_path / "forged.tlog-proof"
    tampered.write_bytes(
        format_tlog_proof(type(proof)(proof.index, proof.hashes, proof.checkpoint, forged))
    )
    assert amnesty("proof", "verify", str(tampered), "--vkey", vkey).exit_code == 1

    bare = amnesty("proof", "get", db, "3", "--no-entry")
    bare_file = tmp_path / "bare.tlog-proof"
    bare_file.write_bytes(bare.stdout_bytes)
    entry_file = tmp_path / "entry.json"
    entry_file.write_bytes(proof.extra)
    assert amnesty("proof", "verify", str(bare_file), "--vkey", vkey).exit_code == 1
    assert (
        amnesty(
            "proof", "verify", str(bare_file), "--vkey", vkey, "--entry", str(entry_file)
        ).exit_code
        == 0
    )


def test_a_split_view_leaves_evidence_that_the_cli_rechecks(tmp_path: Path) -> None:
    a, key, subject = granted_log(sqlite_url(tmp_path, "a.db"), attestations=100)
    b, _key, _subject = granted_log(sqlite_url(tmp_path, "b.db"), attestations=0)
    b.attest(key, subject, 300, first=50_000)
    vkey = a.log_signer.vkey
    state = tmp_path / "trust.json"
    assert amnesty("verify", a.url, "--state", str(state), "-q").exit_code == 0
    evidence = tmp_path / "evidence.json"
    caught = amnesty(
        "verify", b.url, "--state", str(state), "-q", "--evidence", str(evidence), "--json"
    )
    assert caught.exit_code == 1
    result = json.loads(caught.stdout)
    assert result["split_view"] is True and result["evidence"] == str(evidence)
    assert parse_evidence(evidence.read_bytes()).observed.startswith(f"served by {b.url}")
    checked = amnesty("evidence", "verify", str(evidence), "--vkey", vkey, "--json")
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["size1"] == 104 and json.loads(checked.stdout)["size2"] == 304
    # The trust state still holds the first history.
    assert json.loads(state.read_text())["checkpoint"] == a.store.checkpoint().decode()
    wrong_key = amnesty("evidence", "verify", str(evidence), "--vkey", b.members[0].vkey)
    assert wrong_key.exit_code == 1 and "NOT PROVEN" in wrong_key.stdout
    a.close()
    b.close()


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def test_monitor_reports_new_statements_and_broken_commitments(
    log: tuple[LogBuilder, str, str], tmp_path: Path
) -> None:
    builder, db, _vkey = log
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/events"
    _Hook.received.clear()
    state = tmp_path / "monitor.json"
    try:
        first = amnesty(
            "monitor", db, "--state", str(state), "--iterations", "1", "--json", "--webhook", hook
        )
        assert first.exit_code == 0, first.output
        kinds = [json.loads(line)["kind"] for line in first.stdout.splitlines()]
        assert kinds == ["keyset", "offer", "decision"]

        consent = builder.consent(SUBJECT, 2, "pause", expires_day=60, day=20)
        pause = builder.enforce(
            "pause", 2, {"kind": "consent", "consent": builder.ref(consent)}, day=21
        )
        builder.enforce("resume", 2, None, ends=pause, day=22)
        builder.enforce(
            "terminate", 2, {"kind": "consent", "consent": builder.ref(consent)}, day=23
        )
        second = amnesty(
            "monitor",
            db,
            "--state",
            str(state),
            "--iterations",
            "2",
            "--interval",
            "0",
            "--webhook",
            hook,
        )
        assert second.exit_code == 0, second.output
        lines = second.stdout.splitlines()
        assert any("[enforcement_action] enforcement: pause of subject 2" in line for line in lines)
        assert any(
            "[enforcement_action] enforcement: terminate of subject 2" in line for line in lines
        )
        broken = [line for line in lines if "[broken_commitment]" in line]
        assert broken and "no_termination_without_consent" in broken[0]
        assert len(lines) == 4  # the second poll found nothing new, and repeats nothing
    finally:
        server.shutdown()
    assert [len(post["events"]) for post in _Hook.received] == [3, 4]
    assert _Hook.received[1]["size"] == 304


@pytest.mark.slow
def test_verify_follow_prove_and_mirror_a_live_server(tmp_path: Path) -> None:
    db = make_demo_log(tmp_path)
    vkey = (tmp_path / "keys" / "log.vkey").read_text().strip()
    with running(db, tmp_path / "server.log") as server:
        state = tmp_path / "trust.json"
        first = amnesty("verify", server.url, "--vkey", vkey, "--state", str(state), "-q", "--json")
        assert first.exit_code == 0, first.output
        size = json.loads(first.stdout)["size"]
        origin = json.loads(first.stdout)["origin"]
        attester = Attester(db, origin)
        for n in range(3):
            posted = httpx.post(f"{server.url}/v1/statements", content=attester.next(f"live {n}"))
            assert posted.status_code == 201, posted.text
        second = amnesty(
            "verify", server.url, "--vkey", vkey, "--state", str(state), "-q", "--json"
        )
        assert second.exit_code == 0, second.output
        assert json.loads(second.stdout)["entries_verified"] == 3

        got = amnesty("proof", "get", server.url, "3", "--vkey", vkey)
        assert got.exit_code == 0, got.output
        (tmp_path / "p.tlog-proof").write_bytes(got.stdout_bytes)
        assert (
            amnesty("proof", "verify", str(tmp_path / "p.tlog-proof"), "--vkey", vkey).exit_code
            == 0
        )

        watched = amnesty(
            "monitor",
            server.url,
            "--vkey",
            vkey,
            "--state",
            str(tmp_path / "m.json"),
            "--iterations",
            "1",
            "--json",
        )
        assert watched.exit_code == 0, watched.output
        assert "decision" in {json.loads(line)["kind"] for line in watched.stdout.splitlines()}

        mirror = tmp_path / "mirror"
        assert amnesty("mirror", server.url, str(mirror), "--vkey", vkey, "-q").exit_code == 0
        assert amnesty("verify", str(mirror), "--vkey", vkey, "-q").exit_code == 0
        assert int((mirror / "checkpoint").read_text().split("\n")[1]) == size + 3
    shutil.rmtree(mirror)


def test_an_ed25519_only_proof_under_both_keys_says_what_to_do(
    log: tuple[LogBuilder, str, str], tmp_path: Path
) -> None:
    """A proof of a checkpoint signed by Ed25519 alone — what a log that added its ML-DSA-44
    key later signed up to its log_key entry (FORMAT.md F7.4) — checked with both keys pinned
    under the default policy fails, and says which policy opens such a checkpoint; with that
    policy it verifies. An explicit policy gets no advice."""
    _builder, db, vkey = log
    proof_file = tmp_path / "entry.tlog-proof"
    proof_file.write_bytes(amnesty("proof", "get", db, "3").stdout_bytes)
    mldsa = Signer.generate(vkey.split("+", 1)[0], ALG_MLDSA44).vkey
    both = f"{vkey} {mldsa}"
    failed = amnesty("proof", "verify", str(proof_file), "--vkey", both)
    assert failed.exit_code == 1
    assert "no ML-DSA-44 signature" in failed.stdout
    assert "--key-policy ed25519" in failed.stdout
    as_json = amnesty("proof", "verify", str(proof_file), "--vkey", both, "--json")
    assert "--key-policy ed25519" in json.loads(as_json.stdout)["error"]["detail"]
    explicit = amnesty("proof", "verify", str(proof_file), "--vkey", both, "--key-policy", "both")
    assert explicit.exit_code == 1 and "--key-policy ed25519" not in explicit.stdout
    opened = amnesty("proof", "verify", str(proof_file), "--vkey", both, "--key-policy", "ed25519")
    assert opened.exit_code == 0, opened.output
