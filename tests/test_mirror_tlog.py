"""``amnesty mirror`` as a C2SP tlog-mirror copy (draft, C2SP/C2SP commit 5ba5ee83), with real
processes: a live ``amnesty serve`` is mirrored with the mirror's own key.

An independent check — ``hashlib`` and ``cryptography`` only, nothing of ``ledger`` — reads the
mirror directory as a static host would serve it: every tile and bundle is byte for byte what the
log serves at the same tlog-tiles path; the root recomputed from the entry bundles is the root
of the checkpoint, whose log signature verifies and whose root is the log's own at that size;
the mirror's cosignature/v1 line verifies. Then the log's key signs another history (a restored
copy served with a fresh memory file) and a rolled-back view: the mirror refuses both and its
served files do not change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.errors import RefusedError
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import CosignatureSigner, verify_cosignatures
from ledger.tlog.note import ALG_MLDSA44
from ledger.verifier.failures import VerificationFailure
from ledger.verifier.mirror import mirror_log
from tests.livelog import Attester, Server, amnesty
from tests.merkle_reference import ReferenceTree, ref_leaf_hash
from tests.test_never_fork import copy_sqlite, demo_log, log_origin, submit
from tests.verifier_logs import granted_log, sqlite_url


def _vkey_public(vkey: str, alg: int) -> tuple[str, bytes, bytes]:
    """(name, key ID, public key) of a vkey ``name+hex8+base64(alg ‖ key)``."""
    name, key_id, blob = vkey.split("+", 2)
    raw = base64.b64decode(blob)
    assert raw[0] == alg
    return name, bytes.fromhex(key_id), raw[1:]


def _split_note(note: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The note's text and its (name, key ID ‖ signature) lines."""
    text, _, block = note.rpartition(b"\n\n")
    lines = []
    for line in block.decode().splitlines():
        assert line.startswith("\u2014 ")
        name, sig = line[2:].split(" ")
        lines.append((name, base64.b64decode(sig)))
    return text + b"\n", lines


def _bundle_entries(data: bytes) -> list[bytes]:
    """A tlog-tiles entry bundle: big-endian uint16 length, then that many bytes, repeated."""
    entries, at = [], 0
    while at < len(data):
        length = int.from_bytes(data[at : at + 2], "big")
        entries.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    return entries


def independently_checked(directory: Path, log_vkey: str, mirror_vkey: str) -> tuple[int, bytes]:
    """Check the mirror directory without the implementation; return (size, root)."""
    note = (directory / "checkpoint").read_bytes()
    text, lines = _split_note(note)
    origin, size_line, root_line = text.decode().splitlines()[:3]
    size, root = int(size_line), base64.b64decode(root_line)
    name, key_id, public = _vkey_public(log_vkey, 0x01)
    assert name == origin
    log_line = next(sig for who, sig in lines if who == name and sig[:4] == key_id)
    Ed25519PublicKey.from_public_bytes(public).verify(log_line[4:], text)
    # The mirror's cosignature/v1 (tlog-cosignature): 8-byte time, then Ed25519 over
    # "cosignature/v1\ntime <T>\n" + the checkpoint body.
    m_name, m_id, m_public = _vkey_public(mirror_vkey, 0x04)
    m_line = next(sig for who, sig in lines if who == m_name and sig[:4] == m_id)
    timestamp = int.from_bytes(m_line[4:12], "big")
    message = f"cosignature/v1\ntime {timestamp}\n".encode() + text
    Ed25519PublicKey.from_public_bytes(m_public).verify(m_line[12:], message)
    # The root, from the entry bundles alone.
    leaves: list[bytes] = []
    for n in range(0, (size + 255) // 256):
        full = directory / "tile" / "entries" / _tile_index(n)
        width = min(256, size - n * 256)
        path = full if width == 256 else full.with_name(full.name + ".p") / str(width)
        entries = _bundle_entries(path.read_bytes())
        assert len(entries) == width
        leaves.extend(ref_leaf_hash(entry) for entry in entries)
    assert ReferenceTree(leaves).mth(0, size) == root
    return size, root


def _tile_index(n: int) -> str:
    """tlog-tiles' path of tile index ``n``: 3-digit groups, all but the last prefixed ``x``."""
    digits = f"{n:03d}"
    while len(digits) % 3:
        digits = "0" + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def _served_files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and ".amnesty" not in path.parts
    }


def test_a_mirror_copies_verifies_cosigns_and_refuses_a_fork(tmp_path: Path) -> None:
    db_file = tmp_path / "ledger.db"
    db = f"sqlite:///{db_file}"
    demo_log(tmp_path, db)
    origin = log_origin(db)
    store = SqlLogStore(db)
    log_vkey = store.identity().log_vkey
    store.close()
    mirror_key = tmp_path / "mirror.key"
    mirror_vkey = amnesty(
        "witness", "keygen", "mirror.example/m1", "--out", str(mirror_key)
    ).stdout.strip()
    directory = tmp_path / "mirror"

    def mirror(url: str, *flags: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``amnesty mirror URL DIRECTORY --vkey LOG_VKEY FLAGS --quiet``."""
        return amnesty(
            "mirror", url, str(directory), "--vkey", log_vkey, *flags, "--quiet", check=check
        )

    attester = Attester(db, origin)
    server = Server(db, tmp_path / "server.log")
    server.start()
    try:
        submit(server, attester, 3, "first-")
    finally:
        server.stop()
    copy_sqlite(db_file, tmp_path / "backup")  # the copy that will be made to fork
    copy_sqlite(db_file, tmp_path / "stale")  # and one that will stay behind
    server.start()
    try:
        size = submit(server, attester, 4, "second-")
        run = mirror(server.url, "--key", str(mirror_key), "--json")
        result = json.loads(run.stdout)
        assert result["origin_hash"] == hashlib.sha256(origin.encode()).hexdigest()
        assert len(result["mirror_cosignatures"]) == 1
        mirrored_size, _ = independently_checked(directory, log_vkey, mirror_vkey)
        assert mirrored_size == size
        live = httpx.get(server.url + "/checkpoint", timeout=10).content
        assert _split_note(live)[0] == _split_note((directory / "checkpoint").read_bytes())[0]
        # tlog-tiles paths unchanged: every tile and bundle is what the log serves there.
        tiles = {k: v for k, v in _served_files(directory).items() if k.startswith("tile/")}
        assert any(k.startswith("tile/entries/") for k in tiles)
        for path, data in tiles.items():
            assert httpx.get(f"{server.url}/{path}", timeout=10).content == data, path
        # Growing: the next run proves consistency from the served checkpoint, cosigns again.
        size = submit(server, attester, 2, "third-")
        mirror(server.url, "--key", str(mirror_key))
        assert independently_checked(directory, log_vkey, mirror_vkey)[0] == size
    finally:
        server.stop()
    served = _served_files(directory)

    # The log's key signs another history: the old copy, given a fresh memory file so the
    # signer does not know what it published, grows past the mirror's size.
    fork_db = f"sqlite:///{tmp_path / 'backup' / db_file.name}"
    fork = Server(
        fork_db,
        tmp_path / "fork.log",
        env={"AMNESTY_PUBLISHED_PATH": str(tmp_path / "fork.published")},
    )
    fork.start()
    try:
        fork_size = submit(fork, Attester(fork_db, origin), 12, "fork-")
        assert fork_size > size
        refused = mirror(fork.url, "--key", str(mirror_key), check=False)
    finally:
        fork.stop()
    assert refused.returncode == 1, refused.stderr
    said = " ".join((refused.stdout + refused.stderr).split())
    assert "split view" in said.lower(), said
    assert (directory / ".amnesty" / "split-view.json").exists()
    assert _served_files(directory) == served, "the mirror changed what it serves for a fork"

    # A rolled-back view (the log's own database, restored to an older copy) is refused too.
    stale_db = tmp_path / "stale"
    stale = Server(
        f"sqlite:///{stale_db / db_file.name}",
        tmp_path / "stale.log",
        env={"AMNESTY_PUBLISHED_PATH": str(tmp_path / "stale.published")},
    )
    stale.start()
    try:
        rolled_back = mirror(stale.url, check=False)
    finally:
        stale.stop()
    assert rolled_back.returncode == 1
    said = " ".join((rolled_back.stdout + rolled_back.stderr).split())
    assert "older than the size" in said, said
    assert _served_files(directory) == served


# -- in process ---------------------------------------------------------------------------------


def test_a_hybrid_mirror_key_cosigns_with_both_and_time_never_goes_back(tmp_path: Path) -> None:
    builder, key, subject = granted_log(sqlite_url(tmp_path), attestations=3)
    view = builder.view
    ed = CosignatureSigner.from_seed("mirror.example/m2", hashlib.sha256(b"m").digest())
    pq = CosignatureSigner.from_seed(ed.name, hashlib.sha256(b"m-pq").digest(), ALG_MLDSA44)
    directory = tmp_path / "mirror"
    try:
        first = mirror_log(
            view,
            view.log_key,
            directory,
            fresh=False,
            audit_time_ms=0,
            cosigners=[ed, pq],
            clock=lambda: 2_000,
        )
        keys = [ed.verifier_key, pq.verifier_key]
        served = (directory / "checkpoint").read_bytes()
        assert verify_cosignatures(served, keys) == {ed.verifier_key: 2_000, pq.verifier_key: 2_000}
        assert [line.line() for line in first.cosignatures] == [
            line.decode() + "\n"
            for line in served.split(b"\n")
            if line.startswith("\u2014 mirror.example/m2 ".encode())
        ]
        builder.attest(key, subject, 1, first=3)
        with pytest.raises(RefusedError, match="before the mirror's last cosignature"):
            mirror_log(
                view,
                view.log_key,
                directory,
                fresh=False,
                audit_time_ms=0,
                cosigners=[ed, pq],
                clock=lambda: 1_999,
            )
        assert (directory / "checkpoint").read_bytes() == served
        with pytest.raises(RefusedError, match="one name"):
            mirror_log(
                view,
                view.log_key,
                directory,
                fresh=False,
                audit_time_ms=0,
                cosigners=[ed, CosignatureSigner.generate("other.example/m")],
            )
        later = mirror_log(
            view,
            view.log_key,
            directory,
            fresh=False,
            audit_time_ms=0,
            cosigners=[ed, pq],
            clock=lambda: 2_000,
        )
        assert later.verified.checkpoint.size == first.verified.checkpoint.size + 1
        assert set(verify_cosignatures((directory / "checkpoint").read_bytes(), keys)) == set(keys)
    finally:
        builder.close()


def test_without_its_trust_state_a_mirror_still_never_rewinds_or_forks(tmp_path: Path) -> None:
    """The trust state lost (a first run that crashed before writing it, a deleted folder): the
    next run verifies from scratch and must still extend the checkpoint the mirror serves."""
    honest, key, subject = granted_log(sqlite_url(tmp_path, "honest.db"), attestations=3)
    fork, fork_key, fork_subject = granted_log(sqlite_url(tmp_path, "fork.db"), attestations=0)
    fork.attest(fork_key, fork_subject, 6, first=100)  # the same key, another history
    directory = tmp_path / "mirror"
    try:
        mirror_log(honest.view, honest.view.log_key, directory, fresh=False, audit_time_ms=0)
        served = _served_files(directory)
        state = directory / ".amnesty" / "state.json"
        state.unlink()
        with pytest.raises(VerificationFailure, match="another history"):
            mirror_log(fork.view, fork.view.log_key, directory, fresh=False, audit_time_ms=0)
        assert _served_files(directory) == served
        assert not state.exists()
        honest.attest(key, subject, 2, first=3)
        grown = mirror_log(
            honest.view, honest.view.log_key, directory, fresh=False, audit_time_ms=0
        )
        assert grown.verified.checkpoint.size == honest.view.latest().size
        state.unlink()
        # A rolled-back view: the fork's first entries at a smaller size than the mirror's.
        small, _, _ = granted_log(sqlite_url(tmp_path, "small.db"), attestations=0)
        try:
            with pytest.raises(VerificationFailure, match="rolled-back"):
                mirror_log(small.view, small.view.log_key, directory, fresh=False, audit_time_ms=0)
        finally:
            small.close()
    finally:
        honest.close()
        fork.close()
