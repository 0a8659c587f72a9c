"""A hybrid log end to end: the demo's log signs with Ed25519 and ML-DSA-44, publishes both vkeys,
and ``amnesty verify`` / ``proof verify`` and the client enforce a pinned key policy.

The served checkpoint's ML-DSA-44 line is also checked here by a verifier written from the C2SP
tlog-cosignature v1.1.0-rc.1 text alone (``struct`` and pyca/cryptography), not by the project's
note layer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PublicKey

from ledger.client.json_api import LedgerClient
from ledger.errors import SignatureError
from ledger.tlog.checkpoint import KeyPolicy, LogSigners
from ledger.tlog.note import ALG_MLDSA44, Signer
from tests.livelog import Attester, Server, amnesty, make_demo_log


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path_factory.mktemp("hybrid")
    db = make_demo_log(folder)
    server = Server(db, folder / "server.log")
    server.start()
    try:
        yield server, folder
    finally:
        server.stop()


def _independent_mldsa_check(checkpoint_note: str, vkey: str) -> None:
    """Verify the log's ML-DSA-44 line from the spec text alone."""
    name, hex_id, key64 = vkey.split("+", 2)
    raw = base64.b64decode(key64)
    assert raw[0] == 0x06 and len(raw) == 1 + 1312
    assert hashlib.sha256(name.encode() + b"\n\x06" + raw[1:]).digest()[:4].hex() == hex_id
    text, signatures = checkpoint_note.rsplit("\n\n", 1)
    origin, size, root64 = text.split("\n")
    ours = [
        base64.b64decode(line.split(" ")[2])
        for line in signatures.strip("\n").split("\n")
        if line.split(" ")[1] == name and base64.b64decode(line.split(" ")[2])[:4].hex() == hex_id
    ]
    assert len(ours) == 1
    blob = ours[0]
    timestamp = struct.unpack(">Q", blob[4:12])[0]
    message = (
        b"subtree/v1\n\x00"
        + bytes([len(name.encode())])
        + name.encode()
        + struct.pack(">Q", timestamp)
        + bytes([len(origin.encode())])
        + origin.encode()
        + struct.pack(">QQ", 0, int(size))
        + base64.b64decode(root64)
    )
    MLDSA44PublicKey.from_public_bytes(raw[1:]).verify(blob[12:], message, b"")


def test_the_log_publishes_both_vkeys_and_signs_with_both(hybrid: tuple[Server, Path]) -> None:
    server, folder = hybrid
    info = httpx.get(server.url + "/v1/log").json()
    ed, pq = info["log_vkeys"]
    assert info["log_vkey"] == ed == (folder / "keys" / "log.vkey").read_text().strip()
    assert (folder / "keys" / "log.vkeys").read_text().split() == [ed, pq]
    note = httpx.get(server.url + "/checkpoint").text
    lines = note.rsplit("\n\n", 1)[1].strip("\n").split("\n")
    assert len(lines) == 2  # Ed25519 first, then ML-DSA-44
    assert len(base64.b64decode(lines[0].split(" ")[2])) == 4 + 64
    assert len(base64.b64decode(lines[1].split(" ")[2])) == 4 + 8 + 2420
    _independent_mldsa_check(note, pq)


def test_the_serving_sequencer_signs_new_checkpoints_with_both_keys(
    hybrid: tuple[Server, Path],
) -> None:
    server, _ = hybrid
    info = httpx.get(server.url + "/v1/log").json()
    response = httpx.post(
        server.url + "/v1/statements",
        content=Attester(server.db, info["origin"]).next("hybrid"),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    size = response.json()["index"] + 1
    note = httpx.get(server.url + "/checkpoint").text
    assert note.split("\n")[1] == str(size) and size > info["size"]
    _independent_mldsa_check(note, info["log_vkeys"][1])


@pytest.mark.parametrize("policy", [None, "ed25519", "mldsa44", "both"])
def test_verify_under_each_policy(hybrid: tuple[Server, Path], policy: str | None) -> None:
    server, _ = hybrid
    vkeys = " ".join(httpx.get(server.url + "/v1/log").json()["log_vkeys"])
    args = ["--key-policy", policy] if policy else []
    result = amnesty("verify", server.url, "--vkey", vkeys, *args, "--json", "--quiet")
    assert json.loads(result.stdout)["size"] > 0


def test_monitor_takes_the_policy(hybrid: tuple[Server, Path], tmp_path: Path) -> None:
    server, _ = hybrid
    vkeys = " ".join(httpx.get(server.url + "/v1/log").json()["log_vkeys"])
    state = tmp_path / "monitor.json"
    amnesty(
        "monitor", server.url, "--state", str(state), "--vkey", vkeys,
        "--key-policy", "mldsa44", "--iterations", "1", "--interval", "0",
    )  # fmt: skip
    assert json.loads(state.read_text())["log_vkey"] == vkeys.split()[0]


def test_a_wrong_mldsa_key_fails_a_policy_that_requires_it(
    hybrid: tuple[Server, Path],
) -> None:
    server, _ = hybrid
    info = httpx.get(server.url + "/v1/log").json()
    impostor = Signer.generate(info["origin"], ALG_MLDSA44).vkey
    vkeys = f"{info['log_vkey']} {impostor}"
    for policy in ("mldsa44", "both"):
        failed = amnesty(
            "verify", server.url, "--vkey", vkeys, "--key-policy", policy, "--quiet", check=False
        )
        assert failed.returncode == 1, failed.stderr
        assert "ML-DSA-44" in failed.stdout + failed.stderr
    # Ed25519 alone does not look at the ML-DSA-44 line of an unknown key.
    amnesty("verify", server.url, "--vkey", vkeys, "--key-policy", "ed25519", "--quiet")


def test_proof_verify_and_the_client_take_a_policy(
    hybrid: tuple[Server, Path], tmp_path: Path
) -> None:
    server, _ = hybrid
    vkeys = " ".join(httpx.get(server.url + "/v1/log").json()["log_vkeys"])
    proof = amnesty("proof", "get", server.url, "0", "--vkey", vkeys).stdout
    path = tmp_path / "entry.tlog-proof"
    path.write_text(proof, encoding="utf-8")
    for policy in ("ed25519", "mldsa44", "both"):
        amnesty("proof", "verify", str(path), "--vkey", vkeys, "--key-policy", policy)
    client = LedgerClient(server.url, vkeys, key_policy=KeyPolicy.MLDSA44)
    try:
        assert client.checkpoint().size > 0
    finally:
        client.close()
    impostor = Signer.generate(vkeys.split("+", 1)[0], ALG_MLDSA44).vkey
    pinned_wrong = LedgerClient(server.url, f"{vkeys.split()[0]} {impostor}")
    try:
        with pytest.raises(SignatureError):
            pinned_wrong.checkpoint()
    finally:
        pinned_wrong.close()


def test_keygen_log_writes_a_hybrid_key_file(tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    out = json.loads(
        amnesty("keygen", "k.example/log", "--log", "--out", str(key), "--json").stdout
    )
    signers = LogSigners.parse(key.read_text(encoding="utf-8"))
    assert out["vkeys"] == signers.keys().vkeys() and out["vkey"] == signers.ed25519.vkey
    assert signers.mldsa44 is not None
    db = f"sqlite:///{tmp_path / 'l.db'}"
    created = json.loads(
        amnesty("init", "--db", db, "--origin", "k.example/log", "--key", str(key), "--json").stdout
    )
    assert created["log_vkeys"] == out["vkeys"]
    verified = amnesty("verify", db, "--json", "--quiet")  # the database's own keys, both
    assert json.loads(verified.stdout)["size"] == 0
