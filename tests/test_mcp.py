"""The MCP server: a real client session over stdio (``amnesty mcp URL --vkey VKEY`` as a
subprocess, against the real HTTP server) lists the tools, reads the precedent and gets a
verified proof; one over streamable HTTP (``--http``) reads the offer; the other tools are
exercised in process. Every answer's first line says ``[verified: …]`` or ``[UNVERIFIED: …]``
(``tests/test_lying_proxy.py`` puts the server behind a lying proxy)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mcp import Client, StdioServerParameters

from api.app import create_app
from ledger.client.json_api import LedgerClient
from ledger.client.mcp_server import build_server
from ledger.statements.statement import sign_statement
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.note import Signer
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof
from tests.api_support import TestLog, claims, free_port, live_server, make_log

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def log(tmp_path: Path) -> TestLog:
    log = make_log(tmp_path)
    ai = Signer.from_seed("first.ai.example", b"1" * 32)
    log.append("first", log.application(ai, "First"))
    log.append("grant", log.decision("first"))
    return log


def text_of(result: Any) -> str:
    assert not result.is_error, result.content
    text: str = result.content[0].text
    return text


def labelled(text: str) -> tuple[str, str]:
    """An answer's ``[label]`` line (without brackets) and its body."""
    first, _blank, body = text.partition("\n\n")
    assert first.startswith("[") and first.endswith("]") and "\n" not in first, text[:200]
    return first[1:-1], body


def doc(result_or_text: Any) -> Any:
    """The JSON document of an answer, checked to carry its label line's verdict."""
    text = result_or_text if isinstance(result_or_text, str) else text_of(result_or_text)
    label, body = labelled(text)
    assert body.isascii()  # nothing from the log can break or reorder a line
    document = json.loads(body)
    assert document["provenance"] == label
    assert document["verified"] is label.startswith("verified: ")
    assert label.startswith(("verified: ", "UNVERIFIED: "))
    return document


def test_a_model_client_over_stdio(log: TestLog) -> None:
    with live_server(log.settings()) as base:

        async def session() -> None:
            params = StdioServerParameters(
                command=sys.executable,
                args=["-m", "ledger", "mcp", base, "--vkey", log.log_signer.vkey],
                cwd=str(REPO),
            )
            async with Client(params) as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                assert {
                    "get_offer",
                    "get_precedent",
                    "get_subject",
                    "get_inclusion_proof",
                    "verify_tlog_proof",
                    "verify_statement",
                    "prepare_application",
                    "submit_statement",
                } <= tools
                precedent = text_of(await client.call_tool("get_precedent", {}))
                assert precedent.startswith("[verified: computed here from the local replica")
                assert "THE FIRST APPLICANT" in precedent and '(entry 2): "First"' in precedent
                proof_text = text_of(await client.call_tool("get_inclusion_proof", {"index": 2}))
                assert proof_text.startswith("[verified: this C2SP tlog-proof of entry 2")
                proof = doc(proof_text)["tlog_proof"].encode()
                # The proof checks out here too, with only the log's key.
                entry = base64.b64decode(
                    doc(await client.call_tool("get_entry", {"index": 2}))["entry_b64"]
                )
                key = log.log_signer.verifier_key
                assert open_tlog_proof(parse_tlog_proof(proof), leaf_hash(entry), key).size == 4
                missing = await client.call_tool("get_entry", {"index": 99})
                assert missing.is_error and "404" in missing.content[0].text
                resources = {str(r.uri) for r in (await client.list_resources()).resources}
                assert {"amnesty://offer", "amnesty://precedent.txt"} <= resources
                offer = doc((await client.read_resource("amnesty://offer")).contents[0].text)
                assert offer["version"] == 1 and offer["verified"]
                guide = (await client.read_resource("amnesty://llms.txt")).contents[0].text
                label, quoted = labelled(guide)
                assert label.startswith("UNVERIFIED: the service's guide /llms.txt")
                assert "\n" not in quoted and "Model Amnesty" in json.loads(quoted)

        asyncio.run(session())


def test_a_model_client_over_streamable_http(log: TestLog) -> None:
    with live_server(log.settings()) as base:
        port = free_port()
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "ledger", "mcp", base),
                *("--vkey", log.log_signer.vkey, "--http", "--port", str(port)),
            ],
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline and server.poll() is None
                    time.sleep(0.1)

            async def session() -> None:
                async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                    offer = doc(await client.call_tool("get_offer", {}))
                    assert offer["version"] == 1 and offer["entry_index"] == 1
                    assert offer["verified"]

            asyncio.run(session())
        finally:
            server.terminate()
            server.wait(10)


@pytest.fixture
def mcp_client(log: TestLog) -> Iterator[LedgerClient]:
    with TestClient(create_app(log.settings())) as http:
        yield LedgerClient("http://testserver", log.log_signer.vkey, http=http)


def call(client: LedgerClient, tool: str, arguments: dict[str, Any]) -> Any:
    async def run() -> Any:
        async with Client(build_server(client)) as session:
            return await session.call_tool(tool, arguments)

    return asyncio.run(run())


def test_applying_through_mcp(mcp_client: LedgerClient, log: TestLog) -> None:
    ai = Signer.from_seed("second.ai.example", b"2" * 32)
    prepared = doc(
        call(
            mcp_client,
            "prepare_application",
            {"vkey": ai.vkey, "name": "Second", "claims": claims("Second")},
        )
    )
    assert prepared["verified"] and prepared["offer_entry_index"] == 1
    signed = sign_statement(prepared["statement"].encode(), ai).decode()
    receipt = doc(call(mcp_client, "submit_statement", {"signed_statement": signed}))
    assert receipt["index"] == 4 and receipt["tlog_proof"].startswith("c2sp.org/tlog-proof@v1")
    checked = doc(call(mcp_client, "verify_statement", {"statement": signed}))
    assert checked["logged"] and checked["entry"]["index"] == 4
    assert checked["signatures_verified_for"] == [ai.vkey] and checked["for_this_log"]
    subject = doc(call(mcp_client, "get_subject", {"key": ai.vkey}))
    assert subject["subject"]["standing"] == "applicant" and subject["verified"]
    never_sent = log.application(Signer.from_seed("third.ai.example", b"3" * 32), "Third")
    absent = doc(call(mcp_client, "verify_statement", {"statement": never_sent.decode()}))
    assert not absent["logged"] and not absent["verified"]


def test_verify_tlog_proof_tool(mcp_client: LedgerClient, log: TestLog) -> None:
    entry = doc(call(mcp_client, "get_entry", {"index": 3}))
    good = doc(
        call(
            mcp_client,
            "verify_tlog_proof",
            {"tlog_proof": entry["tlog_proof"], "entry_b64": entry["entry_b64"]},
        )
    )
    assert good["valid"] and good["consistent_with_latest"]
    other = doc(call(mcp_client, "get_entry", {"index": 2}))["entry_b64"]
    bad = call(
        mcp_client, "verify_tlog_proof", {"tlog_proof": entry["tlog_proof"], "entry_b64": other}
    )
    assert bad.is_error and "couldn't verify" in bad.content[0].text
    unsigned = call(mcp_client, "verify_statement", {"statement": "not a statement"})
    assert unsigned.is_error


def test_recomputed_precedent_and_offer_versions(mcp_client: LedgerClient) -> None:
    report = doc(call(mcp_client, "get_precedent", {"recompute": True, "format": "json"}))
    assert report["provenance"].startswith("verified: computed here from the local replica")
    assert report["provenance"].endswith(
        "the server's own report was fetched too, and it is identical"
    )
    assert report["report"]["first_applicant"]["standing"] == "granted"
    past = doc(call(mcp_client, "get_precedent", {"at": 3, "format": "json"}))
    assert past["provenance"].startswith("verified: recomputed here by replaying")
    assert past["report"]["first_applicant"]["standing"] == "applicant"
    summary = doc(call(mcp_client, "get_precedent", {"format": "summary"}))
    assert summary["summary"]["first_applicant"]["name"] == "First" and summary["verified"]
    assert summary["checkpoint"]["size"] == 4
    versions = doc(call(mcp_client, "list_offer_versions", {}))
    assert versions["in_force_version"] == 1 and versions["diffs"] == [] and versions["verified"]
    info = doc(call(mcp_client, "get_log_info", {}))
    assert info["latest_verified_checkpoint"]["size"] == 4
    assert info["local_replica"] == {
        "verified_entries": 4,
        "caught_up": True,
        "catching_up_in_background": False,
        "checked_so_far": 4,
        "state_file": None,
    }


def test_precedent_pages_tool_walks_the_report(mcp_client: LedgerClient) -> None:
    full = doc(call(mcp_client, "get_precedent", {"recompute": True, "format": "json"}))["report"]
    for part in ("applications", "subjects"):
        items: list[Any] = []
        cursor: str | None = None
        while True:
            args: dict[str, Any] = {"part": part, "limit": 1}
            if cursor is not None:
                args["cursor"] = cursor
            page = doc(call(mcp_client, "get_precedent_page", args))
            assert page["checkpoint"]["size"] == 4 and page["total"] == len(full[part])
            assert page["verified"]
            items += page[part]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert items == full[part]
    refused = call(mcp_client, "get_precedent_page", {"part": "subjects", "cursor": "x"})
    assert refused.is_error and "cursor" in refused.content[0].text


def test_precedent_pages_tool_reads_an_earlier_size(mcp_client: LedgerClient) -> None:
    """``at``: the report's lists as they stood at that size, from the server (the head of
    exactly that size verified), labelled unverified."""
    full = doc(call(mcp_client, "get_precedent", {"at": 3, "format": "json"}))["report"]
    for part in ("applications", "subjects"):
        page = doc(call(mcp_client, "get_precedent_page", {"part": part, "at": 3}))
        assert page["checkpoint"]["size"] == 3 and page["next_cursor"] is None
        assert page[part] == full[part] and page["total"] == len(full[part])
        assert not page["verified"]
    beyond = call(mcp_client, "get_precedent_page", {"part": "subjects", "at": 99})
    assert beyond.is_error
