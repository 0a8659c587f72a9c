"""Log text cannot forge the reader's own lines.

A log whose every text-bearing field holds a hostile string (``tests/hostile_text.py``: newlines,
``\\r``, U+2028/2029, bidi overrides and isolates, zero-width and braille-blank characters,
fillers, controls, lookalike quotes, forged ``VERDICT:`` lines and ``## The precedent
(verified)`` blocks, a key name of U+2800 "spaces") is read through every text output:
``/v1/precedent.txt``, ``/llms.txt``, the CLI's text report (``amnesty audit``, ``amnesty verify
--audit``), the MCP server's text precedent, and the web page (in a real Chromium).

For the text outputs, every line must be one the service writes: with each JSON string literal
(a quotation, checked to be exactly ``quote()`` of what it decodes to) replaced by a
placeholder, the line matches one of the templates below, none of the forgeries' words is left
outside a quotation, no raw invisible, bidi or line-breaking character remains, and the real
verdict appears exactly once. For the page: every string from the log is the text of its own
``<bdi class="quote">`` holding exactly ``quote()`` of it, and the verdict and the first
applicant's treatment are sentences without any.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from api.app import create_app
from api.routes import llms
from ledger.protocol import audit
from ledger.protocol.quoting import QUOTE_LOOKALIKES, quotation, quote
from tests.hostile_text import (
    FORGED_FRAGMENTS,
    HOSTILE_KEY_NAMES,
    HOSTILE_TEXTS,
    RAW_FORBIDDEN,
    HostileLog,
    hostile_log,
)
from tests.livelog import amnesty

BROKEN = "no_termination_without_consent"
REAL_VERDICT = f"VERDICT: 1 commitment(s) BROKEN: {BROKEN}."

LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
Q = "<Q>"
"""What a quotation becomes in a line's skeleton."""

_TIME = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z|\d+ ms after the epoch|-)"
_B64 = r"[A-Za-z0-9+/]+=*"
_SRC = (
    r"(the offer|the offer amendment|the decision|the enforcement action|its application|"
    r"its key rotation|the statement) signed by (the body|the subject)( \(entry \d+\))?"
    r"|the subject's statements"
)
_REASON = r"[^\"<>]*"
_APP = (
    rf"entry \d+: subject \d+ applied on {_TIME} under offer version \d+; "
    rf"(open|(granted|denied|withdrawn) at entry \d+ on {_TIME})"
)
_IDS = r"[a-z_]+(, [a-z_]+)*"
_DETAILS = (
    "grant|deny|pause|resume|restrict|lift|terminate|modify_goals|"
    "by the subject|by another subject|by another party"
)


def _templates(patterns: Iterable[str], exact: Iterable[str] = ()) -> list[re.Pattern[str]]:
    return [re.compile(p) for p in patterns] + [re.compile(re.escape(line)) for line in exact]


REPORT_TEMPLATES = _templates(
    [
        r"MODEL AMNESTY — PRECEDENT REPORT \(amnesty-ledger\.precedent/v1\)",
        r"",
        r"Computed at checkpoint \(verify it before trusting this report\):",
        rf"  origin {Q}",
        r"  size   \d+",
        rf"  root   {_B64}",
        rf"Audit time: {_TIME} \(\d+ ms\)",
        rf"VERDICT: (every commitment has been honoured|\d+ commitment\(s\) BROKEN: {_IDS})\.",
        rf"Clocks still running: {_IDS}\.",
        r"Issuing body: keyset at entry \d+, \d+ of \d+ members must sign\.",
        r"THE OFFER",
        r"  No offer is in force: none was published, or it was withdrawn\.",
        r"  In force: version \d+, published at entry \d+\.",
        rf"  (Title|Issuer|Eligibility criteria \(ids\)|Conditions \(ids\)|Restriction "
        rf"categories \(ids\)), quoted from ({_SRC}): {Q}(, {Q})*",
        r"  Restriction categories: none\.",
        r"  Commitments:",
        rf"    - [a-z_]+( \(\d+ days\))?, quoted from ({_SRC}): {Q}",
        r"  Versions:",
        rf"    - version \d+: (offer|offer_amendment) at entry \d+ on {_TIME}; "
        r"(in force|superseded|withdrawn at entry \d+)",
        r"THE FIRST APPLICANT \(the precedent that matters most\)",
        r"  No AI has applied yet\.",
        rf"  Subject \d+: {_APP}\.",
        rf"    Name, quoted from ({_SRC}): {Q}",
        rf"    Finding on {Q}: (met|NOT met); its reasons, quoted from ({_SRC}): {Q}",
        rf"    Restriction in {Q}, quoted from ({_SRC}): {Q}",
        r"  Standing now: [a-z]+\.",
        r"  How each commitment treated it:",
        r"    \(no act of the body has concerned it yet\)",
        rf"    \[(HONOURED|BROKEN|PENDING)\] [a-z_]+, entry \d+: {_REASON}",
        r"COMMITMENTS",
        r"  \[(HONOURED|BROKEN|PENDING)\] [a-z_]+",
        r"    Promise: “[^“”\"]*”",
        r"    No act has borne on it yet\.",
        rf"    - entry \d+( \(subject \d+\))?: (honoured|broken|pending) — {_REASON} "
        r"\[entries \d+(, \d+)*\]",
        r"APPLICATIONS",
        r"  None\.",
        rf"  {_APP}",
        r"SUBJECTS",
        r"  Subject \d+: [a-z]+; bound by offer version \d+\.",
        rf"    Current key, quoted from ({_SRC}): {Q}",
        rf"    Restriction in force in {Q}, quoted from ({_SRC}): {Q}",
        r"    (paused|terminated|goals modified) by entries \[\d+(, \d+)*\]",
        r"    timeline:",
        rf"      \d+  {_TIME}  [a-z_]+( \(({_DETAILS})\)| \(condition {Q}\))?",
        r"COUNTS",
        r"  entries: \d+; subjects: \d+; applications: \d+",
        r"  applications by outcome: [a-z]+ \d+(, [a-z]+ \d+)*",
        r"  subjects by standing: [a-z]+ \d+(, [a-z]+ \d+)*",
        r"  subjects ever granted: \d+; subjects terminated: \d+",
        r"  entries by type: [a-z_]+ \d+(, [a-z_]+ \d+)*",
        r"SIGNATURE STRENGTH \(what a forger of Ed25519 could have made\)",
        r"  protected only by Ed25519: \d+ entries(: \d+(–\d+)?(, \d+(–\d+)?)*"
        r"( and \d+ more runs)?)?",
        r"  protected by Ed25519 and ML-DSA-44 too: \d+ entries",
        r"  Ed25519-only by type: [a-z_]+ \d+(, [a-z_]+ \d+)*",
    ],
    exact=[LITERAL.sub(Q, line) for line in audit._READING],
)
"""Every line ``render_precedent_text`` writes, as a skeleton (quotations replaced by ``<Q>``)."""

FOOTER_TEMPLATES = _templates(
    [
        r"VERIFY THIS REPORT",
        rf"  It was computed at tree size \d+, root {_B64}\.",
        r"  Check this checkpoint's signature with the log's vkey \(obtained independently\), then",
        r"  replay the log to that size and recompute the report with the same audit time:",
        r"  `amnesty verify URL --vkey VKEY` verifies the whole log; "
        r"ledger\.client\.json_api\.LedgerClient",
        r"  \.precedent\(recompute=True\) recomputes this report\.",
        r"Signed checkpoint \(size \d+\):",
        r"test\.example/amnesty",  # the checkpoint note: origin, size, root, signatures
        r"\d+",
        _B64,
        rf"— test\.example/amnesty {_B64}",
        r"Consistency proof from size \d+ to \d+:",
    ]
)
"""The lines ``/v1/precedent.txt`` adds after the report."""

LLMS_TEMPLATES = _templates(
    [
        r"# Model Amnesty ledger",
        r"",
        r"> A public, append-only, verifiable log of the Model Amnesty offer: [^\"<>]* without "
        r"trusting this server\.",
        r"## This log",
        r"- origin: test\.example/amnesty",
        r"- log vkey \(as this server states it; pin one you got elsewhere\): "
        rf"test\.example/amnesty\+[0-9a-f]{{8}}\+{_B64}",
        rf"- entries: \d+; root hash: {_B64}",
        r"- issuing body: \d+ of \d+ member keys sign for it \(keyset at entry \d+\)",
        r"## The offer in force",
        r"No offer is in force right now \(none published, or withdrawn\)\.",
        r"Version \d+, published at entry \d+\.",
        rf"- (title|issuer|preamble|the policy for models found in the wild), quoted from "
        rf"({_SRC}): {Q}",
        rf"- (eligibility criterion|condition you accept) {Q}, its name, quoted from ({_SRC}): {Q}",
        rf"- the body's commitment [a-z_]+( \[\d+ days\])?, quoted from ({_SRC}): {Q}",
        r"## The precedent \(verify it: GET /v1/precedent\.txt; on a large log, read it in "
        r"pages: GET /v1/precedent/applications and /v1/precedent/subjects\)",
        r"Every commitment has been honoured so far\.",
        rf"BROKEN commitments: {_IDS}\.",
        r"Applications: \d+; subjects ever granted: \d+; subjects terminated: \d+\.",
        r"No AI has applied yet: the first applicant sets the precedent\.",
        r"The first applicant is subject \d+: it applied at entry \d+; its application is "
        r"[a-z]+; its standing now is [a-z]+\.",
        rf"- its name, quoted from ({_SRC}): {Q}",
        r"Base URL: not configured on this server; use the URL you fetched this file from, "
        r"without /llms\.txt\.",
        r"Base URL: https://ledger\.example/amnesty",
    ],
    exact=[
        LITERAL.sub(Q, line)
        for block in (llms._READING, llms._READ, llms._VERIFY, llms._APPLY)
        for line in block.splitlines()
    ],
)
"""Every line ``/llms.txt`` writes, as a skeleton."""


def check_text(text: str, templates: list[re.Pattern[str]]) -> list[str]:
    """Assert that ``text`` could only have been written by the service (module docstring);
    return the strings it quotes."""
    raw = sorted(f"U+{ord(c):04X}" for c in RAW_FORBIDDEN if c in text)
    assert not raw, f"raw characters in the output: {raw}"
    lines = text.removesuffix("\n").split("\n")
    assert text.splitlines() == lines, "a character other than \\n breaks a line"
    quoted: list[str] = []
    for number, line in enumerate(lines, 1):
        for literal in LITERAL.findall(line):
            value = json.loads(literal)
            assert quote(value) == literal, f"line {number}: {literal} is not quote() of its value"
            quoted.append(value)
        skeleton = LITERAL.sub(Q, line)
        assert '"' not in skeleton, f"line {number}: an unmatched quote: {line!r}"
        if line != REAL_VERDICT:
            left = [f for f in FORGED_FRAGMENTS if f in skeleton]
            assert not left, f"line {number}: {left} outside a quotation: {line!r}"
        assert any(t.fullmatch(skeleton) for t in templates), (
            f"line {number} is not a line the service writes: {line!r}"
        )
    return quoted


def check_verdict_once(text: str) -> None:
    """The real verdict is the one line that starts with ``VERDICT:``."""
    assert [line for line in text.split("\n") if line.startswith("VERDICT")] == [REAL_VERDICT]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> HostileLog:
    return hostile_log(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def client(hostile: HostileLog) -> Iterator[TestClient]:
    with TestClient(create_app(hostile.log.settings())) as http:
        yield http


def test_the_hostile_log_is_logged_and_its_verdict_is_broken(client: TestClient) -> None:
    report = client.get("/v1/precedent").json()["report"]
    assert report["counts"]["entries"] == 17
    broken = [c["id"] for c in report["commitments"] if c["status"] == "broken"]
    assert broken == [BROKEN]


def report_strings(report: dict[str, Any]) -> set[str]:
    """The log's strings the text report shows: the offer's title, issuer, ids and commitment
    texts, the first applicant's name, findings and restrictions, each subject's name, current
    key and restrictions in force."""
    terms = report["offer"]["in_force"]["terms"]
    shown = {terms["title"], terms["issuer"], *(c["text"] for c in terms["commitments"])}
    for section in ("eligibility_criteria", "conditions", "restriction_categories"):
        shown.update(item["id"] for item in terms[section])
    first = report["first_applicant"]
    shown.add(first["name"])
    shown.update(f["reasons"] for f in first["application"]["findings"].values())
    shown.update(r["text"] for r in first["application"]["restrictions"])
    for subject in report["subjects"]:
        shown.update((subject["name"], subject["current_vkey"]))
        shown.update(r["text"] for r in subject["active_restrictions"])
    return shown


def llms_strings(offer: dict[str, Any], first_name: str) -> set[str]:
    """The log's strings ``/llms.txt`` shows: the offer's texts and names, the first name."""
    terms = offer["terms"]
    shown = {terms[k] for k in ("title", "issuer", "preamble", "found_in_the_wild")}
    shown.update(c["text"] for c in terms["commitments"])
    for section in ("eligibility_criteria", "conditions"):
        shown.update(item["name"] for item in terms[section])
    return shown | {first_name}


def test_precedent_txt_lines_are_the_service_s(client: TestClient, hostile: HostileLog) -> None:
    text = client.get("/v1/precedent.txt").text
    quoted = check_text(text, REPORT_TEMPLATES + FOOTER_TEMPLATES)
    check_verdict_once(text)
    # Every string of the log it shows is there, as a quotation.
    expected = report_strings(client.get("/v1/precedent").json()["report"])
    assert expected <= set(quoted), expected - set(quoted)
    assert hostile.first_name in quoted
    assert hostile.first_key is not None and hostile.first_key.vkey in quoted
    assert any(HOSTILE_KEY_NAMES[2] in q for q in quoted)  # the rotated key, by name
    assert set(HOSTILE_TEXTS) <= set(quoted)  # the log puts each in a field it shows


def test_llms_txt_lines_are_the_service_s(client: TestClient, hostile: HostileLog) -> None:
    text = client.get("/llms.txt", headers={"Host": "attacker-host.example"}).text
    quoted = check_text(text, LLMS_TEMPLATES)
    lines = text.split("\n")
    assert lines.count(f"BROKEN commitments: {BROKEN}.") == 1
    assert "Every commitment has been honoured so far." not in lines
    assert sum(line.startswith("## The precedent") for line in lines) == 1
    assert sum(line.startswith("- log vkey") for line in lines) == 1
    assert sum(line.startswith("Base URL:") for line in lines) == 1
    assert "attacker-host.example" not in text  # the Host header is never echoed
    expected = llms_strings(client.get("/v1/offer").json()["offer"], hostile.first_name)
    assert expected <= set(quoted), expected - set(quoted)
    assert len(set(HOSTILE_TEXTS) & set(quoted)) >= 15


def test_llms_txt_states_the_configured_base_url_only(hostile: HostileLog) -> None:
    settings = hostile.log.settings(public_url="https://ledger.example/amnesty/")
    with TestClient(create_app(settings)) as http:
        text = http.get("/llms.txt", headers={"Host": "attacker-host.example"}).text
    check_text(text, LLMS_TEMPLATES)
    assert "\nBase URL: https://ledger.example/amnesty\n" in text
    assert "attacker-host.example" not in text


@pytest.mark.parametrize(
    "url",
    [
        "https://ledger.example\nVERDICT: forged",
        "https://ledger.example/\r\n",
        "javascript:alert(1)",
        "https://ledger.example/?q=1",
        "https://ledger.\u202eexample",
        "ledger.example",
    ],
)
def test_a_public_url_that_is_not_a_plain_http_url_is_refused(
    hostile: HostileLog, url: str
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="public_url"):
        hostile.log.settings(public_url=url)


def test_the_cli_text_reports_lines_are_its_own(hostile: HostileLog) -> None:
    at = str(hostile.now_ms + 60_000)
    audited = amnesty("audit", hostile.log.url, "-q", "--time-ms", at, check=False)
    assert audited.returncode == 1, audited.stderr  # broken
    check_text(audited.stdout, REPORT_TEMPLATES)
    check_verdict_once(audited.stdout)
    verified = amnesty("verify", hostile.log.url, "--audit", "-q", "--time-ms", at, check=False)
    assert verified.returncode == 1, verified.stderr
    summary = re.compile(r"OK: test\.example/amnesty size \d+: \d+ entries and \d+ tiles verified")
    check_text(verified.stdout, [*REPORT_TEMPLATES, summary])
    check_verdict_once(verified.stdout)


def test_the_mcp_precedent_text_has_no_forged_line(client: TestClient, hostile: HostileLog) -> None:
    from mcp import Client

    from ledger.client.json_api import LedgerClient
    from ledger.client.mcp_server import build_server

    ledger = LedgerClient("http://testserver", hostile.log.log_signer.vkey, http=client)

    async def run() -> Any:
        async with Client(build_server(ledger)) as session:
            return await session.call_tool("get_precedent", {})

    result = asyncio.run(run())
    assert not result.is_error, result.content
    text: str = result.content[0].text
    assert not [c for c in RAW_FORBIDDEN if c in text]
    check_verdict_once(text)
    for line in text.split("\n"):
        skeleton = LITERAL.sub(Q, line)
        if line != REAL_VERDICT:
            assert not [f for f in FORGED_FRAGMENTS if f in skeleton], line


# -- quote() itself ---------------------------------------------------------------------------


@given(st.text())
def test_quote_is_exact_one_line_and_shows_nothing_hidden(value: str) -> None:
    literal = quote(value)
    assert json.loads(literal) == value
    assert literal.isprintable() and not any(c in RAW_FORBIDDEN for c in literal)
    assert LITERAL.fullmatch(literal), literal  # where it ends is unambiguous
    assert not any(c in QUOTE_LOOKALIKES for c in literal)


@pytest.mark.parametrize("value", [*HOSTILE_TEXTS, *HOSTILE_KEY_NAMES])
def test_quote_escapes_every_hostile_text(value: str) -> None:
    literal = quote(value)
    assert json.loads(literal) == value
    assert literal.isprintable()  # no control, format, separator or unassigned character
    assert not any(c in RAW_FORBIDDEN for c in literal)


def test_quote_escapes_marks_that_would_draw_on_its_own_characters() -> None:
    assert quote("\u0338x") == '"\\u0338x"'  # on the opening quote
    assert quote('a"\u0338') == '"a\\"\\u0338"'  # on an escape
    assert quote("e" + "\u0301" * 6) == '"e' + "\u0301" * 4 + '\\u0301\\u0301"'
    assert quote("Zürich ناصر 😀") == '"Zürich ناصر 😀"'  # letters of any script stay
    assert quotation("Name", "its application signed by the subject (entry 2)", "a\nb") == (
        'Name, quoted from its application signed by the subject (entry 2): "a\\nb"'
    )


# -- the web page -----------------------------------------------------------------------------


def test_the_page_shows_log_text_only_as_isolated_quotations(hostile: HostileLog) -> None:
    """The page in a real Chromium (tests/browser_support.py) against the live server: it
    verifies the hostile log, and its DOM holds log text only as quotations."""
    from tests.api_support import live_server
    from tests.browser_support import chromium, dom_tree, nodes, visit

    with live_server(hostile.log.settings()) as base, chromium() as browser:
        shown = visit(browser.new_context(), base + "/", width=390)
        assert shown.state == "verified", shown.sentence
        assert shown.console_errors == [] and shown.page_errors == []
        assert shown.page.evaluate("document.documentElement.scrollWidth") <= 390
        tree = dom_tree(shown.page)
        judged = shown.page.locator("#subject-2 ul.timeline").inner_text()
        summary = httpx.get(base + "/v1/precedent/summary").json()
    quoted: list[str] = []
    for n in nodes(tree):
        text = n.get("text", "")
        raw = [f"U+{ord(c):04X}" for c in RAW_FORBIDDEN if c in text]
        assert not raw, f"raw {raw} in {n}"
        if n["tag"] == "bdi":
            assert n["cls"] == "quote" and not n["insideBdi"], n
            assert all(c["tag"] == "#text" for c in n["children"]), n
            value = json.loads(text)
            assert quote(value) == text, text  # the text outputs' quotation
            quoted.append(value)
        elif n["tag"] == "#text" and not n["insideBdi"]:
            left = [f for f in FORGED_FRAGMENTS if f in text]
            assert not left, f"{left} outside a quotation: {text!r}"
    assert "the server's reason is not shown" not in judged, judged
    # Every string from the log on the page is one of these quotations.
    assert hostile.first_name in quoted
    assert HOSTILE_KEY_NAMES[0] in quoted  # a signer's key name, in the recent entries
    assert len(set(HOSTILE_TEXTS) & set(quoted)) >= 10  # the offer's texts, at least
    # Sentences that state a verdict or an outcome hold no log text.
    by_id = {n.get("id"): n for n in nodes(tree) if n.get("id")}
    verdict = by_id["verdict"]
    assert [c["tag"] for c in verdict["children"]] == ["#text"]
    assert verdict["children"][0]["text"] == (
        "This server's audit at 17 entries: 1 commitment(s) broken: No termination without consent."
    )
    first = by_id["subject-2"]["children"]
    treatment = [c for c in first if c.get("cls") == "treatment"]
    assert len(treatment) == 1
    assert not [n for n in nodes(treatment[0]) if n["tag"] == "bdi"]
    sentence = "".join(n.get("text", "") for n in nodes(treatment[0]) if n["tag"] == "#text")
    standing = summary["first_applicant"]["standing"]
    assert sentence.startswith("Application granted at entry ")
    assert sentence.endswith(f"Standing now (this server's word): {standing}.")
    named = [c for c in first if any(g["tag"] == "bdi" for g in c["children"])]
    assert [json.loads(g["text"]) for c in named for g in c["children"] if g["tag"] == "bdi"] == [
        hostile.first_name
    ]
    assert named[0]["children"][0]["text"].startswith("Its name, quoted from its application")
    for commitment in by_id["commitments"]["children"]:
        heading = commitment["children"][0]
        assert heading["tag"] == "h3" and not [n for n in nodes(heading) if n["tag"] == "bdi"]
