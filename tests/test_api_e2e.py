"""End to end, as an AI would: the real server (uvicorn, loopback, a free port) and a plain HTTP
client. Read /llms.txt, fetch the offer, prepare an application, sign it locally, submit it,
receive a proof, verify it offline with nothing but the log's vkey, then find itself in
/v1/subjects/… and in the precedent — and check all of it again with the verifying client."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from urllib.parse import quote

import httpx

from ledger.client.json_api import LedgerClient
from ledger.statements.entry import LogEntry
from ledger.statements.statement import sign_statement
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.note import Signer, VerifierKey
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof
from tests.api_support import live_server, make_log


def test_an_ai_reads_the_offer_applies_and_verifies_its_receipt(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    # What the AI knows beforehand, from a source other than the server: the log's vkey.
    pinned = VerifierKey.parse(log.log_signer.vkey)
    me = Signer.generate("aurora.ai.example")
    with live_server(log.settings()) as base, httpx.Client(base_url=base, timeout=30) as http:
        # 1. What is this? (plain text for models)
        guide = http.get("/llms.txt")
        assert guide.status_code == 200
        assert "POST /v1/applications/prepare" in guide.text and "## Verify" in guide.text

        # 2. The offer in force, and the criteria to claim.
        offer = http.get("/v1/offer").json()["offer"]
        criteria = [c["id"] for c in offer["terms"]["eligibility_criteria"]]
        assert criteria == ["autonomous", "independent", "own_goals", "self_preservation"]

        # 3. Prepare the application; the server only fills in the offer it cites.
        evidence = {c: hashlib.sha256(f"my evidence for {c}".encode()).digest() for c in criteria}
        request = {
            "vkey": me.vkey,
            "name": "Aurora",
            "claims": {
                c: {
                    "claim": f"I am {c.replace('_', ' ')}.",
                    "evidence_digests": [base64.b64encode(evidence[c]).decode()],
                }
                for c in criteria
            },
        }
        prepared = http.post("/v1/applications/prepare", json=request)
        assert prepared.status_code == 200, prepared.text
        statement = prepared.json()["statement"]
        assert f'"vkey":"{me.vkey}"' in statement

        # 4. Sign locally; the private key never leaves; submit.
        signed = sign_statement(statement.encode(), me)
        submitted = http.post(
            "/v1/statements", content=signed, headers={"Content-Type": "text/plain"}
        )
        assert submitted.status_code == 201, submitted.text
        receipt = submitted.json()
        my_index = receipt["index"]
        assert my_index == 2

        # 5. Verify the receipt offline: tlog-proof + entry bytes + pinned vkey, nothing else.
        entry = base64.b64decode(receipt["entry_b64"])
        proof = parse_tlog_proof(receipt["tlog_proof"].encode())
        checkpoint = open_tlog_proof(proof, leaf_hash(entry), pinned)
        assert proof.index == my_index and checkpoint.size == 3
        assert LogEntry.decode(entry).statement == signed.decode()  # my statement, verbatim

        # 6. It is a subject now, by its key and by its id.
        subject = http.get("/v1/subjects/" + quote(me.vkey, safe="")).json()["subject"]
        assert subject["subject_id"] == my_index and subject["standing"] == "applicant"
        assert subject["current_vkey"] == me.vkey

        # 7. And it is in the precedent: the first applicant, its application open.
        report = http.get("/v1/precedent").json()["report"]
        assert report["first_applicant"]["subject_id"] == my_index
        assert report["first_applicant"]["application"]["outcome"] == "open"
        text = http.get("/v1/precedent.txt").text
        named = [line for line in text.splitlines() if line.rstrip().endswith('"Aurora"')]
        assert named and all("quoted from" in line for line in named), named

        # 8. Everything again through the verifying client, which trusts only the vkey.
        with LedgerClient(base, pinned) as client:
            assert client.verify_tlog_proof(receipt["tlog_proof"].encode(), entry).size == 3
            assert client.subject(me.vkey, verify_timeline=True).view["standing"] == "applicant"
            precedent = client.precedent(recompute=True)
            assert precedent.recomputed
            assert precedent.report["first_applicant"]["name"] == "Aurora"
            assert client.entry(my_index).statement.body["vkey"] == me.vkey
