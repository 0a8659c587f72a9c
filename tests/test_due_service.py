"""What is due, over the wire: ``GET /v1/due`` (the same report the protocol computes, 422 for
a time before the last entry), the Prometheus gauges of the nearest deadline, the MCP tool
``get_due`` (verified from the local replica, UNVERIFIED while it has not caught up), and the
CLI ``amnesty due`` against a real database (exit 1 when overdue, the API's refusal words)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mcp import Client

from api.app import create_app
from ledger.client.json_api import LedgerClient
from ledger.client.mcp_server import build_server
from ledger.protocol.terms import DAY_MS
from ledger.tlog.note import Signer
from tests.api_support import TestLog, live_server, make_log
from tests.livelog import amnesty


@pytest.fixture
def log(tmp_path: Path) -> TestLog:
    """Keyset 0, offer 1, an open application 2 (its 90-day decision clock running)."""
    log = make_log(tmp_path)
    log.append("first", log.application(Signer.from_seed("first.ai.example", b"1" * 32), "First"))
    return log


def _applied_ms(log: TestLog) -> int:
    return int(json.loads(log.entries["first"][1])["log_time_ms"])


def _call(client: LedgerClient, arguments: dict[str, Any]) -> str:
    async def run() -> str:
        async with Client(build_server(client)) as session:
            result = await session.call_tool("get_due", arguments)
            assert not result.is_error, result.content
            text: str = result.content[0].text
            return text

    return asyncio.run(run())


def test_get_due_lists_the_open_decision_and_refuses_a_time_before_the_log(log: TestLog) -> None:
    applied = _applied_ms(log)
    deadline = applied + 90 * DAY_MS
    with TestClient(create_app(log.settings())) as http:
        now = http.get("/v1/due").json()
        assert now["checkpoint"]["size"] == 3 and now["due"]["checkpoint"]["size"] == 3
        (clock,) = now["due"]["clocks"]
        assert clock["kind"] == "decision" and clock["deadline_ms"] == deadline
        assert clock["subject_name"] == "First" and not clock["overdue"]
        late = http.get("/v1/due", params={"at_ms": deadline + 1}).json()["due"]
        assert late["overdue"] == 1 and late["clocks"][0]["time_left_ms"] == -1
        early = http.get("/v1/due", params={"at_ms": applied - 1})
        assert early.status_code == 422
        problem = early.json()
        assert problem["type"].endswith("/refused")
        assert "before the last entry's log time" in problem["detail"]
        metrics = http.get("/metrics").text
    nearest = re.search(r"^amnesty_due_nearest_deadline_seconds (\S+)$", metrics, re.M)
    assert nearest is not None and 0 < float(nearest.group(1)) <= 90 * 86_400
    assert re.search(r"^amnesty_due_overdue 0\.0$", metrics, re.M)


def test_the_mcp_tool_computes_due_from_the_replica_or_says_unverified(log: TestLog) -> None:
    with TestClient(create_app(log.settings())) as http:
        verified = LedgerClient("http://testserver", log.log_signer.vkey, http=http)
        label, _, body = _call(verified, {}).partition("\n\n")
        assert label.startswith("[verified: computed here from the local replica")
        document = json.loads(body)
        assert document["verified"] and document["due"]["clocks"][0]["about_index"] == 2
        text = _call(verified, {"format": "text"})
        assert 'quoted from the application signed by the subject (entry 2): "First"' in text
        lazy = LedgerClient("http://testserver", log.log_signer.vkey, http=http, max_catch_up=0)
        label, _, body = _call(lazy, {}).partition("\n\n")
        assert label.startswith("[UNVERIFIED")
        document = json.loads(body)
        assert not document["verified"]
        assert document["due"]["clocks"][0]["deadline_ms"] == _applied_ms(log) + 90 * DAY_MS


def test_amnesty_due_exits_1_when_overdue_and_refuses_a_time_before_the_log(
    log: TestLog,
) -> None:
    applied = _applied_ms(log)
    on_time = amnesty("due", log.url, "-q", "--json")
    assert json.loads(on_time.stdout)["open"] == 1
    text = amnesty("due", log.url, "-q").stdout
    assert "the body owes a decision on the application (the application at entry 2" in text
    warned = amnesty("due", log.url, "-q", "--warn-days", "100", check=False)
    assert warned.returncode == 1 and "WARNING: 1 deadline(s)" in warned.stdout
    late = amnesty(
        "due", log.url, "-q", "--time-ms", str(applied + 91 * DAY_MS), "--json", check=False
    )
    assert late.returncode == 1 and json.loads(late.stdout)["overdue"] == 1
    early = amnesty("due", log.url, "-q", "--time-ms", str(applied - 1), "--json", check=False)
    assert early.returncode == 2
    error = json.loads(early.stdout)["error"]
    assert error["code"] == "refused" and "before the last entry's log time" in error["detail"]


def test_amnesty_monitor_warns_once_before_a_deadline(log: TestLog, tmp_path: Path) -> None:
    state = str(tmp_path / "monitor.json")
    args = ("monitor", log.url, "--state", state, "--iterations", "1", "--json")
    quiet = amnesty(*args, "--warn-days", "80").stdout
    assert "deadline_near" not in quiet  # 90 days away: not yet
    events = [json.loads(line) for line in amnesty(*args, "--warn-days", "100").stdout.splitlines()]
    near = [e for e in events if e["kind"] == "deadline_near"]
    assert len(near) == 1 and near[0]["index"] == 2
    assert near[0]["details"]["commitment"] == "decision_within_promised_time"
    again = amnesty(*args, "--warn-days", "100").stdout
    assert "deadline_near" not in again  # warned once, remembered in the state file


def test_amnesty_due_over_http_verifies_the_log_itself(log: TestLog) -> None:
    with live_server(log.settings()) as url:
        needs_key = amnesty("due", url, "-q", "--json", check=False)
        assert needs_key.returncode == 2 and "--vkey is required" in needs_key.stderr
        report = json.loads(
            amnesty("due", url, "--vkey", log.log_signer.vkey, "-q", "--json").stdout
        )
    assert report["checkpoint"]["size"] == 3 and report["clocks"][0]["about_index"] == 2
