"""Trust state and incremental verification, split views and their evidence."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ledger.errors import MalformedError, VerificationError
from ledger.protocol import precedent_report
from ledger.server.logview import LogView
from ledger.tlog.note import VerifierKey
from ledger.tlog.tiles import TileID
from ledger.verifier.evidence import (
    SplitView,
    format_evidence,
    parse_evidence,
    verify_evidence,
)
from ledger.verifier.failures import SplitViewError, VerificationFailure
from ledger.verifier.snapshot import restore_protocol, snapshot_protocol
from ledger.verifier.trust import TrustState, load_trust_state, save_trust_state
from ledger.verifier.verify import VerifiedLog, verify_ledger
from tests.verifier_logs import LogBuilder, granted_log, sqlite_url, subject_key


class Counting:
    """A LogSource that records what it serves."""

    def __init__(self, source: LogView, checkpoint: bytes | None = None) -> None:
        self.source = source
        self.note = checkpoint
        self.fetched: list[str] = []

    def checkpoint(self) -> bytes:
        return self.note if self.note is not None else self.source.checkpoint()

    def tile(self, tile: TileID) -> bytes:
        self.fetched.append(tile.path())
        return self.source.tile(tile)


def _report(result: VerifiedLog) -> dict[str, object]:
    assert result.protocol is not None
    checkpoint = result.checkpoint
    return precedent_report(
        result.protocol,
        checkpoint={
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root_hash_b64": "A" * 43 + "=",
        },
        audit_time_ms=result.last_log_time_ms + 10**12,
    )


def _roundtrip(result: VerifiedLog, key: VerifierKey, path: Path) -> TrustState:
    save_trust_state(path, result.trust_state(key))
    json.loads(path.read_text())  # a plain JSON document, nothing else
    return load_trust_state(path, key)


def test_incremental_verification_checks_only_the_new_entries(tmp_path: Path) -> None:
    builder, key, subject = granted_log(sqlite_url(tmp_path), attestations=596)
    log_key = builder.view.log_key
    first = verify_ledger(builder.view, log_key)
    assert (first.start_size, first.entries) == (0, 600)
    trusted = _roundtrip(first, log_key, tmp_path / "state.json")

    # New entries that lean on the old state: a new subject applies under the offer at entry 1
    # and is decided, and the first subject attests on.
    other = subject_key("hypatia")
    application = builder.apply(other, "Hypatia", day=10)
    builder.decide(application, "deny", day=11)
    builder.attest(key, subject, 298, first=5000)
    assert len(builder.entries) == 900

    source = Counting(builder.view)
    second = verify_ledger(source, log_key, trusted=trusted, workers=0)
    assert (second.start_size, second.entries, second.checkpoint.size) == (600, 300, 900)
    assert second.details["statement_types"] == {
        "application": 1,
        "attestation": 298,
        "decision": 1,
    }
    bundles = sorted(p for p in source.fetched if p.startswith("tile/entries/"))
    assert bundles == ["tile/entries/002", "tile/entries/003.p/132"]  # never 000 or 001
    level0 = sorted(p for p in source.fetched if p.startswith("tile/0/"))
    assert "tile/0/000" not in level0 and "tile/0/001" not in level0

    # The same result as verifying everything from scratch.
    full = verify_ledger(builder.view, log_key, workers=2)
    assert full.entries == 900
    assert _report(full) == _report(second)
    assert second.trust_state(log_key).to_json() == full.trust_state(log_key).to_json()

    # Nothing new: nothing fetched but what the checkpoint needs.
    again = verify_ledger(
        Counting(builder.view), log_key, trusted=_roundtrip(second, log_key, tmp_path / "s2.json")
    )
    assert again.entries == 0 and again.checkpoint.size == 900


def test_an_entry_verified_before_must_come_back_unchanged(tmp_path: Path) -> None:
    builder, key, subject = granted_log(sqlite_url(tmp_path), attestations=596)
    log_key = builder.view.log_key
    trusted = verify_ledger(builder.view, log_key).trust_state(log_key)
    builder.attest(key, subject, 10, first=9000)

    class Altered(Counting):
        def tile(self, tile: TileID) -> bytes:
            data = super().tile(tile)
            if tile.path() == "tile/entries/002.p/98":
                return data.replace(b'"log_time_ms":17', b'"log_time_ms":18', 1)
            return data

    with pytest.raises(VerificationFailure) as caught:
        verify_ledger(Altered(builder.view), log_key, trusted=trusted)
    assert caught.value.index == 512
    assert "not the entry verified at size 600" in str(caught.value)


def test_an_older_checkpoint_is_refused_but_is_not_a_split_view(tmp_path: Path) -> None:
    builder, key, subject = granted_log(sqlite_url(tmp_path), attestations=296)
    builder.attest(key, subject, 300, first=7000)
    log_key = builder.view.log_key
    trusted = verify_ledger(builder.view, log_key).trust_state(log_key)
    stale = Counting(builder.view, builder.view.checkpoint_at(300).note)
    with pytest.raises(VerificationFailure) as caught:
        verify_ledger(stale, log_key, trusted=trusted)
    assert not isinstance(caught.value, SplitViewError)
    assert "older than the size 600 verified before" in str(caught.value)


def test_the_trust_state_is_checked_when_loaded(tmp_path: Path) -> None:
    builder, _key, _subject = granted_log(sqlite_url(tmp_path), attestations=296)
    log_key = builder.view.log_key
    path = tmp_path / "state.json"
    save_trust_state(path, verify_ledger(builder.view, log_key).trust_state(log_key))
    value = json.loads(path.read_text())
    other = VerifierKey.parse(subject_key("someone").vkey)
    with pytest.raises(MalformedError, match="is for log key"):
        load_trust_state(path, other)
    broken = dict(value, edge_tiles=["AAAA", *value["edge_tiles"][1:]])
    path.write_text(json.dumps(broken))
    with pytest.raises(MalformedError, match="edge tile 0 is 3 bytes"):
        load_trust_state(path, log_key)
    value["protocol"]["classes"]["SubjectRecord"] = ["subject_id"]
    path.write_text(json.dumps(value))
    with pytest.raises(MalformedError, match="verify from scratch"):
        load_trust_state(path, log_key)


def test_the_protocol_snapshot_restores_every_record_type() -> None:
    from tests.test_protocol_log import full_log

    log = full_log()
    snapshot = json.loads(json.dumps(snapshot_protocol(log.state)))
    restored = restore_protocol(snapshot)
    checkpoint = {
        "origin": "amnesty.example/log",
        "size": log.state.size,
        "root_hash_b64": "A" * 43 + "=",
    }
    audit = log.now + 400 * 86_400_000
    assert precedent_report(
        restored, checkpoint=checkpoint, audit_time_ms=audit
    ) == precedent_report(log.state, checkpoint=checkpoint, audit_time_ms=audit)
    assert snapshot_protocol(restored) == snapshot


# -- split views ------------------------------------------------------------------------------------


def _history(folder: Path, attestations: int, first: int) -> LogBuilder:
    """A log with the same key, origin and first four entries, then its own attestations."""
    builder, key, subject = granted_log(sqlite_url(folder, f"log-{first}.db"), attestations=0)
    builder.attest(key, subject, attestations, first=first)
    return builder


@pytest.mark.parametrize(("size_a", "size_b"), [(300, 600), (300, 300), (256, 600), (1, 600)])
def test_two_histories_served_to_one_verifier_are_caught(
    tmp_path: Path, size_a: int, size_b: int
) -> None:
    a = _history(tmp_path, size_a - 4, 0) if size_a > 4 else None
    b = _history(tmp_path, size_b - 4, 100_000)
    log_key = b.view.log_key
    if a is None:  # a verifier that saw only the genesis: build that one-entry log
        a = LogBuilder(sqlite_url(tmp_path, "genesis.db"))
        a.genesis()
        b_genesis = b.entries[0]
        assert a.entries[0] == b_genesis  # same first entry: sizes 1 and 600 are consistent
    trusted = verify_ledger(a.view, log_key).trust_state(log_key)
    if size_a == 1:
        assert verify_ledger(b.view, log_key, trusted=trusted).entries == 599
        return
    with pytest.raises(SplitViewError) as caught:
        verify_ledger(b.view, log_key, trusted=trusted)
    evidence = caught.value.evidence
    assert caught.value.where == "checkpoint" and "split view" in str(caught.value)
    # The file format round-trips, and anyone with the log's key can re-check it.
    data = format_evidence(replace(evidence, observed="served by a test"))
    parsed = parse_evidence(data)
    assert format_evidence(parsed) == data
    proven = verify_evidence(parsed, log_key)
    assert (proven.checkpoint1.size, proven.checkpoint2.size) == (size_a, size_b)
    assert proven.prefix_root != proven.checkpoint1.root_hash
    # Evidence that does not prove a split view is refused.
    with pytest.raises(VerificationError):
        verify_evidence(replace(parsed, prefix_root=proven.checkpoint1.root_hash), log_key)
    with pytest.raises(VerificationError):
        verify_evidence(replace(parsed, checkpoint2=parsed.checkpoint1), log_key)
    with pytest.raises(VerificationError):
        verify_evidence(parsed, VerifierKey.parse(subject_key("x").vkey))


def test_a_consistent_log_with_bad_tiles_is_a_failure_not_evidence(tmp_path: Path) -> None:
    builder, key, subject = granted_log(sqlite_url(tmp_path), attestations=296)
    log_key = builder.view.log_key
    trusted = verify_ledger(builder.view, log_key).trust_state(log_key)
    builder.attest(key, subject, 300, first=9000)

    class BadTile(Counting):
        def tile(self, tile: TileID) -> bytes:
            data = super().tile(tile)
            if tile.level == 1:
                return bytes([data[0] ^ 1]) + data[1:]
            return data

    with pytest.raises(VerificationFailure) as caught:
        verify_ledger(BadTile(builder.view), log_key, trusted=trusted)
    assert not isinstance(caught.value, SplitViewError)
    assert caught.value.where == "consistency proof"


def test_evidence_files_are_parsed_strictly(tmp_path: Path) -> None:
    builder = LogBuilder(sqlite_url(tmp_path))
    builder.genesis()
    note = builder.store.checkpoint()
    good = json.loads(
        format_evidence(SplitView(note, note, (), b"\x01" * 32, "equal sizes", "a test"))
    )
    assert parse_evidence(json.dumps(good).encode()).prefix_root == b"\x01" * 32
    for broken in (
        {},
        dict(good, format="amnesty-ledger.split-view/v2"),
        dict(good, prefix_root="AQ=="),
        dict(good, consistency_proof=["not base64!"]),
        dict(good, origin="another.example/log"),
        dict(good, extra=1),
    ):
        with pytest.raises(MalformedError):
            parse_evidence(json.dumps(broken).encode())
    with pytest.raises(MalformedError):
        parse_evidence(b"not json")
    # Well-formed, but one checkpoint twice proves nothing.
    with pytest.raises(VerificationError, match="they agree"):
        verify_evidence(
            SplitView(note, note, (), builder.view.latest().checkpoint.root_hash),
            builder.view.log_key,
        )
