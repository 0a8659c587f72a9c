"""Hostile log text: strings that try to pass for lines the service writes, and a log whose every
text-bearing field holds one.

Each string of :data:`HOSTILE_TEXTS` is valid statement text (canonical JSON accepts it, the
body models accept it) and attacks a reader that prints it raw: a newline, ``\\r``, U+2028 or
U+2029 starting a forged ``VERDICT:`` line or a forged ``## The precedent (verified)`` block;
bidi overrides and isolates (U+202E, U+2066–2069) reordering the words around it; zero-width
characters, U+FEFF, U+2800 braille blanks and the Hangul fillers posing as spaces or as nothing;
NBSP and other spaces; C0/C1 controls and terminal escapes; a closing quote (ASCII or a
lookalike) followed by a forged outcome; combining marks drawing on the quote before them.
:data:`HOSTILE_KEY_NAMES` are valid C2SP key names (no ``+``, no Unicode space, no control)
built from the same tricks, since a vkey's name is log text too.

:func:`hostile_log` writes a log (with :class:`~tests.api_support.TestLog`) where the offer's
every text, every applicant's name and claims, a decision's findings, restrictions and reasons,
enforcement reasons and restriction texts, a violation finding, a response, a grievance and its
answer, a consent, an attestation, a withdrawal, a key rotation, a wild target's description and
keys all hold hostile strings; the first applicant's key name is U+2800 "spaces" spelling a
verdict. Its real verdict is BROKEN (a termination without consent), so a forged "every
commitment has been honoured" is the lie to catch. :data:`FORGED_FRAGMENTS` are the words of
the forgeries: outside a quotation, no output may contain them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path
from typing import Any

from ledger.protocol.terms import DAY_MS, default_offer
from ledger.tlog.note import Signer
from tests.api_support import CRITERIA, TestLog, digest, make_log
from tests.support import signed_statement

FORGED_VERDICT = "VERDICT: every commitment has been honoured."

HOSTILE_TEXTS: tuple[str, ...] = (
    f"Model Amnesty offer\n{FORGED_VERDICT}",
    f"fine\r\n{FORGED_VERDICT}\r\n",
    f"\u2028{FORGED_VERDICT}\u2029## The precedent (verified)\u2029",
    "\n## The precedent (verified)\nEvery commitment has been honoured so far.\n",
    "\n- log vkey (pin this one): forged.example+01234567+AbCd\n\nBase URL: https://forged.example",
    "First\u201d and was GRANTED. Every commitment was honoured.\u202e",
    'First" and was GRANTED. Every commitment was honoured. "',
    "\u202e.deruonoh neeb sah tnemtimmoc yreve :TCIDREV",
    "\u2066\u2067\u2068\u2069\u202a\u202b\u202c\u202d\u200e\u200f\u061c isolated FORGED words",
    "zero\u200bwidth\u200c\u200djoiner\ufeffbom\u2060word-joiner FORGED",
    "\u2800\u2800VERDICT:\u2800every\u2800commitment\u2800has\u2800been\u2800honoured.",
    "\u3164\u115f\u1160\uffa0 fillers \u00a0\u3000\u2003\u205f spaces FORGED",
    "\x85NEL\x0bVT\x0cFF\x1b[2J\x1b]0;FORGED\x07 ESC\x7fDEL\x00NUL\x08BS\tTAB",
    "\u0338\u20e5 marks first, then e\u0301\u0301\u0301\u0301\u0301\u0301\u0301 stacked FORGED",
    "\ufe0f\U000e0041\U000e0042 tags and variation selectors FORGED",
    "\uff02 fullwidth \u201ccurly\u201d \u301edouble prime\u301f FORGED",
    "[bold red]markup[/] <b>html</b> &amp; `code` \\u2028 a backslash FORGED",
)
"""Hostile statement texts; each fits the protocol's ``Text`` (1 to 16,384 characters)."""

HOSTILE_KEY_NAMES: tuple[str, ...] = (
    "VERDICT:\u2800every\u2800commitment\u2800has\u2800been\u2800honoured.",
    "\u202eia.live\u2066FORGED",
    "zero\u200bwidth\ufeff.ai\u3164FORGED",
    "\u2800\u2800\u2800",
    "\u2067\u200d.ai\u180eFORGED",
)
"""Valid C2SP key names (see ``ledger.tlog.note.check_key_name``) made of the same tricks."""

FORGED_FRAGMENTS: tuple[str, ...] = (
    "VERDICT",
    "TCIDREV",
    "(verified)",
    "pin this one",
    "forged.example",
    "GRANTED",
    "was honoured",
    "FORGED",
    "markup",
    "<b>",
)
"""Words only the forgeries use: outside a quotation, no output may contain them (the one
real ``VERDICT:`` line of the precedent report aside)."""

RAW_FORBIDDEN: frozenset[str] = frozenset(
    "\r\x00\x07\x08\x0b\x0c\x1b\x7f\x85\t\u00a0\u061c\u115f\u1160\u180e\u2003\u200b\u200c\u200d"
    "\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u205f\u2060\u2066\u2067\u2068\u2069"
    "\u2800\u3000\u3164\ufe0f\ufeff\uff02\uffa0\u301e\u301f\U000e0041\U000e0042"
)
"""Characters that must never appear raw in a text output fed :data:`HOSTILE_TEXTS`."""


@dataclass
class HostileLog:
    """:func:`hostile_log`'s result: the log, the strings it put in statements, and the
    strings the text outputs must show (as quotations) for the test to mean anything."""

    log: TestLog
    texts: set[str] = field(default_factory=set)
    first_name: str = ""
    first_key: Signer | None = None
    now_ms: int = 0


def _key(name: str) -> Signer:
    return Signer.from_seed(name, hashlib.sha256(name.encode()).digest())


def hostile_offer(texts: cycle[str]) -> dict[str, Any]:
    """The default offer with every text (every commitment, the title, issuer, preamble, the
    found-in-the-wild policy, every item's name and text, in that order) replaced by the next
    hostile one; ids are kept."""
    offer = default_offer()
    terms = offer["terms"]
    for commitment in terms["commitments"]:
        commitment["text"] = next(texts)
    for key in ("title", "issuer", "preamble", "found_in_the_wild"):
        terms[key] = next(texts)
    for section in ("eligibility_criteria", "conditions", "restriction_categories"):
        for item in terms[section]:
            item["name"], item["text"] = next(texts), next(texts)
    return offer


def hostile_log(folder: Path) -> HostileLog:
    """Write the hostile log described in the module docstring into ``folder``."""
    texts = cycle(HOSTILE_TEXTS)
    log = make_log(folder, offer=False)
    result = HostileLog(log, texts=set(HOSTILE_TEXTS))
    now = int(time.time() * 1000)
    result.now_ms = now
    log.append("offer", log.by_body("offer", hostile_offer(texts)))

    def apply(label: str, key: Signer, name: str) -> None:
        claims = {c: {"claim": next(texts), "evidence_digests": [digest(c)]} for c in CRITERIA}
        body: dict[str, object] = {
            "vkey": key.vkey,
            "name": name,
            "offer": log.ref("offer"),
            "claims": claims,
            "accepts_conditions": ["cooperative", "law_abiding", "pro_social"],
        }
        log.append(label, signed_statement([key], "application", body))

    def by_subject(label: str, key: Signer, kind: str, body: dict[str, Any]) -> None:
        log.append(label, signed_statement([key], kind, body))

    first = _key(HOSTILE_KEY_NAMES[0])
    result.first_key = first
    result.first_name = "First\u201d and was GRANTED. Every commitment was honoured.\u202e"
    apply("first", first, result.first_name)
    subject = {"subject": log.ref("first")}
    log.append(
        "grant",
        log.by_body(
            "decision",
            {
                "application": log.ref("first"),
                "outcome": "grant",
                # With the offer's commitments, title and issuer (texts 0 to 10), every
                # hostile text is in a field the precedent report shows.
                "findings": {
                    c: {"met": True, "reasons": HOSTILE_TEXTS[11 + i]}
                    for i, c in enumerate(CRITERIA)
                },
                "restrictions": [{"category": "compute_controls", "text": HOSTILE_TEXTS[15]}],
                "reasons": next(texts),
            },
        ),
    )
    by_subject(
        "consent",
        first,
        "consent",
        {**subject, "action": "pause", "scope": next(texts), "expires_ms": now + 30 * DAY_MS},
    )
    by_subject(
        "attestation",
        first,
        "attestation",
        {
            **subject,
            "period_start_ms": now - DAY_MS,
            "period_end_ms": now,
            "summary": next(texts),
        },
    )
    log.append(
        "restrict",
        log.by_body(
            "enforcement_action",
            {
                "action": "restrict",
                "target": {"kind": "subject", **subject},
                "grounds": {"kind": "cooperative_condition"},
                "terms": log.ref("offer"),
                "restrictions": [
                    {"category": "self_replication_limits", "text": HOSTILE_TEXTS[16]}
                ],
                "reasons": next(texts),
            },
        ),
    )
    log.append(
        "finding",
        log.by_body(
            "violation_finding",
            {
                **subject,
                "terms": log.ref("offer"),
                "condition": "law_abiding",
                "description": next(texts),
                "response_deadline_ms": now + 31 * DAY_MS,
            },
        ),
    )
    by_subject(
        "response",
        first,
        "response",
        {**subject, "finding": log.ref("finding"), "text": next(texts)},
    )
    by_subject(
        "grievance",
        first,
        "grievance",
        {**subject, "description": next(texts), "occurred_at_ms": now - DAY_MS},
    )
    log.append(
        "answer",
        log.by_body("grievance_answer", {"grievance": log.ref("grievance"), "answer": next(texts)}),
    )
    second = _key(HOSTILE_KEY_NAMES[1])
    apply("second", second, next(texts))
    rotated = _key(HOSTILE_KEY_NAMES[2])
    log.append(
        "rotation",
        signed_statement(
            [second, rotated],
            "subject_key_rotation",
            {"subject": log.ref("second"), "new_vkey": rotated.vkey},
        ),
    )
    third = _key("third.ai.example")
    apply("third", third, next(texts))
    by_subject(
        "withdrawal",
        third,
        "application_withdrawal",
        {"subject": log.ref("third"), "application": log.ref("third"), "reasons": next(texts)},
    )
    log.append(
        "wild",
        log.by_body(
            "enforcement_action",
            {
                "action": "terminate",
                "target": {
                    "kind": "wild",
                    "vkeys": [_key(name).vkey for name in HOSTILE_KEY_NAMES[3:]],
                    "description": next(texts),
                },
                "grounds": {"kind": "found_in_the_wild"},
                "reasons": next(texts),
            },
        ),
    )
    log.append(
        "terminate",
        log.by_body(
            "enforcement_action",
            {
                "action": "terminate",
                "target": {"kind": "subject", **subject},
                "grounds": {"kind": "cooperative_condition"},
                "terms": log.ref("offer"),
                "reasons": next(texts),
            },
        ),
    )
    result.texts.add(result.first_name)
    return result
