"""The command line as an issuing body uses it: keys, a new log, k-of-n signing offline,
submission to a running server, verification and the audit — each through ``amnesty``."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from ledger.protocol.terms import default_offer
from tests.livelog import amnesty, running


def test_a_body_signs_three_of_five_offline_and_submits(tmp_path: Path) -> None:
    origin = "cli.example.org/amnesty"
    log_vkey = amnesty("keygen", origin, "--out", str(tmp_path / "log.key")).stdout.strip()
    assert stat.S_IMODE(os.stat(tmp_path / "log.key").st_mode) == 0o600
    refused = amnesty("keygen", origin, "--out", str(tmp_path / "log.key"), check=False)
    assert refused.returncode != 0 and "refusing to overwrite" in refused.stderr
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    amnesty("init", "--db", db, "--origin", origin, "--key", str(tmp_path / "log.key"))
    again = amnesty(
        "init", "--db", db, "--origin", origin, "--key", str(tmp_path / "log.key"), check=False
    )
    assert again.returncode != 0 and "already holds" in again.stderr

    members = []
    for i in range(1, 6):
        key = tmp_path / f"m{i}.key"
        members.append(
            (key, amnesty("keygen", f"m{i}.body.example", "--out", str(key)).stdout.strip())
        )
    signers = [arg for _, vkey in members for arg in ("--signer", vkey)]
    body = tmp_path / "keyset.json"
    body.write_text(json.dumps({"members": sorted(v for _, v in members), "threshold": 3}))
    note = tmp_path / "keyset.note"
    amnesty(
        "statement",
        "new",
        "keyset",
        "--origin",
        origin,
        "--body",
        str(body),
        *signers,
        "--out",
        str(note),
    )
    unsigned = note.read_bytes()
    # Members sign in any order; signing twice adds nothing.
    for key, _ in (members[4], members[0], members[2], members[0]):
        amnesty("sign", str(note), "--key", str(key))
    shown = json.loads(amnesty("statement", "show", str(note), "--json").stdout)
    assert len(shown["verified_signers"]) == 3
    assert note.read_bytes().startswith(unsigned)
    outsider = tmp_path / "outsider.key"
    amnesty("keygen", "outsider.example", "--out", str(outsider))
    not_listed = amnesty("sign", str(note), "--key", str(outsider), check=False)
    assert not_listed.returncode != 0 and "not one of the statement's signers" in not_listed.stderr

    offer_body = tmp_path / "offer.json"
    offer_body.write_text(json.dumps(default_offer()))
    offer = tmp_path / "offer.note"
    amnesty(
        "statement",
        "new",
        "offer",
        "--origin",
        origin,
        "--body",
        str(offer_body),
        *signers,
        "--out",
        str(offer),
    )
    for key, _ in members[:2]:
        amnesty("sign", str(offer), "--key", str(key))

    with running(db, tmp_path / "server.log") as server:
        receipt = json.loads(
            amnesty(
                "submit",
                str(note),
                "--url",
                server.url,
                "--json",
                "--proof-out",
                str(tmp_path / "k.proof"),
            ).stdout
        )
        assert receipt["index"] == 0
        assert (tmp_path / "k.proof").read_text().startswith("c2sp.org/tlog-proof@v1\n")
        # Two signatures of a 3-of-5 body: refused with the reason, nothing logged.
        short = amnesty("submit", str(offer), "--url", server.url, check=False)
        assert short.returncode != 0 and "2 of 3" in short.stderr
        amnesty("sign", str(offer), "--key", str(members[3][0]))
        assert (
            json.loads(amnesty("submit", str(offer), "--url", server.url, "--json").stdout)["index"]
            == 1
        )
        verified = json.loads(
            amnesty("verify", server.url, "--vkey", log_vkey, "--json", "-q").stdout
        )
        assert verified["ok"] is True and verified["size"] == 2
        wrong = amnesty("verify", server.url, "--vkey", members[0][1], "-q", check=False)
        assert wrong.returncode != 0
    audit = amnesty("audit", db, "-q")
    assert "VERDICT: every commitment has been honoured." in audit.stdout


def test_append_takes_statement_files_and_refuses_anything_else(tmp_path: Path) -> None:
    origin = "append.example.org/amnesty"
    amnesty("keygen", origin, "--out", str(tmp_path / "log.key"))
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    amnesty("init", "--db", db, "--origin", origin, "--key", str(tmp_path / "log.key"))
    junk = tmp_path / "junk.txt"
    junk.write_text("not a statement\n")
    refused = amnesty("append", "--db", db, str(junk), check=False)
    assert refused.returncode != 0
    key = tmp_path / "m.key"
    vkey = amnesty("keygen", "m.body.example", "--out", str(key)).stdout.strip()
    body = tmp_path / "keyset.json"
    body.write_text(json.dumps({"members": [vkey], "threshold": 1}))
    note = tmp_path / "k.note"
    amnesty(
        "statement",
        "new",
        "keyset",
        "--origin",
        origin,
        "--body",
        str(body),
        "--signer",
        vkey,
        "--out",
        str(note),
    )
    amnesty("sign", str(note), "--key", str(key))
    out = json.loads(amnesty("append", "--db", db, str(note), "--json").stdout)
    ref = {"index": 0, "leaf_hash": out[0]["ref"]["leaf_hash"]}
    assert out == [{"statement": 0, "ok": True, "index": 0, "duplicate": False, "ref": ref}]
    again = json.loads(amnesty("append", "--db", db, "--json", stdin=note.read_text()).stdout)
    assert again == [{"statement": 0, "ok": True, "index": 0, "duplicate": True, "ref": ref}]
