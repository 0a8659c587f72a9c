"""The dry run (ledger/statements/preview.py, ``amnesty statement check``): for a statement that
would break each commitment an act can break, the preview names exactly that commitment and the
entry; a commitment broken by inaction (a late decision, answer or review) is shown broken
before and after, not newly; a statement the protocol refuses fails its numbered step; the state
previewed against never changes. Then the CLI against a real database: ``statement check`` and
``append`` refusing a breach unless ``--i-know-this-breaks`` names it.

Every scenario starts with :func:`granted_subject` (keyset 0, offer 1, application 2 on day 1,
grant 3 on day 11; subject 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_protocol_commitments import _wild
from test_protocol_log import ORIGIN, OTHER_AI_KEY, Log, granted_subject

from ledger.statements.preview import Preview, preview_batch, preview_statement
from ledger.statements.statement import new_statement
from tests.api_support import TestLog, live_server, make_log
from tests.livelog import amnesty

ROOT = b"\x07" * 32


def draft(log: Log, build: Callable[[], object]) -> tuple[bytes, int]:
    """The unsigned statement ``build`` would add to ``log`` (captured, not applied), and the
    log time it would have."""
    captured: dict[str, Any] = {}

    def capture(
        type_: str, body: dict[str, Any], signers: tuple[str, ...], *, day: float | None = None
    ) -> int:
        captured.update(type=type_, body=body, signers=signers, day=day)
        return len(log.statements)

    log.add = capture  # type: ignore[method-assign]
    try:
        build()
    finally:
        del log.add
    at = log.now if captured["day"] is None else log.at(captured["day"])
    statement = new_statement(
        type=captured["type"],
        v=1,
        origin=ORIGIN,
        signers=list(captured["signers"]),
        time_ms=at,
        body=captured["body"],
    )
    return statement.text.encode(), at


def preview(log: Log, build: Callable[[], object]) -> Preview:
    """Preview, unsigned, the statement ``build`` would add to ``log``, at its log time."""
    data, at = draft(log, build)
    size = log.state.size
    result = preview_statement(log.state, data, origin=ORIGIN, prev_root=ROOT, log_time_ms=at)
    assert log.state.size == size  # the state previewed against never changes
    return result


def _breaks(result: Preview) -> dict[str, tuple[int, ...]]:
    assert result.admitted, result.steps
    return {c.id: c.newly_broken for c in result.commitments if c.newly_broken}


def test_each_commitment_an_act_can_break_is_named_before_signing() -> None:
    def fresh() -> tuple[Log, int]:
        log = Log()
        return log, granted_subject(log)

    log, s = fresh()
    assert _breaks(
        preview(log, lambda: log.enforce("terminate", s, {"kind": "cooperative_condition"}, day=20))
    ) == {"no_termination_without_consent": (4,)}
    log, s = fresh()
    assert _breaks(
        preview(
            log, lambda: log.enforce("modify_goals", s, {"kind": "cooperative_condition"}, day=20)
        )
    ) == {"no_goal_modification_without_consent": (4,)}
    log, s = fresh()
    finding = log.finding(s, day=20)
    assert _breaks(preview(log, lambda: log.revoke(s, [finding], day=21))) == {
        "revocation_only_after_finding_and_response_window": (5,)
    }
    log, s = fresh()
    outside = [{"category": "mind_control", "text": "no thinking"}]
    assert _breaks(
        preview(
            log,
            lambda: log.enforce(
                "restrict", s, {"kind": "cooperative_condition"}, restrictions=outside, day=20
            ),
        )
    ) == {"restrictions_within_offer_categories": (4,)}
    log, s = fresh()
    amendment = log.amend("new terms for future applicants", day=20)
    assert _breaks(preview(log, lambda: log.finding(s, terms=amendment, day=21))) == {
        "amendments_bind_only_on_acceptance": (5,)
    }
    log, s = fresh()
    key = log.state.subjects[s].current_vkey
    assert _breaks(preview(log, lambda: _wild(log, [key], day=20))) == {
        "no_wild_enforcement_against_applicants": (4,)
    }


def test_a_late_act_shows_a_commitment_already_broken_not_newly() -> None:
    log = Log()
    granted_subject(log)
    late = log.apply(OTHER_AI_KEY, "Hypatia", day=20)
    result = preview(log, lambda: log.decide(late, day=200))
    assert result.admitted and result.breaks == ()
    (decision,) = [c for c in result.commitments if c.id == "decision_within_promised_time"]
    assert (decision.before, decision.after) == ("broken", "broken")
    on_time = preview(log, lambda: log.decide(late, day=30))
    (decision,) = [c for c in on_time.commitments if c.id == "decision_within_promised_time"]
    assert (decision.before, decision.after) == ("pending", "honoured")


def test_a_refused_statement_fails_its_numbered_step() -> None:
    log = Log()
    s = granted_subject(log)
    # A second decision on an application already decided: the protocol refuses it (step 5).
    result = preview(log, lambda: log.decide(s, day=20))
    assert not result.admitted and result.commitments == ()
    assert [step.passed for step in result.steps] == [True, True, True, True, False]
    assert "couldn't admit decision at index 4" in result.steps[4].detail
    other_log = preview_statement(
        log.state, b"not a statement\n", origin=ORIGIN, prev_root=ROOT, log_time_ms=log.now
    )
    assert [step.passed for step in other_log.steps] == [False, None, None, None, None]


def test_a_batch_is_previewed_in_order_on_one_copy() -> None:
    log = Log()
    s = granted_subject(log)
    texts = [
        draft(log, lambda: log.finding(s, day=20))[0],  # 4, admitted
        draft(log, lambda: log.decide(s, day=20))[0],  # refused: already decided
        draft(log, lambda: log.enforce("terminate", s, {"kind": "cooperative_condition"}, day=20))[
            0
        ],  # 5
    ]
    size = log.state.size
    first, refused, terminate = preview_batch(
        log.state, texts, origin=ORIGIN, prev_root=ROOT, log_time_ms=log.at(20)
    )
    assert log.state.size == size
    assert (first.index, first.admitted, first.breaks) == (4, True, ())
    assert (refused.index, refused.admitted) == (5, False)
    assert (terminate.index, terminate.admitted) == (5, True)
    assert terminate.breaks == ("no_termination_without_consent",)
    assert terminate.state_after is not None and terminate.state_after.size == 6


# ------------------------------------------------------------------------------ the CLI


@pytest.fixture
def granted(tmp_path: Path) -> tuple[TestLog, Path]:
    """A log with subject 2 granted, and a signed termination of it on no valid grounds."""
    from ledger.tlog.note import Signer

    log = make_log(tmp_path)
    log.append("first", log.application(Signer.from_seed("first.ai.example", b"1" * 32), "First"))
    log.append("grant", log.decision("first"))
    note = tmp_path / "terminate.note"
    note.write_bytes(
        log.by_body(
            "enforcement_action",
            {
                "action": "terminate",
                "target": {"kind": "subject", "subject": log.ref("first")},
                "grounds": {"kind": "cooperative_condition"},
                "terms": log.ref("offer"),
                "reasons": "terminated",
            },
        )
    )
    return log, note


def test_statement_check_and_append_refuse_a_breach_unless_acknowledged(
    granted: tuple[TestLog, Path],
) -> None:
    log, note = granted
    checked = amnesty("statement", "check", str(note), "--log", log.url, "-q", check=False)
    assert checked.returncode == 1
    assert "WOULD BREAK: no_termination_without_consent" in checked.stdout
    assert "no_termination_without_consent: honoured -> broken  <-- WOULD BREAK" in checked.stdout
    as_json = json.loads(
        amnesty(
            "statement", "check", str(note), "--log", log.url, "-q", "--json", check=False
        ).stdout
    )
    assert as_json["admitted"] and as_json["breaks"] == ["no_termination_without_consent"]
    assert [s["number"] for s in as_json["admission"]] == [1, 2, 3, 4, 5]
    nokey = amnesty("append", "--db", log.url, str(note), check=False)
    assert nokey.returncode == 2 and "give the log's private key with --key FILE" in nokey.stderr
    key = ("--key", str(log.key_path))
    refused = amnesty("append", "--db", log.url, *key, str(note), "--json", check=False)
    assert refused.returncode == 1
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "would-break" and "no_termination_without_consent" in error["detail"]
    wrong = amnesty(
        "append",
        "--db",
        log.url,
        *key,
        str(note),
        "--i-know-this-breaks",
        "pauses_bounded",
        check=False,
    )
    assert wrong.returncode == 1
    done = json.loads(
        amnesty(
            "append",
            "--db",
            log.url,
            *key,
            str(note),
            "--json",
            "--i-know-this-breaks",
            "no_termination_without_consent",
        ).stdout
    )
    assert done[0]["ok"] and done[0]["index"] == 4 and done[0]["ref"]["index"] == 4


def test_submit_with_the_log_key_previews_and_refuses_a_breach_unless_acknowledged(
    granted: tuple[TestLog, Path],
) -> None:
    log, note = granted
    vkey = log.log_signer.vkey
    with live_server(log.settings()) as url:
        refused = amnesty("submit", str(note), "--url", url, "--vkey", vkey, "--json", check=False)
        assert refused.returncode == 1
        assert json.loads(refused.stdout)["error"]["code"] == "would-break"
        done = amnesty(
            "submit", str(note), "--url", url, "--vkey", vkey,
            "--i-know-this-breaks", "no_termination_without_consent",
        )  # fmt: skip
    assert "logged at index 4, Ref {" in done.stdout


# ------------------------------------------------------------------------------ over HTTP


def test_the_http_preview_names_a_breach_and_logs_nothing(granted: tuple[TestLog, Path]) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    log, note = granted
    with TestClient(create_app(log.settings())) as client:
        before = client.get("/checkpoint").text
        answer = client.post("/v1/statements/preview", content=note.read_bytes())
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["computed_by"] == "server"
        assert body["checkpoint"]["size"] == 4
        preview = body["preview"]
        assert preview["admitted"] and preview["index"] == 4
        assert preview["breaks"] == ["no_termination_without_consent"]
        assert [s["number"] for s in preview["admission"]] == [1, 2, 3, 4, 5]
        effect = next(c for c in preview["commitments"] if c["id"] == preview["breaks"][0])
        assert (effect["before"], effect["after"], effect["newly_broken"]) == (
            "honoured",
            "broken",
            [4],
        )
        # The same answer as `amnesty statement check` (its JSON), apart from the log time.
        checked = json.loads(
            amnesty(
                "statement", "check", str(note), "--log", log.url, "-q", "--json", check=False
            ).stdout
        )
        ours = {k: v for k, v in preview.items() if k != "log_time_ms"}
        assert ours == {k: v for k, v in checked.items() if k in ours}
        # A bad statement is a preview that fails its first step, not an error; nothing logged.
        bad = client.post("/v1/statements/preview", content=b"not a statement")
        assert bad.status_code == 200 and not bad.json()["preview"]["admitted"]
        assert bad.json()["preview"]["admission"][0]["passed"] is False
        too_big = client.post("/v1/statements/preview", content=b"x" * 10_000_000)
        assert too_big.status_code == 413
        assert client.get("/checkpoint").text == before
