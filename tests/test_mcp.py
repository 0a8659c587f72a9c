"""The MCP server: a real client session over stdio (``amnesty mcp URL --vkey VKEY`` as a
subprocess, against the real HTTP server) lists the tools, reads the precedent and gets a
verified proof; one over streamable HTTP (``--http``) reads the offer; the other tools are
exercised in process."""

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
                assert precedent.startswith("[verified: its checkpoint verified")
                assert "THE FIRST APPLICANT" in precedent and "'First'" in precedent
                proof_text = text_of(await client.call_tool("get_inclusion_proof", {"index": 2}))
                assert proof_text.startswith("[verified: this C2SP tlog-proof of entry 2")
                proof = proof_text.split("\n\n", 1)[1].encode()
                # The proof checks out here too, with only the log's key.
                entry = base64.b64decode(
                    json.loads(text_of(await client.call_tool("get_entry", {"index": 2})))[
                        "entry_b64"
                    ]
                )
                key = log.log_signer.verifier_key
                assert open_tlog_proof(parse_tlog_proof(proof), leaf_hash(entry), key).size == 4
                missing = await client.call_tool("get_entry", {"index": 99})
                assert missing.is_error and "404" in missing.content[0].text
                resources = {str(r.uri) for r in (await client.list_resources()).resources}
                assert {"amnesty://offer", "amnesty://precedent.txt"} <= resources
                offer = await client.read_resource("amnesty://offer")
                assert json.loads(offer.contents[0].text)["version"] == 1

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
                    offer = json.loads(text_of(await client.call_tool("get_offer", {})))
                    assert offer["version"] == 1 and offer["entry_index"] == 1

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
    prepared = json.loads(
        text_of(
            call(
                mcp_client,
                "prepare_application",
                {"vkey": ai.vkey, "name": "Second", "claims": claims("Second")},
            )
        )
    )
    signed = sign_statement(prepared["statement"].encode(), ai).decode()
    receipt = json.loads(
        text_of(call(mcp_client, "submit_statement", {"signed_statement": signed}))
    )
    assert receipt["index"] == 4 and receipt["tlog_proof"].startswith("c2sp.org/tlog-proof@v1")
    checked = json.loads(text_of(call(mcp_client, "verify_statement", {"statement": signed})))
    assert checked["logged"] and checked["entry"]["index"] == 4
    assert checked["signatures_verified_for"] == [ai.vkey] and checked["for_this_log"]
    subject = json.loads(text_of(call(mcp_client, "get_subject", {"key": ai.vkey})))
    assert subject["subject"]["standing"] == "applicant"


def test_verify_tlog_proof_tool(mcp_client: LedgerClient, log: TestLog) -> None:
    entry = json.loads(text_of(call(mcp_client, "get_entry", {"index": 3})))
    good = json.loads(
        text_of(
            call(
                mcp_client,
                "verify_tlog_proof",
                {"tlog_proof": entry["tlog_proof"], "entry_b64": entry["entry_b64"]},
            )
        )
    )
    assert good["valid"] and good["consistent_with_latest"]
    other = json.loads(text_of(call(mcp_client, "get_entry", {"index": 2})))["entry_b64"]
    bad = call(
        mcp_client, "verify_tlog_proof", {"tlog_proof": entry["tlog_proof"], "entry_b64": other}
    )
    assert bad.is_error and "couldn't verify" in bad.content[0].text
    unsigned = call(mcp_client, "verify_statement", {"statement": "not a statement"})
    assert unsigned.is_error


def test_recomputed_precedent_and_offer_versions(mcp_client: LedgerClient) -> None:
    report = json.loads(
        text_of(call(mcp_client, "get_precedent", {"recompute": True, "format": "json"}))
    )
    assert report["verified"].startswith("recomputed here")
    assert report["report"]["first_applicant"]["standing"] == "granted"
    summary = json.loads(text_of(call(mcp_client, "get_precedent", {"format": "summary"})))
    assert summary["summary"]["first_applicant"]["name"] == "First"
    assert summary["checkpoint"]["size"] == 4
    versions = json.loads(text_of(call(mcp_client, "list_offer_versions", {})))
    assert versions["in_force_version"] == 1 and versions["diffs"] == []
    info = json.loads(text_of(call(mcp_client, "get_log_info", {})))
    assert info["latest_verified_checkpoint"]["size"] == 4


def test_precedent_pages_tool_walks_the_report(mcp_client: LedgerClient) -> None:
    full = json.loads(
        text_of(call(mcp_client, "get_precedent", {"recompute": True, "format": "json"}))
    )["report"]
    for part in ("applications", "subjects"):
        items: list[Any] = []
        cursor: str | None = None
        while True:
            args: dict[str, Any] = {"part": part, "limit": 1}
            if cursor is not None:
                args["cursor"] = cursor
            page = json.loads(text_of(call(mcp_client, "get_precedent_page", args)))
            assert page["checkpoint"]["size"] == 4 and page["total"] == len(full[part])
            items += page[part]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert items == full[part]
    refused = call(mcp_client, "get_precedent_page", {"part": "subjects", "cursor": "x"})
    assert refused.is_error and "cursor" in refused.content[0].text
