"""An existing log adds its ML-DSA-44 key by a logged, k-of-n-signed ``log_key`` statement.

The protocol's rule (the body's threshold, a 0x06 key named after the origin with its key ID
right, once), the writing server adopting the key from the batch that logs it (both signature
lines from then on, the identity updated in the same commit, a refusal to start without the
key), and verifiers pinned to the Ed25519 key alone learning it from history (a later
checkpoint without a valid ML-DSA-44 line fails under the default policy). The end-to-end test
runs real processes: ``amnesty init``, ``serve``, ``add-mldsa-key``, ``sign``, ``verify``.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.client.json_api import LedgerClient
from ledger.errors import (
    AuthorityError,
    MalformedError,
    RefusedError,
    SignatureError,
    StorageError,
)
from ledger.protocol import default_offer
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import StoredProtocolState
from ledger.server.derived import check_derived
from ledger.server.log_key import LogKeyPolicy, check_key_file
from ledger.server.sequencer import Sequencer
from ledger.statements.statement import parse_unsigned_statement, sign_statement
from ledger.storage.base import LogIdentity
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import KeyPolicy, LogKeys, LogSigners, open_checkpoint
from ledger.tlog.note import ALG_MLDSA44, Signer, format_note, parse_note
from ledger.verifier.failures import VerificationFailure
from ledger.verifier.snapshot import restore_protocol, snapshot_protocol
from ledger.verifier.trust import load_trust_state, save_trust_state
from ledger.verifier.verify import verify_ledger
from tests.livelog import Server, amnesty
from tests.support import body_members, signed_statement
from tests.verifier_logs import LogBuilder, sqlite_url


def mldsa_key(name: str) -> Signer:
    return Signer.generate(name, ALG_MLDSA44)


def adopting(builder: LogBuilder, key: Signer, *, stored: bool = True) -> LogKeyPolicy:
    """Make ``builder`` append as a writing server whose key file holds ``key`` beside the
    log's Ed25519 key: a :class:`LogKeyPolicy` on the store's derived state, and the
    sequencer's checkpoint signers from it."""
    policy = LogKeyPolicy(
        builder.origin,
        builder.store.derived_source() if stored else None,
        signers=LogSigners(builder.log_signer, key),
        identity=builder.store.identity(),
    )
    builder.policy = policy
    builder.sequencer = Sequencer(
        builder.store,
        builder.log_signer,
        policy,
        clock=lambda: builder.now,
        checkpoint_signers=policy.checkpoint_signers,
    )
    builder.sequencer.warm_up()
    return policy


def signature_lines(note: bytes) -> list[str]:
    return [line for line in note.decode().split("\n\n", 1)[1].splitlines() if line]


# -- the protocol's rule ------------------------------------------------------------------------


def test_the_protocol_admits_one_key_named_after_the_origin_with_the_body_threshold(
    tmp_path: Path,
) -> None:
    builder = LogBuilder(sqlite_url(tmp_path))
    builder.genesis()
    members = builder.members
    key = mldsa_key(builder.origin)

    with pytest.raises(AuthorityError, match="2 of 3 required distinct members"):
        builder.add(members[:2], "log_key", {"vkey": key.vkey}, listed=members)
    with pytest.raises(RefusedError, match="not after the log's origin"):
        builder.body("log_key", {"vkey": mldsa_key("other.example/log").vkey})
    with pytest.raises(MalformedError, match=r"body\.vkey: key type 0x01 is not 0x06"):
        builder.body("log_key", {"vkey": members[0].vkey})
    name, key_id, data = key.vkey.split("+", 2)
    wrong_id = f"{name}+{'0' * 8 if key_id != '0' * 8 else '1' * 8}+{data}"
    with pytest.raises(MalformedError, match="key id"):
        builder.body("log_key", {"vkey": wrong_id})
    with pytest.raises(MalformedError, match=r"body\.vkey"):
        builder.body("log_key", {"vkey": "not a key"})

    index = builder.body("log_key", {"vkey": key.vkey})
    record = builder.policy.state.log_key
    assert record is not None and (record.index, record.vkey) == (index, key.vkey)
    with pytest.raises(RefusedError, match=f"added at index {index}.*one ML-DSA-44 key, once"):
        builder.body("log_key", {"vkey": mldsa_key(builder.origin).vkey})

    # The snapshot a verifier keeps holds the key and the entry that anchored it.
    restored = restore_protocol(json.loads(json.dumps(snapshot_protocol(builder.policy.state))))
    assert restored.log_key == record


def test_an_older_protocol_snapshot_is_refused_clearly() -> None:
    snapshot = snapshot_protocol(ProtocolState())
    snapshot["format"] = "amnesty-ledger.protocol-snapshot/v3"
    with pytest.raises(MalformedError, match=r"protocol-snapshot/v3.*verify from scratch"):
        restore_protocol(snapshot)


# -- the writing server -------------------------------------------------------------------------


def test_the_server_signs_with_both_keys_from_the_batch_that_logs_the_statement(
    db_url: str,
) -> None:
    builder = LogBuilder(db_url)
    builder.genesis()
    key = mldsa_key(builder.origin)
    policy = adopting(builder, key)
    # The key file is one key ahead of the log: checkpoints stay Ed25519-only.
    builder.offer()
    assert len(signature_lines(builder.store.checkpoint())) == 1
    assert builder.store.identity().mldsa_vkey is None

    anchor = builder.body("log_key", {"vkey": key.vkey})
    note = builder.store.checkpoint()
    assert len(signature_lines(note)) == 2
    hybrid = LogKeys(builder.log_signer.verifier_key, key.verifier_key, KeyPolicy.BOTH)
    assert open_checkpoint(note, hybrid).size == anchor + 1
    mldsa_only = LogKeys(builder.log_signer.verifier_key, key.verifier_key, KeyPolicy.MLDSA44)
    assert open_checkpoint(note, mldsa_only).size == anchor + 1
    # The identity names the key from the same commit on.
    assert builder.store.identity().mldsa_vkey == key.vkey
    # Later batches carry both lines too.
    builder.apply(Signer.from_seed("p7.ai.example", b"\x07" * 32))
    assert len(signature_lines(builder.store.checkpoint())) == 2
    # The derived state recorded the key as a replay does.
    assert isinstance(policy.state, StoredProtocolState)
    assert check_derived(builder.store, builder.origin) == (len(builder.entries), None)


class _LostCommit:
    """The real store, whose next append transaction fails after the batch was staged (the
    connection lost at COMMIT): everything the batch staged rolls back."""

    def __init__(self, store: SqlLogStore) -> None:
        self._store = store
        self.fail = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextmanager
    def append_transaction(self) -> Iterator[Any]:
        fail, self.fail = self.fail, False
        with self._store.append_transaction() as tx:
            yield tx
            if fail:
                raise StorageError("couldn't commit: the connection was lost (injected)")


def test_the_entry_the_checkpoint_and_the_identity_commit_together(db_url: str) -> None:
    builder = LogBuilder(db_url)
    builder.genesis()
    key = mldsa_key(builder.origin)
    policy = adopting(builder, key)
    flaky = _LostCommit(builder.store)
    builder.sequencer = Sequencer(
        flaky,
        builder.log_signer,
        policy,
        clock=lambda: builder.now,
        checkpoint_signers=policy.checkpoint_signers,
    )
    head = builder.store.checkpoint()
    flaky.fail = True
    with pytest.raises(StorageError, match="injected"):
        builder.body("log_key", {"vkey": key.vkey})
    # Rolled back whole: no entry, no hybrid checkpoint, no key in the identity or the state.
    assert builder.store.checkpoint() == head
    assert builder.store.identity().mldsa_vkey is None
    assert policy.state.log_key is None
    index = builder.body("log_key", {"vkey": key.vkey})
    assert index == 1 and builder.store.identity().mldsa_vkey == key.vkey
    assert len(signature_lines(builder.store.checkpoint())) == 2


def test_a_writer_without_the_anchored_key_stops_instead_of_signing(db_url: str) -> None:
    # Two writers on one database; the second one's key file was not given the key.
    builder = LogBuilder(db_url)
    builder.genesis()
    key = mldsa_key(builder.origin)
    ed_only = LogKeyPolicy(
        builder.origin,
        builder.store.derived_source(),
        signers=LogSigners(builder.log_signer),
        identity=builder.store.identity(),
    )
    other = Sequencer(
        builder.store,
        builder.log_signer,
        ed_only,
        clock=lambda: builder.now,
        checkpoint_signers=ed_only.checkpoint_signers,
    )
    other.warm_up()
    adopting(builder, key)
    builder.body("log_key", {"vkey": key.vkey})
    head = builder.store.checkpoint()
    note = signed_statement(
        builder.members[:3],
        "offer",
        default_offer(),
        origin=builder.origin,
        listed=builder.members,
        time_ms=builder.now,
    )
    (result,) = other.sequence_now([ed_only.prepare(note)])
    assert "anchored ML-DSA-44 key" in str(result) and "holds no ML-DSA-44 key" in str(result)
    assert other.fatal is not None
    assert builder.store.checkpoint() == head  # nothing was signed without the key


def test_the_server_refuses_a_log_key_it_could_not_honour(tmp_path: Path) -> None:
    builder = LogBuilder(sqlite_url(tmp_path))
    builder.genesis()
    key = mldsa_key(builder.origin)
    adopting(builder, key)
    with pytest.raises(RefusedError, match=r"key file holds ML-DSA-44 key .*, not that one"):
        builder.body("log_key", {"vkey": mldsa_key(builder.origin).vkey})
    builder.body("log_key", {"vkey": key.vkey})
    with pytest.raises(RefusedError, match=r"already signs with .*\(added at entry 1\)"):
        builder.body("log_key", {"vkey": key.vkey})

    # A log created with an ML-DSA-44 key has no entry for it: the server refuses one.
    created = LogBuilder(sqlite_url(tmp_path, "created.db"))
    created.genesis()
    policy = LogKeyPolicy(
        created.origin,
        signers=LogSigners(created.log_signer, key),
        identity=LogIdentity(created.origin, created.log_signer.vkey, 0, None, key.vkey),
    )
    statement = _unsigned_log_key(created, key)
    for member in created.members[:3]:
        statement = sign_statement(statement, member)
    with pytest.raises(RefusedError, match="already signs with"):
        policy.prepare(statement)


def _unsigned_log_key(builder: LogBuilder, key: Signer) -> bytes:
    from ledger.server.log_key import log_key_statement

    members = sorted(m.vkey for m in builder.members)
    return log_key_statement(builder.origin, members, key.verifier_key, builder.now).text.encode()


def test_the_key_file_must_hold_the_key_the_log_signs_with() -> None:
    ed = Signer.generate("example.org/log")
    key = mldsa_key("example.org/log")
    identity = LogIdentity("example.org/log", ed.vkey, 0, None, None)
    check_key_file(LogSigners(ed), identity)
    check_key_file(LogSigners(ed, key), identity)  # one key ahead: waits for its statement
    anchored = LogIdentity("example.org/log", ed.vkey, 0, None, key.vkey)
    check_key_file(LogSigners(ed, key), anchored)
    with pytest.raises(RefusedError, match="holds no ML-DSA-44 key; put that key's PRIVATE"):
        check_key_file(LogSigners(ed), anchored)
    with pytest.raises(RefusedError, match="the key file holds ML-DSA-44 key"):
        check_key_file(LogSigners(ed, mldsa_key("example.org/log")), anchored)


# -- verifiers learn the key from history -------------------------------------------------------


def test_a_verifier_pinned_to_ed25519_learns_the_key_and_requires_it(tmp_path: Path) -> None:
    builder = LogBuilder(sqlite_url(tmp_path))
    builder.genesis()
    builder.offer()
    ed = builder.log_signer.verifier_key
    state_path, old_path = tmp_path / "state.json", tmp_path / "old.json"
    before = verify_ledger(builder.view, ed)
    save_trust_state(state_path, before.trust_state(ed))
    save_trust_state(old_path, before.trust_state(ed))
    key = mldsa_key(builder.origin)
    adopting(builder, key)
    anchor = builder.body("log_key", {"vkey": key.vkey})

    # From scratch: the replay anchors the key, and the checkpoint carries its line.
    result = verify_ledger(builder.view, ed)
    assert result.protocol is not None and result.protocol.log_key is not None
    assert result.protocol.log_key.index == anchor
    # Incrementally from a state saved before the anchor, and from one after it.
    trusted = load_trust_state(state_path, ed)
    verify_ledger(builder.view, ed, trusted=trusted)
    save_trust_state(state_path, result.trust_state(ed))
    builder.apply(Signer.from_seed("p7.ai.example", b"\x07" * 32))
    verify_ledger(builder.view, ed, trusted=load_trust_state(state_path, ed))
    # A verifier that now pins both keys (from /v1/log) continues from its state of before
    # the anchor, whose checkpoint has no ML-DSA-44 line; and from the newer one.
    pinned = LogKeys(ed, key.verifier_key)
    verify_ledger(builder.view, pinned, trusted=load_trust_state(old_path, pinned))
    verify_ledger(builder.view, pinned, trusted=load_trust_state(state_path, pinned))
    # A pin the history contradicts fails.
    other = LogKeys(ed, mldsa_key(builder.origin).verifier_key)
    with pytest.raises(VerificationFailure):
        verify_ledger(builder.view, other)


def test_a_checkpoint_past_the_anchor_without_a_valid_mldsa_line_fails(tmp_path: Path) -> None:
    # A log that logs the anchor but goes on signing with Ed25519 alone (the builder's plain
    # policy has no checkpoint signers): what a verifier must refuse under "both".
    builder = LogBuilder(sqlite_url(tmp_path))
    builder.genesis()
    builder.offer()
    ed = builder.log_signer.verifier_key
    state_path = tmp_path / "state.json"
    save_trust_state(state_path, verify_ledger(builder.view, ed).trust_state(ed))
    key = mldsa_key(builder.origin)
    anchor = builder.body("log_key", {"vkey": key.vkey})
    with pytest.raises(VerificationFailure, match=rf"added at entry {anchor}.*no ML-DSA-44"):
        verify_ledger(builder.view, ed)
    with pytest.raises(VerificationFailure, match="no ML-DSA-44"):
        verify_ledger(builder.view, ed, trusted=load_trust_state(state_path, ed))
    # An explicit Ed25519 policy is the verifier's choice, and holds.
    verify_ledger(builder.view, LogKeys(ed, None, KeyPolicy.ED25519))

    # A line from the anchored key that does not verify fails too.
    honest = LogBuilder(sqlite_url(tmp_path, "honest.db"))
    honest.genesis()
    adopting(honest, key)
    honest.body("log_key", {"vkey": key.vkey})
    note = parse_note(honest.store.checkpoint())
    bad = note.signatures[-1]
    flipped = bad.__class__(bad.name, bad.key_id, bytes([bad.signature[0] ^ 1]) + bad.signature[1:])
    forged = format_note(note.__class__(note.text, (*note.signatures[:-1], flipped)))

    class Forged:
        def checkpoint(self) -> bytes:
            return forged

        def tile(self, tile: object) -> bytes:
            return honest.view.tile(tile)  # type: ignore[arg-type]

    with pytest.raises(VerificationFailure):
        verify_ledger(Forged(), honest.log_signer.verifier_key)


# -- end to end, with real processes ------------------------------------------------------------


def test_an_ed25519_log_becomes_hybrid_by_a_logged_statement(tmp_path: Path) -> None:
    origin = "e2e.example/log"
    db = f"sqlite:///{tmp_path / 'log.db'}"
    key_file = tmp_path / "log.key"
    amnesty("keygen", origin, "--out", str(key_file))
    amnesty("init", "--db", db, "--origin", origin, "--key", str(key_file))
    ed_vkey = LogSigners.parse(key_file.read_text()).ed25519.vkey
    members = body_members()
    genesis = signed_statement(
        members[:3],
        "keyset",
        {"members": sorted(m.vkey for m in members), "threshold": 3},
        origin=origin,
        listed=members,
    )
    server = Server(db, tmp_path / "server.log")
    server.start()
    try:
        assert httpx.post(f"{server.url}/v1/statements", content=genesis).status_code == 201
        # The key is made while the server runs; it adopts it only after a restart.
        made = json.loads(amnesty("add-mldsa-key", "--db", db, "--json").stdout)
        assert made["added"] is True and made["threshold"] == 3
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert len(key_file.read_text().splitlines()) == 2
        again = json.loads(amnesty("add-mldsa-key", "--db", db, "--json").stdout)
        assert again["added"] is False and again["mldsa_vkey"] == made["mldsa_vkey"]
    finally:
        server.stop()
    server = Server(db, tmp_path / "server.log")
    server.start()
    try:
        # Key file one key ahead: the log still signs with Ed25519 alone.
        assert len(signature_lines(httpx.get(f"{server.url}/checkpoint").content)) == 1
        log_info = httpx.get(f"{server.url}/v1/log").json()
        assert log_info["log_vkeys"] == [ed_vkey] and log_info["mldsa_key_entry"] is None

        unsigned = made["statement"].encode()
        few = sign_statement(sign_statement(unsigned, members[0]), members[1])
        refused = httpx.post(f"{server.url}/v1/statements", content=few)
        assert refused.status_code == 403, refused.text
        assert "2 of 3 required distinct members" in refused.text
        signed = sign_statement(few, members[2])
        accepted = httpx.post(f"{server.url}/v1/statements", content=signed)
        assert accepted.status_code == 201, accepted.text
        anchor = accepted.json()["index"]

        note = httpx.get(f"{server.url}/checkpoint").content
        assert len(signature_lines(note)) == 2
        log_info = httpx.get(f"{server.url}/v1/log").json()
        assert log_info["log_vkeys"] == [ed_vkey, made["mldsa_vkey"]]
        assert log_info["mldsa_key_entry"] == anchor
        open_checkpoint(note, LogKeys.parse(log_info["log_vkeys"], "both"))

        # A verifier pinned to the Ed25519 key alone learns the key from the log.
        verified = amnesty("verify", server.url, "--vkey", ed_vkey, "--json")
        assert json.loads(verified.stdout)["ok"] is True
        with LedgerClient(server.url, ed_vkey) as client:
            client.catch_up()
            assert client._pinned.anchored is not None
            assert client._pinned.anchored.index == anchor
            stripped = note.decode().rsplit("\n", 2)[0] + "\n"
            assert len(signature_lines(stripped.encode())) == 1
            with pytest.raises(SignatureError, match="no ML-DSA-44 signature"):
                client.accept_checkpoint(stripped.encode())
    finally:
        server.stop()

    # The statement is logged; a key file without the key is refused at start, in one line.
    key_file.write_text(LogSigners.parse(key_file.read_text()).ed25519.private_key_text() + "\n")
    refused_start = amnesty("serve", "--db", db, "--port", "1", check=False, timeout=60)
    assert refused_start.returncode == 1
    # Besides the JSON log lines, one line of error and no traceback.
    lines = [line for line in refused_start.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and lines[0].startswith("error: "), refused_start.stderr
    assert "holds no ML-DSA-44 key; put that key's PRIVATE+KEY line back" in lines[0]
    assert parse_unsigned_statement(unsigned).type == "log_key"
