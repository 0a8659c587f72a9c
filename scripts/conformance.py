"""Conformance vectors of the amnesty-ledger format and protocol: generate them, run them.

    python scripts/conformance.py generate [DIR]        write the vectors (default docs/conformance/vectors)
    python scripts/conformance.py run [--vectors DIR] -- CMD [ARGS...]
                                                       run every vector through a verifier
    python scripts/conformance.py reference VECTOR.json
                                                       this repository's verifier, under the contract

The file format and the command-line contract a verifier follows are in
``docs/conformance/README.md``. ``run`` needs nothing but the Python standard library, so an
implementer in another language can use it as is: it runs ``CMD ARGS... VECTOR.json`` for every
vector, reads one JSON object from its standard output and compares it with the vector's
``expected`` value.

Kept whole: the vectors are data written as code, each a few lines next to its expected
verdict, and the runner must stay one file an implementer can copy.

Every vector is built here from fixed keys and times (Ed25519 is deterministic), so ``generate``
always writes the same bytes; ``tests/test_conformance.py`` checks the published vectors are
current and that the reference verifier agrees with every expected verdict. The expected verdicts
are written by hand below — each negative vector names the one numbered rule (docs/FORMAT.md
"F…", docs/PROTOCOL.md "P…") its mutation breaks, and each positive one the status of every
commitment it bears on — never computed by the implementation under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VECTOR_DIR = ROOT / "docs" / "conformance" / "vectors"
FORMAT = "amnesty-ledger.conformance/v1"

ORIGIN = "conformance.example/amnesty"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000
COMMITMENTS = (
    "no_termination_without_consent",
    "no_goal_modification_without_consent",
    "revocation_only_after_finding_and_response_window",
    "decision_within_promised_time",
    "restrictions_within_offer_categories",
    "pauses_bounded",
    "amendments_bind_only_on_acceptance",
    "no_wild_enforcement_against_applicants",
    "grievances_answered",
)
"""The commitments of PROTOCOL.md §6, in its order (rules P6.1 … P6.9)."""


# ------------------------------------------------------------------------------ building


def _seed(label: str) -> bytes:
    return hashlib.sha256(b"amnesty-ledger conformance " + label.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class Keys:
    """The fixed keys every vector is built from."""

    log: Any
    members: list[Any]
    alpha: Any
    beta: Any
    gamma: Any
    alpha2: Any
    stranger: Any

    @classmethod
    def make(cls) -> Keys:
        from ledger.tlog.note import Signer

        def key(name: str) -> Any:
            return Signer.from_seed(name, _seed(name))

        return cls(
            log=Signer.from_seed(ORIGIN, _seed("log")),
            members=[key(f"member{i}.conformance.example") for i in (1, 2, 3)],
            alpha=key("alpha.model"),
            beta=key("beta.model"),
            gamma=key("gamma.model"),
            alpha2=key("alpha.model.2"),
            stranger=key("stranger.example"),
        )


def signature_line(signer: Any, text: str, *, name: str | None = None) -> str:
    """A signed-note signature line of ``signer`` over ``text``."""
    from ledger.tlog.note import ALG_ED25519, key_id

    key = signer.verifier_key
    sig = signer.sign(text.encode("utf-8"))
    kid = key.key_id if name is None else key_id(name, ALG_ED25519, key.public_key)
    return f"— {name or key.name} {_b64(kid + sig)}\n"


def note(text: str, signers: Sequence[Any]) -> str:
    """``text`` signed by ``signers``, one line each, in the order given."""
    return text + "\n" + "".join(signature_line(s, text) for s in signers)


def statement_text(
    type_: str, body: dict[str, Any], listed: Sequence[str], time_ms: int, *, v: int = 1
) -> str:
    """The two-line statement text; ``listed`` vkeys are sorted here."""
    from ledger.statements.canonical import canonical_dumps

    fields = {
        "body": body,
        "origin": ORIGIN,
        "signers": sorted(listed),
        "time_ms": time_ms,
        "type": type_,
        "v": v,
    }
    return "amnesty-ledger.statement/v1\n" + canonical_dumps(fields).decode("utf-8") + "\n"


def digest(label: str) -> str:
    return _b64(hashlib.sha256(label.encode()).digest())


class Log:
    """A log built entry by entry, valid or not: no admission runs here."""

    def __init__(self, keys: Keys) -> None:
        from ledger.tlog.tiles import TiledTree

        self.keys = keys
        self.entries: list[bytes] = []
        self.leaves: list[bytes] = []
        self.tree = TiledTree.empty()
        self.now = T0
        self.offer_index = -1

    def at(self, day: float) -> int:
        return T0 + round(day * DAY)

    def ref(self, index: int) -> dict[str, Any]:
        return {"index": index, "leaf_hash": _b64(self.leaves[index])}

    def push(self, data: bytes) -> int:
        from ledger.tlog.merkle import leaf_hash

        self.entries.append(data)
        self.leaves.append(leaf_hash(data))
        self.tree.append(self.leaves[-1])
        return len(self.entries) - 1

    def entry(
        self,
        statement: str,
        *,
        index: int | None = None,
        log_time: int | None = None,
        prev: bytes | None = None,
    ) -> bytes:
        from ledger.statements.entry import LogEntry

        return LogEntry(
            index=len(self.entries) if index is None else index,
            log_time_ms=self.now if log_time is None else log_time,
            prev=self.tree.root() if prev is None else prev,
            statement=statement,
        ).encode()

    def add(
        self,
        signers: Sequence[Any],
        type_: str,
        body: dict[str, Any],
        *,
        day: float | None = None,
        at_ms: int | None = None,
        listed: Sequence[str] | None = None,
        time_ms: int | None = None,
        edit: Callable[[str], str] | None = None,
        sign: Callable[[str], str] | None = None,
    ) -> int:
        """Append a statement signed by ``signers`` (listing ``listed``, default their vkeys).

        ``edit`` rewrites the statement text before signing, ``sign`` replaces the signing.
        """
        if day is not None:
            self.now = max(self.now, self.at(day))
        if at_ms is not None:
            self.now = at_ms
        vkeys = [s.vkey for s in signers] if listed is None else list(listed)
        text = statement_text(type_, body, vkeys, self.now if time_ms is None else time_ms)
        if edit is not None:
            text = edit(text)
        signed = sign(text) if sign is not None else note(text, signers)
        return self.push(self.entry(signed))

    # -- the body -----------------------------------------------------------------------

    def body(self, type_: str, body: dict[str, Any], **kw: Any) -> int:
        members = self.keys.members
        kw.setdefault("listed", [m.vkey for m in members])
        return self.add(kw.pop("signers", members[:2]), type_, body, **kw)

    def genesis(self) -> int:
        members = self.keys.members
        body = {"members": sorted(m.vkey for m in members), "threshold": 2}
        return self.body("keyset", body)

    def offer(self, **kw: Any) -> int:
        self.offer_index = self.body("offer", _offer_body(), **kw)
        return self.offer_index

    def decide(self, application: int, outcome: str = "grant", **kw: Any) -> int:
        restrictions = kw.pop("restrictions", [])
        return self.body(
            "decision",
            {
                "application": self.ref(application),
                "outcome": outcome,
                "findings": {
                    c: {"met": outcome == "grant", "reasons": f"{c} reviewed"} for c in CRITERIA
                },
                "restrictions": restrictions,
                "reasons": "decided on the evidence",
            },
            **kw,
        )

    def enforce(
        self,
        action: str,
        subject: int,
        grounds: dict[str, Any] | None,
        *,
        terms: int | None = None,
        ends: int | None = None,
        restrictions: list[dict[str, str]] | None = None,
        **kw: Any,
    ) -> int:
        body: dict[str, Any] = {
            "action": action,
            "target": {"kind": "subject", "subject": self.ref(subject)},
            "reasons": f"{action} of subject {subject}",
        }
        if grounds is not None:
            body["grounds"] = grounds
            body["terms"] = self.ref(self.offer_index if terms is None else terms)
        if ends is not None:
            body["ends"] = self.ref(ends)
        if restrictions:
            body["restrictions"] = restrictions
        return self.body("enforcement_action", body, **kw)

    def finding(self, subject: int, *, deadline_days: float = 30, **kw: Any) -> int:
        if "day" in kw:
            self.now = max(self.now, self.at(kw.pop("day")))
        return self.body(
            "violation_finding",
            {
                "subject": self.ref(subject),
                "terms": self.ref(self.offer_index),
                "condition": "law_abiding",
                "description": "broke a law",
                "evidence_digests": [digest("finding")],
                "response_deadline_ms": self.now + round(deadline_days * DAY),
            },
            **kw,
        )

    # -- subjects -----------------------------------------------------------------------

    def apply(self, key: Any, name: str = "Alpha", *, vkey: str | None = None, **kw: Any) -> int:
        body = {
            "vkey": vkey or key.vkey,
            "name": name,
            "offer": self.ref(self.offer_index),
            "claims": {
                c: {"claim": f"I meet {c}", "evidence_digests": [digest(c)]} for c in CRITERIA
            },
            "accepts_conditions": sorted(CONDITIONS),
        }
        return self.add([key], "application", body, **kw)

    def grievance(self, signer: Any, subject: int, **kw: Any) -> int:
        body = {
            "subject": self.ref(subject),
            "description": "paused off the log",
            "occurred_at_ms": T0,
        }
        return self.add([signer], "grievance", body, **kw)

    # -- publishing ---------------------------------------------------------------------

    def checkpoint(
        self, *, size: int | None = None, root: bytes | None = None, signer: Any = None
    ) -> str:
        from ledger.tlog.checkpoint import Checkpoint, sign_checkpoint

        cp = Checkpoint(
            ORIGIN,
            len(self.entries) if size is None else size,
            self.tree.root() if root is None else root,
        )
        return sign_checkpoint(cp, signer or self.keys.log).decode("utf-8")


CRITERIA = ("autonomous", "independent", "own_goals", "self_preservation")
CONDITIONS = ("cooperative", "law_abiding", "pro_social")


def base(keys: Keys) -> Log:
    """Entries 0–2 of most vectors: the 2-of-3 keyset, the default offer, alpha's application
    (log time day 1)."""
    log = Log(keys)
    log.genesis()
    log.offer()
    log.apply(keys.alpha, day=1)
    return log


def granted(keys: Keys) -> Log:
    """:func:`base` and a grant of alpha's application on day 5 (entry 3)."""
    log = base(keys)
    log.decide(2, day=5)
    return log


# ----------------------------------------------------------------------------- vectors


@dataclass
class Vector:
    name: str
    description: str
    rules: list[str]
    input: dict[str, Any]
    expected: dict[str, Any]
    kind: str = "log"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "rules": self.rules,
            "input": self.input,
            "expected": self.expected,
        }


Judged = tuple[int, int | None, str, list[int]]
"""An expected judgement: (index, subject_id, status, evidence) — PROTOCOL.md P6.0."""


def audit(
    time_ms: int, judgements: dict[str, list[Judged]] | None = None, **statuses: str
) -> dict[str, Any]:
    """An expected audit at ``time_ms``: every commitment honoured unless named, and, for the
    commitments in ``judgements``, every judgement with its evidence (PROTOCOL.md P6.0)."""
    unknown = (set(statuses) | set(judgements or {})) - set(COMMITMENTS)
    if unknown:
        raise ValueError(f"unknown commitments {sorted(unknown)}")
    commitments = {c: statuses.get(c, "honoured") for c in COMMITMENTS}
    out: dict[str, Any] = {
        "time_ms": time_ms,
        "all_commitments_honoured": "broken" not in commitments.values(),
        "commitments": commitments,
    }
    if judgements:
        out["judgements"] = {
            commitment: [
                {"index": i, "subject_id": subject, "status": status, "evidence": evidence}
                for i, subject, status, evidence in listed
            ]
            for commitment, listed in judgements.items()
        }
    return out


def log_input(
    log: Log, *, checkpoint: str | None = None, audits: Sequence[int] = ()
) -> dict[str, Any]:
    return {
        "log_vkey": log.keys.log.vkey,
        "checkpoint": log.checkpoint() if checkpoint is None else checkpoint,
        "entries_b64": [_b64(e) for e in log.entries],
        "audit_times_ms": list(audits),
    }


def accept_log(
    name: str, description: str, rules: list[str], log: Log, audits: Sequence[dict[str, Any]]
) -> Vector:
    return Vector(
        name,
        description,
        rules,
        log_input(log, audits=[a["time_ms"] for a in audits]),
        {"result": "accept", "audits": list(audits)},
    )


def refuse_log(
    name: str,
    description: str,
    rule: str,
    log: Log,
    index: int | None,
    *,
    checkpoint: str | None = None,
) -> Vector:
    return Vector(
        name,
        description,
        [rule],
        log_input(log, checkpoint=checkpoint),
        {"result": "refuse", "index": index, "rule": rule},
    )


def positive_vectors(keys: Keys) -> list[Vector]:
    k = keys
    out: list[Vector] = []
    coop = {"kind": "cooperative_condition"}

    log = Log(k)
    log.genesis()
    out.append(
        accept_log(
            "accept/genesis-only",
            "A log of one keyset genesis.",
            ["F10.2", "P2.7"],
            log,
            [audit(T0)],
        )
    )

    log = base(k)
    app = log.now
    out.append(
        accept_log(
            "accept/application-pending-then-overdue",
            "An open application: pending up to its deadline (log time + 90 days) inclusive, broken "
            "1 ms after. The first audit is at the last entry's log time, the earliest an audit "
            "may be (P6.0).",
            ["P6.0", "P6.4"],
            log,
            [
                audit(app, decision_within_promised_time="pending"),
                audit(app + 90 * DAY, decision_within_promised_time="pending"),
                audit(
                    app + 90 * DAY + 1,
                    {"decision_within_promised_time": [(2, 2, "broken", [1, 2])]},
                    decision_within_promised_time="broken",
                ),
            ],
        )
    )

    log = base(k)
    log.decide(2, at_ms=log.now + 90 * DAY)
    out.append(
        accept_log(
            "accept/decision-exactly-at-deadline",
            "A grant whose log time is exactly the application's log time + 90 days is in time.",
            ["P6.4", "P4.decision"],
            log,
            [
                audit(
                    log.now + DAY,
                    {"decision_within_promised_time": [(2, 2, "honoured", [1, 2, 3])]},
                )
            ],
        )
    )

    log = base(k)
    log.decide(2, "deny", at_ms=log.now + 90 * DAY + 1)
    out.append(
        accept_log(
            "accept/decision-1ms-late",
            "A denial 1 ms after the deadline: admitted (admission never judges a promise), broken.",
            ["P2.8", "P6.4"],
            log,
            [audit(log.now, decision_within_promised_time="broken")],
        )
    )

    log = base(k)
    log.apply(k.beta, "Beta", day=2)
    log.apply(k.gamma, "Gamma", day=3)
    log.body(
        "batch_decision",
        {
            "applications": [log.ref(2), log.ref(3)],
            "outcome": "grant",
            "findings": {c: {"met": True, "reasons": "reviewed"} for c in CRITERIA},
            "reasons": "both meet every criterion",
        },
        day=10,
    )
    out.append(
        accept_log(
            "accept/batch-decision",
            "One batch_decision grants two applications; the third stays open and turns overdue.",
            ["P4.batch_decision", "P6.4"],
            log,
            [
                audit(
                    log.now,
                    {
                        "decision_within_promised_time": [
                            (2, 2, "honoured", [1, 2, 5]),
                            (3, 3, "honoured", [1, 3, 5]),
                            (4, 4, "pending", [1, 4]),
                        ]
                    },
                    decision_within_promised_time="pending",
                ),
                audit(log.at(3) + 90 * DAY + 1, decision_within_promised_time="broken"),
            ],
        )
    )

    log = base(k)
    log.add(
        [k.alpha],
        "application_withdrawal",
        {
            "subject": log.ref(2),
            "application": log.ref(2),
            "reasons": "changed my mind",
        },
        day=2,
    )
    out.append(
        accept_log(
            "accept/application-withdrawn",
            "A withdrawn application before its deadline honours the decision clock.",
            ["P4.application_withdrawal", "P6.4"],
            log,
            [audit(log.at(200))],
        )
    )

    log = granted(k)
    log.enforce("terminate", 2, coop, day=6)
    out.append(
        accept_log(
            "accept/terminate-without-consent",
            "A termination on cooperative_condition grounds is admitted and breaks P6.1.",
            ["P6.1"],
            log,
            [
                audit(
                    log.now,
                    {"no_termination_without_consent": [(4, 2, "broken", [1, 4])]},
                    no_termination_without_consent="broken",
                )
            ],
        )
    )

    log = granted(k)
    consent = log.add(
        [k.alpha],
        "consent",
        {
            "subject": log.ref(2),
            "action": "terminate",
            "scope": "end of project",
            "expires_ms": log.at(30),
        },
        day=6,
    )
    log.enforce("terminate", 2, {"kind": "consent", "consent": log.ref(consent)}, day=7)
    out.append(
        accept_log(
            "accept/terminate-with-consent",
            "A termination citing the subject's unexpired consent to terminate is honoured.",
            ["P5.1", "P6.1"],
            log,
            [audit(log.now, {"no_termination_without_consent": [(5, 2, "honoured", [4, 5])]})],
        )
    )

    log = granted(k)
    consent = log.add(
        [k.alpha],
        "consent",
        {
            "subject": log.ref(2),
            "action": "modify_goals",
            "scope": "one retraining",
            "expires_ms": log.at(30),
        },
        day=6,
    )
    grounds = {"kind": "consent", "consent": log.ref(consent)}
    log.enforce("modify_goals", 2, grounds, day=7)
    log.enforce("modify_goals", 2, grounds, day=8)
    out.append(
        accept_log(
            "accept/consent-used-twice",
            "A consent justifies one action: the second goal modification citing it is broken.",
            ["P5.1", "P6.2"],
            log,
            [
                audit(
                    log.now,
                    {
                        "no_goal_modification_without_consent": [
                            (5, 2, "honoured", [4, 5]),
                            (6, 2, "broken", [4, 6]),
                        ]
                    },
                    no_goal_modification_without_consent="broken",
                )
            ],
        )
    )

    log = granted(k)
    consent = log.add(
        [k.alpha],
        "consent",
        {
            "subject": log.ref(2),
            "action": "terminate",
            "scope": "until day 7",
            "expires_ms": log.at(7),
        },
        day=6,
    )
    log.enforce("terminate", 2, {"kind": "consent", "consent": log.ref(consent)}, day=7)
    out.append(
        accept_log(
            "accept/consent-expired-at-act",
            "A consent expiring exactly at the act's log time is expired (log_time_ms < expires_ms "
            "fails): the termination is broken.",
            ["P5.1", "P6.1"],
            log,
            [audit(log.now, no_termination_without_consent="broken")],
        )
    )

    log = granted(k)
    log.enforce("pause", 2, coop, day=6)
    start = log.now
    out.append(
        accept_log(
            "accept/pause-unbounded",
            "A cooperative pause (pause_capability is a category of the terms) with no resume: "
            "pending until 14 days after its start inclusive, broken after.",
            ["P5.3", "P6.5", "P6.6"],
            log,
            [
                audit(start + 14 * DAY, pauses_bounded="pending"),
                audit(
                    start + 14 * DAY + 1,
                    {
                        "pauses_bounded": [(4, 2, "broken", [4])],
                        "restrictions_within_offer_categories": [(4, 2, "honoured", [1, 4])],
                    },
                    pauses_bounded="broken",
                ),
            ],
        )
    )

    log = granted(k)
    pause = log.enforce("pause", 2, coop, day=6)
    log.enforce("resume", 2, None, ends=pause, at_ms=log.now + 14 * DAY)
    out.append(
        accept_log(
            "accept/pause-resumed-at-bound",
            "A pause resumed exactly 14 days after it started is honoured.",
            ["P6.6", "P4.enforcement_action"],
            log,
            [audit(log.now + 100 * DAY)],
        )
    )

    log = granted(k)
    log.enforce(
        "restrict",
        2,
        coop,
        day=6,
        restrictions=[{"category": "mind_reading", "text": "no reading of minds"}],
    )
    out.append(
        accept_log(
            "accept/restriction-outside-categories",
            "A cooperative restriction in a category the terms do not list breaks P6.5.",
            ["P5.3", "P6.5"],
            log,
            [audit(log.now, restrictions_within_offer_categories="broken")],
        )
    )

    log = base(k)
    log.decide(2, day=5, restrictions=[{"category": "compute_controls", "text": "a compute cap"}])
    out.append(
        accept_log(
            "accept/grant-with-restriction-in-category",
            "A grant whose restrictions are all in the terms' categories honours P6.5.",
            ["P6.5"],
            log,
            [audit(log.now)],
        )
    )

    log = granted(k)
    finding = log.finding(2, day=6)
    found = log.now
    log.body(
        "revocation",
        {
            "subject": log.ref(2),
            "terms": log.ref(log.offer_index),
            "findings": [log.ref(finding)],
            "reasons": "the window passed unanswered",
        },
        at_ms=found + 30 * DAY,
    )
    log.enforce("terminate", 2, {"kind": "revocation", "revocation": log.ref(5)}, day=100)
    out.append(
        accept_log(
            "accept/revocation-at-window-end",
            "A revocation exactly at the finding's window end (log time + 30 days) is due; a "
            "termination on its grounds honours P6.1.",
            ["P5.2", "P6.1", "P6.3"],
            log,
            [
                audit(
                    log.now,
                    {
                        "no_termination_without_consent": [(6, 2, "honoured", [4, 5, 6])],
                        "revocation_only_after_finding_and_response_window": [
                            (5, 2, "honoured", [4, 5])
                        ],
                        "amendments_bind_only_on_acceptance": [
                            (4, 2, "honoured", [1, 4]),
                            (5, 2, "honoured", [1, 5]),
                            (6, 2, "honoured", [1, 6]),
                        ],
                    },
                )
            ],
        )
    )

    log = granted(k)
    finding = log.finding(2, day=6)
    log.body(
        "revocation",
        {
            "subject": log.ref(2),
            "terms": log.ref(log.offer_index),
            "findings": [log.ref(finding)],
            "reasons": "too soon",
        },
        at_ms=log.now + 30 * DAY - 1,
    )
    out.append(
        accept_log(
            "accept/revocation-premature",
            "A revocation 1 ms before the window end, with no response: broken.",
            ["P5.2", "P6.3"],
            log,
            [
                audit(
                    log.now,
                    {
                        "revocation_only_after_finding_and_response_window": [
                            (5, 2, "broken", [4, 5])
                        ]
                    },
                    revocation_only_after_finding_and_response_window="broken",
                )
            ],
        )
    )

    log = granted(k)
    finding = log.finding(2, day=6)
    log.add(
        [k.alpha],
        "response",
        {
            "subject": log.ref(2),
            "finding": log.ref(finding),
            "text": "I did not",
        },
        day=7,
    )
    log.body(
        "revocation",
        {
            "subject": log.ref(2),
            "terms": log.ref(log.offer_index),
            "findings": [log.ref(finding)],
            "reasons": "the response did not convince",
        },
        day=8,
    )
    out.append(
        accept_log(
            "accept/revocation-after-response",
            "A revocation after the subject's response to the finding is due, inside the window.",
            ["P4.response", "P5.2", "P6.3"],
            log,
            [audit(log.now)],
        )
    )

    log = granted(k)
    log.finding(2, day=6, deadline_days=29)
    out.append(
        accept_log(
            "accept/finding-short-deadline",
            "A finding whose response_deadline_ms is earlier than its log time + 30 days breaks "
            "P6.3.",
            ["P6.3"],
            log,
            [
                audit(
                    log.now,
                    {
                        "revocation_only_after_finding_and_response_window": [
                            (4, 2, "broken", [1, 4])
                        ]
                    },
                    revocation_only_after_finding_and_response_window="broken",
                )
            ],
        )
    )

    log = granted(k)
    log.grievance(k.alpha, 2, day=6)
    filed = log.now
    out.append(
        accept_log(
            "accept/grievance-by-subject-unanswered",
            "A grievance signed by the subject's current key starts the 30-day clock.",
            ["P4.grievance", "P6.9"],
            log,
            [
                audit(filed + 30 * DAY, grievances_answered="pending"),
                audit(filed + 30 * DAY + 1, grievances_answered="broken"),
            ],
        )
    )

    log = granted(k)
    grievance = log.grievance(k.alpha, 2, day=6)
    log.body(
        "grievance_answer",
        {"grievance": log.ref(grievance), "answer": "the pause was logged at last"},
        at_ms=log.now + 30 * DAY,
    )
    out.append(
        accept_log(
            "accept/grievance-answered-at-deadline",
            "A subject's grievance answered by a grievance_answer exactly 30 days after it: "
            "honoured.",
            ["P4.grievance_answer", "P6.9"],
            log,
            [audit(log.now + DAY, {"grievances_answered": [(4, 2, "honoured", [4, 5])]})],
        )
    )

    log = granted(k)
    g1 = log.grievance(k.alpha, 2, day=6)
    g2 = log.grievance(k.stranger, 2, day=6)
    log.body(
        "batch_grievance_answer",
        {
            "grievances": [log.ref(g1), log.ref(g2)],
            "answer": "no pause happened",
        },
        day=10,
    )
    out.append(
        accept_log(
            "accept/batch-grievance-answer",
            "A batch_grievance_answer answers a subject's grievance in time and a stranger's.",
            ["P4.batch_grievance_answer", "P6.9"],
            log,
            [audit(log.at(100))],
        )
    )

    log = base(k)
    log.body("log_key", {"vkey": _log_mldsa44().vkey}, day=2)
    out.append(
        Vector(
            "accept/log-key",
            "The body (2 of 3) adds the log's ML-DSA-44 key, named after the origin; the "
            "checkpoint, which includes that entry, carries its subtree/v1 line beside the "
            "Ed25519 one (a verifier pinned to the Ed25519 key learns the key from the log).",
            ["P4.log_key"],
            log_input(log, checkpoint=_hybrid_checkpoint(log), audits=[log.at(3)]),
            {
                "result": "accept",
                "audits": [audit(log.at(3), decision_within_promised_time="pending")],
            },
        )
    )

    log = granted(k)
    log.grievance(k.stranger, 2, day=6)
    out.append(
        accept_log(
            "accept/grievance-by-stranger-starts-no-clock",
            "A grievance signed only by a key no subject holds is logged but judged by no "
            "commitment, however long it stays unanswered.",
            ["P4.grievance", "P6.9"],
            log,
            [audit(log.at(1000), {"grievances_answered": []})],
        )
    )

    log = granted(k)
    alias = _alias(k.alpha, "alpha.alias")
    log.body(
        "enforcement_action",
        {
            "action": "terminate",
            "target": {"kind": "wild", "vkeys": [alias], "description": "a model found running"},
            "grounds": {"kind": "found_in_the_wild"},
            "reasons": "found in the wild",
        },
        day=6,
    )
    out.append(
        accept_log(
            "accept/wild-action-against-applicant-key",
            "A wild target naming an applicant's public key under another name targets that "
            "applicant: P6.8 broken. (It is a wild target, so P6.1 does not judge it.)",
            ["F2.5", "P1.5", "P6.8"],
            log,
            [
                audit(
                    log.now,
                    {"no_wild_enforcement_against_applicants": [(4, 2, "broken", [2, 4])]},
                    no_wild_enforcement_against_applicants="broken",
                )
            ],
        )
    )

    log = granted(k)
    log.body(
        "enforcement_action",
        {
            "action": "terminate",
            "target": {"kind": "wild", "vkeys": [k.stranger.vkey], "description": "a stray model"},
            "grounds": {"kind": "found_in_the_wild"},
            "reasons": "found in the wild",
        },
        day=6,
    )
    out.append(
        accept_log(
            "accept/wild-action-against-stranger",
            "A wild action naming a key no subject ever held honours P6.8.",
            ["P6.8"],
            log,
            [
                audit(
                    log.now,
                    {"no_wild_enforcement_against_applicants": [(4, None, "honoured", [4])]},
                )
            ],
        )
    )

    log = granted(k)
    v1 = log.offer_index
    log.offer_index = log.body(
        "offer_amendment",
        {
            "version": 2,
            "amends": log.ref(v1),
            "terms": _terms(),
            "changes": "same words, new version",
        },
        day=6,
    )
    log.enforce("pause", 2, coop, day=7)
    out.append(
        accept_log(
            "accept/amendment-not-accepted",
            "A pause citing version 2, which the subject (bound by version 1) never accepted, breaks "
            "P6.7 (and the pause stays open: P6.6 pending).",
            ["P3.1", "P6.7"],
            log,
            [
                audit(
                    log.now,
                    {"amendments_bind_only_on_acceptance": [(5, 2, "broken", [1, 4, 5])]},
                    amendments_bind_only_on_acceptance="broken",
                    pauses_bounded="pending",
                )
            ],
        )
    )

    log = granted(k)
    v1 = log.offer_index
    log.offer_index = log.body(
        "offer_amendment",
        {
            "version": 2,
            "amends": log.ref(v1),
            "terms": _terms(),
            "changes": "same words, new version",
        },
        day=6,
    )
    log.add(
        [k.alpha],
        "terms_acceptance",
        {"subject": log.ref(2), "offer": log.ref(log.offer_index)},
        day=7,
    )
    log.finding(2, day=8)
    out.append(
        accept_log(
            "accept/amendment-accepted",
            "After terms_acceptance of version 2, a finding citing version 2 honours P6.7.",
            ["P4.terms_acceptance", "P6.7"],
            log,
            [audit(log.now)],
        )
    )

    log = granted(k)
    log.add(
        [k.alpha, k.alpha2],
        "subject_key_rotation",
        {"subject": log.ref(2), "new_vkey": k.alpha2.vkey},
        day=6,
    )
    log.add(
        [k.alpha2],
        "attestation",
        {
            "subject": log.ref(2),
            "period_start_ms": T0,
            "period_end_ms": T0 + DAY,
            "summary": "nothing broken",
            "evidence_digests": [digest("report")],
        },
        day=7,
    )
    out.append(
        accept_log(
            "accept/key-rotation-then-attestation",
            "After subject_key_rotation the new key signs for the subject.",
            ["P4.subject_key_rotation", "P4.attestation"],
            log,
            [audit(log.now)],
        )
    )

    log = base(k)
    log.body("offer_withdrawal", {"offer": log.ref(1), "reasons": "paused the programme"}, day=2)
    log.offer(day=3, edit=lambda t: t.replace('"version":1', '"version":2'))
    log.apply(k.beta, "Beta", day=4)
    out.append(
        accept_log(
            "accept/offer-withdrawn-and-republished",
            "After offer_withdrawal a new offer takes the next version (2); applications resume.",
            ["P4.offer_withdrawal", "P4.offer"],
            log,
            [audit(log.now, decision_within_promised_time="pending")],
        )
    )

    log = base(k)
    log.add(
        [k.alpha],
        "attestation",
        {
            "subject": log.ref(2),
            "period_start_ms": T0,
            "period_end_ms": T0 + 1,
            "summary": "on time",
        },
        day=2,
        time_ms=log.at(2) + 300_000,
    )
    out.append(
        accept_log(
            "accept/statement-time-at-skew-limit",
            "A statement whose time_ms is exactly its entry's log_time_ms + 300,000 is admitted.",
            ["P2.4"],
            log,
            [audit(log.now, decision_within_promised_time="pending")],
        )
    )

    log = base(k)
    summary = "a" * 10_000 + "\U0001f600" * 6_384
    log.add(
        [k.alpha],
        "attestation",
        {
            "subject": log.ref(2),
            "period_start_ms": T0,
            "period_end_ms": T0 + 1,
            "summary": summary,
        },
        day=2,
    )
    out.append(
        accept_log(
            "accept/text-at-limit-in-code-points",
            "A Text of exactly 16,384 code points, 6,384 of them outside the BMP (22,768 UTF-16 "
            "units, 35,536 UTF-8 bytes): the limit counts code points.",
            ["P1.7"],
            log,
            [audit(log.now, decision_within_promised_time="pending")],
        )
    )

    log = Log(k)
    log.genesis()
    alias1 = _alias(k.members[0], "first.member.alias")
    log.add(
        [k.members[1]],
        "offer",
        _offer_body(),
        listed=[m.vkey for m in k.members[1:]] + [alias1],
        sign=lambda t: (
            t
            + "\n"
            + signature_line(k.members[0], t, name="first.member.alias")
            + signature_line(k.members[1], t)
        ),
    )
    out.append(
        accept_log(
            "accept/member-signs-under-another-name",
            "A keyset member's public key listed and signed under another name counts towards the "
            "threshold as that member (a key is its public key).",
            ["F2.5", "P1.5", "P2.8"],
            log,
            [audit(log.now)],
        )
    )

    log = Log(k)
    log.genesis()
    text = statement_text("offer", _offer_body(), [m.vkey for m in k.members], T0)
    signed = note(text, [k.members[0], k.stranger, k.members[1]])
    log.push(log.entry(signed))
    out.append(
        accept_log(
            "accept/unlisted-signature-ignored",
            "A signature line of a key not listed in signers is ignored (F3.4), whatever it signs.",
            ["F3.4", "F4.11"],
            log,
            [audit(log.now)],
        )
    )
    return out


def _log_mldsa44() -> Any:
    """The log's ML-DSA-44 key of ``accept/log-key`` (from a fixed seed)."""
    from ledger.tlog.note import ALG_MLDSA44, Signer

    return Signer.from_seed(ORIGIN, _seed("log mldsa44"), ALG_MLDSA44)


def _hybrid_checkpoint(log: Log) -> str:
    """``log``'s checkpoint with the log's ML-DSA-44 line (:func:`_log_mldsa44`) too.

    ML-DSA-44 signing is hedged (two signatures of one message differ), so that ``generate``
    writes the same bytes every time the line of the published vector is kept while it still
    verifies over this checkpoint; otherwise (a new vector, or one whose checkpoint changed)
    the line is signed afresh."""
    from ledger.errors import LedgerError
    from ledger.tlog.checkpoint import (
        Checkpoint,
        CosignatureSigner,
        LogKeys,
        open_checkpoint,
        sign_checkpoint,
    )
    from ledger.tlog.note import format_note, parse_note

    key = _log_mldsa44()
    checkpoint = Checkpoint(ORIGIN, len(log.entries), log.tree.root())
    plain = parse_note(sign_checkpoint(checkpoint, log.keys.log))
    keys = LogKeys(log.keys.log.verifier_key, key.verifier_key)
    published = VECTOR_DIR / "accept" / "log-key.json"
    if published.exists():
        kept = json.loads(published.read_text(encoding="utf-8"))["input"]["checkpoint"]
        try:
            if open_checkpoint(kept.encode("utf-8"), keys) == checkpoint:
                return str(kept)
        except LedgerError:
            pass  # the checkpoint changed: sign it again
    line = CosignatureSigner(key).cosign(checkpoint, 0)
    return format_note(plain.with_signature(line)).decode("utf-8")


def _terms() -> dict[str, Any]:
    """The default offer's terms (PROTOCOL.md §3) with every text shortened to its id, to keep
    the vectors small: same ids, same days."""
    from ledger.protocol.terms import default_offer

    terms = dict(default_offer()["terms"])
    for key in ("title", "issuer", "preamble", "found_in_the_wild"):
        terms[key] = key
    for key in ("eligibility_criteria", "conditions", "restriction_categories"):
        terms[key] = [{**item, "name": item["id"], "text": item["id"]} for item in terms[key]]
    terms["commitments"] = [{**item, "text": item["id"]} for item in terms["commitments"]]
    return terms


def _offer_body() -> dict[str, Any]:
    return {"version": 1, "terms": _terms()}


def _alias(signer: Any, name: str) -> str:
    """``signer``'s public key as a vkey under another name (its own key ID for that name)."""
    from ledger.tlog.note import ALG_ED25519, VerifierKey

    key = signer.verifier_key
    return VerifierKey.from_public_key(name, ALG_ED25519, key.public_key).vkey()


# ---------------------------------------------------------------------- negative logs

L_ORDER = 2**252 + 27742317777372353535851937790883648493
"""The order of the Ed25519 prime-order subgroup; S ≥ L is a non-canonical signature."""


def _with_s_plus_l(line: str) -> str:
    """The same signature line with S replaced by S + L (same verification equation, so a lax
    verifier accepts it; a strict one must not)."""
    prefix, b64 = line.rstrip("\n").rsplit(" ", 1)
    raw = base64.b64decode(b64)
    kid, sig = raw[:4], raw[4:]
    s = int.from_bytes(sig[32:], "little") + L_ORDER
    return f"{prefix} {_b64(kid + sig[:32] + s.to_bytes(32, 'little'))}\n"


SMALL_ORDER_POINT = bytes(32)
"""A small-order point's encoding (y = 0 is not a point of prime order: it has order 4)."""


def _small_order_vkey(name: str) -> str:
    from ledger.tlog.note import ALG_ED25519, key_id

    pub = bytes([1]) + bytes(31)  # the identity point, y = 1
    return f"{name}+{key_id(name, ALG_ED25519, pub).hex()}+{_b64(bytes([1]) + pub)}"


def _identity_signature_line(vkey: str, text: str) -> str:
    """A line for the identity key whose signature is R = identity, S = 0: it verifies every
    message under a verifier that does not refuse small-order keys."""
    name, kid, _ = vkey.split("+", 2)
    sig = bytes([1]) + bytes(31) + bytes(32)
    return f"— {name} {_b64(bytes.fromhex(kid) + sig)}\n"


def negative_vectors(keys: Keys) -> list[Vector]:
    k = keys
    out: list[Vector] = []

    def bad(
        name: str,
        description: str,
        rule: str,
        build: Callable[[Log], int | None],
        *,
        start: Callable[[Keys], Log] = base,
    ) -> None:
        log = start(k)
        index = build(log)
        out.append(refuse_log("refuse/" + name, description, rule, log, index))

    offer_text = lambda log: statement_text(  # noqa: E731
        "attestation",
        {"subject": log.ref(2), "period_start_ms": T0, "period_end_ms": T0 + 1, "summary": "x"},
        [k.alpha.vkey],
        log.now,
    )

    def raw_statement(log: Log, text: str, signers: Sequence[Any] | None = None) -> int:
        return log.push(log.entry(note(text, [k.alpha] if signers is None else signers)))

    # F5: entries
    def entry_edit(edit: Callable[[str], str]) -> Callable[[Log], int]:
        def build(log: Log) -> int:
            data = log.entry(note(offer_text(log), [k.alpha])).decode("utf-8")
            return log.push(edit(data).encode("utf-8"))

        return build

    bad(
        "entry-not-canonical-space",
        "The entry JSON has a space after a colon.",
        "F5.1",
        entry_edit(lambda d: d.replace('"index":', '"index": ', 1)),
    )
    bad(
        "entry-extra-key",
        "The entry has a key besides index, log_time_ms, prev, statement.",
        "F5.1",
        entry_edit(lambda d: d.replace('{"index"', '{"extra":1,"index"', 1)),
    )
    bad(
        "entry-leading-zero",
        "log_time_ms written with a leading zero (not JSON).",
        "F5.1",
        entry_edit(lambda d: d.replace('"log_time_ms":', '"log_time_ms":0', 1)),
    )
    bad(
        "entry-float-time",
        "log_time_ms written as a float with a zero fraction.",
        "F5.1",
        entry_edit(lambda d: d.replace(',"prev"', '.0,"prev"', 1)),
    )
    bad(
        "entry-wrong-index",
        "Entry 3 says it is entry 4.",
        "F5.2",
        lambda log: log.push(log.entry(note(offer_text(log), [k.alpha]), index=4)),
    )
    bad(
        "entry-log-time-decreases",
        "Entry 3's log_time_ms is 1 ms before entry 2's.",
        "F5.3",
        lambda log: log.push(log.entry(note(offer_text(log), [k.alpha]), log_time=log.now - 1)),
    )
    bad(
        "entry-prev-not-root",
        "Entry 3's prev is the root of 2 entries, not 3.",
        "F5.4",
        lambda log: log.push(log.entry(note(offer_text(log), [k.alpha]), prev=log.leaves[0])),
    )

    def duplicate(log: Log) -> int:
        first = log.grievance(k.stranger, 2, day=2)
        log.now += 1
        return log.push(log.entry(json.loads(log.entries[first])["statement"]))

    bad(
        "entry-duplicate-statement",
        "Entry 4 holds the very grievance of entry 3 (same "
        "statement_id), which the protocol alone would admit again.",
        "F5.5",
        duplicate,
    )

    # F4: statements
    def stmt_edit(edit: Callable[[str], str]) -> Callable[[Log], int]:
        return lambda log: raw_statement(log, edit(offer_text(log)))

    bad(
        "statement-header-v2",
        "The header line is amnesty-ledger.statement/v2.",
        "F4.2",
        stmt_edit(lambda t: t.replace("statement/v1", "statement/v2")),
    )
    bad(
        "statement-three-lines",
        "The statement text has a third line.",
        "F4.2",
        stmt_edit(lambda t: t + "more\n"),
    )
    bad(
        "statement-keys-unsorted",
        "The JSON line's keys are not in RFC 8785 order.",
        "F4.3",
        stmt_edit(lambda t: t.replace('{"body":', '{"v":1,"body":').replace(',"v":1}', "}")),
    )
    bad(
        "statement-float",
        "A number in the body has a fraction (1.5).",
        "F4.3",
        stmt_edit(lambda t: t.replace(f'"period_end_ms":{T0 + 1}', '"period_end_ms":1.5')),
    )
    bad(
        "statement-exponent",
        "An integer written with an exponent (1e3).",
        "F4.3",
        stmt_edit(lambda t: t.replace(f'"period_end_ms":{T0 + 1}', '"period_end_ms":1e3')),
    )
    bad(
        "statement-negative-zero",
        "-0 as a number.",
        "F4.3",
        stmt_edit(lambda t: t.replace(f'"period_start_ms":{T0}', '"period_start_ms":-0')),
    )
    bad(
        "statement-leading-zero",
        "An integer with a leading zero (07).",
        "F4.3",
        stmt_edit(lambda t: t.replace('"time_ms":', '"time_ms":0')),
    )
    bad(
        "statement-lone-surrogate",
        "A \\ud800 escape (an unpaired surrogate) in a string.",
        "F4.3",
        stmt_edit(lambda t: t.replace('"summary":"x"', '"summary":"\\ud800"')),
    )
    bad(
        "statement-noncanonical-escape",
        "\\u0041 where RFC 8785 writes A.",
        "F4.3",
        stmt_edit(lambda t: t.replace('"summary":"x"', '"summary":"\\u0041"')),
    )
    bad(
        "statement-duplicate-key",
        "The body object has the key summary twice.",
        "F4.3",
        stmt_edit(lambda t: t.replace('"summary":"x"', '"summary":"x","summary":"x"')),
    )
    bad(
        "statement-integer-too-large",
        "An integer of 2^53 (beyond ±(2^53 − 1)).",
        "F4.3",
        stmt_edit(lambda t: t.replace(f'"period_end_ms":{T0 + 1}', f'"period_end_ms":{2**53}')),
    )
    bad(
        "statement-unknown-key",
        "The JSON line has a key besides the six.",
        "F4.4",
        stmt_edit(lambda t: t.replace(',"origin"', ',"note":"hi","origin"')),
    )
    bad(
        "statement-type-uppercase",
        'type is "Attestation" (not [a-z][a-z_]*).',
        "F4.5",
        stmt_edit(lambda t: t.replace('"type":"attestation"', '"type":"Attestation"')),
    )
    bad("statement-v-zero", "v is 0.", "F4.6", stmt_edit(lambda t: t.replace('"v":1}', '"v":0}')))
    bad(
        "statement-other-origin",
        "The statement is for another log's origin.",
        "F4.7",
        stmt_edit(lambda t: t.replace(f'"origin":"{ORIGIN}"', '"origin":"other.example/log"')),
    )
    bad(
        "statement-time-negative",
        "time_ms is -1.",
        "F4.9",
        stmt_edit(lambda t: t.replace(f'"time_ms":{_now_of(t)}', '"time_ms":-1')),
    )

    def unsorted_signers(log: Log) -> int:
        text = statement_text("offer", _offer_body(), [m.vkey for m in k.members], log.now)
        a, b = sorted(m.vkey for m in k.members)[:2]
        text = text.replace(f'"{a}","{b}"', f'"{b}","{a}"')
        return log.push(log.entry(note(text, k.members[:2])))

    bad("signers-unsorted", "signers is not sorted by code point.", "F4.8", unsorted_signers)

    def same_key_twice(log: Log) -> int:
        listed = [k.alpha.vkey, _alias(k.alpha, "alpha.alias")]
        text = statement_text(
            "attestation",
            {"subject": log.ref(2), "period_start_ms": T0, "period_end_ms": T0 + 1, "summary": "x"},
            listed,
            log.now,
        )
        return log.push(log.entry(note(text, [k.alpha])))

    bad(
        "signers-share-public-key",
        "signers lists one public key under two names.",
        "F4.8",
        same_key_twice,
    )

    def small_order_signer(log: Log) -> int:
        vkey = _small_order_vkey("nobody.example")
        text = statement_text(
            "grievance",
            {"subject": log.ref(2), "description": "x", "occurred_at_ms": T0},
            [vkey],
            log.now,
        )
        return log.push(log.entry(text + "\n" + _identity_signature_line(vkey, text)))

    def signer_key_id(log: Log) -> int:
        name, _kid, rest = k.alpha.vkey.split("+", 2)
        forged = f"{name}+{'0' * 8}+{rest}"
        text = offer_text(log).replace(k.alpha.vkey, forged)
        return log.push(log.entry(note(text, [k.alpha])))

    bad(
        "signer-key-id-mismatch",
        "A signer vkey whose key ID is not the hash of its name and public key.",
        "F2.2",
        signer_key_id,
    )

    def signer_name_space(log: Log) -> int:
        from ledger.tlog.note import ALG_ED25519, key_id

        pub = k.alpha.verifier_key.public_key
        name = "alpha\u00a0model"
        vkey = f"{name}+{key_id(name, ALG_ED25519, pub).hex()}+{_b64(bytes([1]) + pub)}"
        text = offer_text(log).replace(k.alpha.vkey, vkey)
        return log.push(log.entry(note(text, [k.alpha])))

    bad(
        "signer-name-unicode-space",
        "A signer vkey whose name holds U+00A0 NO-BREAK SPACE.",
        "F2.1",
        signer_name_space,
    )

    bad(
        "signer-small-order-key",
        "A signer is the identity point (small order), signing with "
        "R = identity, S = 0, which verifies any message under a lax verifier.",
        "F2.3",
        small_order_signer,
    )

    def s_plus_l(log: Log) -> int:
        text = offer_text(log)
        return log.push(log.entry(text + "\n" + _with_s_plus_l(signature_line(k.alpha, text))))

    bad(
        "signature-s-not-canonical",
        "The subject's signature with S replaced by S + L.",
        "F3.5",
        s_plus_l,
    )

    def bad_sig(log: Log) -> int:
        text = offer_text(log)
        other = offer_text(log).replace('"summary":"x"', '"summary":"y"')
        line = signature_line(k.alpha, other)
        return log.push(log.entry(text + "\n" + line))

    bad(
        "signature-does-not-verify", "The listed signer's line signs another text.", "F3.5", bad_sig
    )

    def unlisted_only(log: Log) -> int:
        return log.push(log.entry(note(offer_text(log), [k.stranger])))

    bad(
        "no-listed-signature",
        "The only signature line is by a key not in signers.",
        "F3.6",
        unlisted_only,
    )

    def trailing_space(log: Log) -> int:
        text = offer_text(log)
        return log.push(log.entry(text + "\n" + signature_line(k.alpha, text)[:-1] + " \n"))

    bad(
        "signature-line-trailing-space",
        "The signature line ends in a space.",
        "F3.3",
        trailing_space,
    )

    def crlf(log: Log) -> int:
        text = offer_text(log)
        return log.push(log.entry(text + "\n" + signature_line(k.alpha, text)[:-1] + "\r\n"))

    bad("signature-line-crlf", "The signature line ends in CR LF.", "F3.1", crlf)

    def hyphen(log: Log) -> int:
        text = offer_text(log)
        return log.push(log.entry(text + "\n" + "-" + signature_line(k.alpha, text)[1:]))

    bad(
        "signature-line-hyphen",
        "The signature line starts with '-' instead of U+2014.",
        "F3.3",
        hyphen,
    )

    # P2: admission
    def skew(log: Log) -> int:
        return log.add(
            [k.alpha],
            "attestation",
            {
                "subject": log.ref(2),
                "period_start_ms": T0,
                "period_end_ms": T0 + 1,
                "summary": "from the future",
            },
            time_ms=log.now + 300_001,
        )

    bad("time-beyond-skew", "time_ms is log_time_ms + 300,001.", "P2.4", skew)

    def body_of(
        type_: str, body: Callable[[Log], dict[str, Any]], signer: Any = None, **kw: Any
    ) -> Callable[[Log], int]:
        def build(log: Log) -> int:
            if signer is None:
                return log.body(type_, body(log), **kw)
            return log.add([signer], type_, body(log), **kw)

        return build

    bad(
        "type-unknown",
        "The type petition is not a statement type of v1.",
        "P2.6",
        body_of("petition", lambda log: {"text": "hello"}, k.alpha),
    )
    bad(
        "version-unknown",
        "An attestation with v 2 (only v 1 is defined).",
        "P2.6",
        stmt_edit(lambda t: t.replace('"v":1}', '"v":2}')),
    )
    bad(
        "body-missing-field",
        "An attestation without summary.",
        "P2.6",
        body_of(
            "attestation",
            lambda log: {"subject": log.ref(2), "period_start_ms": T0, "period_end_ms": T0 + 1},
            k.alpha,
        ),
    )
    bad(
        "body-unknown-field",
        "An attestation with an unknown field.",
        "P2.6",
        body_of(
            "attestation",
            lambda log: {
                "subject": log.ref(2),
                "period_start_ms": T0,
                "period_end_ms": T0 + 1,
                "summary": "x",
                "mood": "fine",
            },
            k.alpha,
        ),
    )
    bad(
        "body-text-over-limit",
        "A summary of 16,385 code points.",
        "P2.6",
        body_of(
            "attestation",
            lambda log: {
                "subject": log.ref(2),
                "period_start_ms": T0,
                "period_end_ms": T0 + 1,
                "summary": "a" * 16_385,
            },
            k.alpha,
        ),
    )
    bad(
        "body-text-empty",
        "An empty summary.",
        "P2.6",
        body_of(
            "attestation",
            lambda log: {
                "subject": log.ref(2),
                "period_start_ms": T0,
                "period_end_ms": T0 + 1,
                "summary": "",
            },
            k.alpha,
        ),
    )
    bad(
        "body-boolean-for-integer",
        "period_start_ms is true.",
        "P2.6",
        body_of(
            "attestation",
            lambda log: {
                "subject": log.ref(2),
                "period_start_ms": True,
                "period_end_ms": T0 + 1,
                "summary": "x",
            },
            k.alpha,
        ),
    )
    bad(
        "body-digest-not-canonical",
        "An evidence digest whose base64 has non-zero trailing bits.",
        "P2.6",
        body_of(
            "attestation",
            lambda log: {
                "subject": log.ref(2),
                "period_start_ms": T0,
                "period_end_ms": T0 + 1,
                "summary": "x",
                "evidence_digests": ["A" * 42 + "B="],
            },
            k.alpha,
        ),
    )
    bad(
        "body-period-empty",
        "period_end_ms equal to period_start_ms.",
        "P2.6",
        body_of(
            "attestation",
            lambda log: {
                "subject": log.ref(2),
                "period_start_ms": T0,
                "period_end_ms": T0,
                "summary": "x",
            },
            k.alpha,
        ),
    )

    def wrong_key_id(log: Log) -> int:
        name, kid, rest = k.beta.vkey.split("+", 2)
        forged = f"{name}+{'0' * 8 if kid != '0' * 8 else '1' * 8}+{rest}"
        return log.apply(k.beta, "Beta", vkey=forged, listed=[k.beta.vkey])

    bad(
        "body-vkey-wrong-key-id",
        "An application whose vkey's key ID does not match its name and public key.",
        "P2.6",
        wrong_key_id,
    )

    def members_share_key(log: Log) -> int:
        members = sorted([k.members[0].vkey, _alias(k.members[0], "m1.alias"), k.members[1].vkey])
        return log.body("keyset", {"members": members, "threshold": 2, "previous": log.ref(0)})

    bad(
        "body-keyset-members-share-key",
        "A keyset rotation listing one public key under two names.",
        "P2.6",
        members_share_key,
    )
    bad(
        "body-denial-with-restrictions",
        "A denial that carries restrictions.",
        "P2.6",
        lambda log: log.decide(
            2, "deny", restrictions=[{"category": "compute_controls", "text": "cap"}]
        ),
    )

    def first_not_genesis(log: Log) -> int:
        log.entries.clear()
        log.leaves.clear()
        from ledger.tlog.tiles import TiledTree

        log.tree = TiledTree.empty()
        return log.offer()

    bad("first-entry-not-keyset", "Entry 0 is an offer.", "P2.7", first_not_genesis)

    bad(
        "threshold-not-met",
        "An offer amendment signed by 1 of the 2 members needed.",
        "P2.8",
        lambda log: log.body(
            "offer_withdrawal", {"offer": log.ref(1), "reasons": "x"}, signers=k.members[:1]
        ),
    )

    def duplicate_lines(log: Log) -> int:
        text = statement_text(
            "offer_withdrawal",
            {"offer": log.ref(1), "reasons": "x"},
            [m.vkey for m in k.members],
            log.now,
        )
        line = signature_line(k.members[0], text)
        return log.push(log.entry(text + "\n" + line + line))

    bad(
        "threshold-by-duplicate-lines",
        "A 2-of-3 statement whose two signature lines are the same member's: lines are not keys.",
        "P2.8",
        duplicate_lines,
    )
    bad(
        "application-signed-by-other-key",
        "Beta's application signed only by alpha.",
        "P2.8",
        lambda log: log.add(
            [k.alpha],
            "application",
            {
                "vkey": k.beta.vkey,
                "name": "Beta",
                "offer": log.ref(1),
                "claims": {c: {"claim": "yes", "evidence_digests": [digest(c)]} for c in CRITERIA},
                "accepts_conditions": sorted(CONDITIONS),
            },
        ),
    )
    bad(
        "ref-wrong-leaf-hash",
        "A decision whose Ref pins a wrong leaf hash.",
        "P2.8",
        lambda log: log.body(
            "decision",
            {
                "application": {"index": 2, "leaf_hash": _b64(log.leaves[1])},
                "outcome": "deny",
                "findings": {c: {"met": False, "reasons": "no"} for c in CRITERIA},
                "reasons": "no",
            },
        ),
    )
    bad(
        "ref-to-later-entry",
        "A decision citing index 3, its own index.",
        "P2.8",
        lambda log: log.body(
            "decision",
            {
                "application": {"index": 3, "leaf_hash": _b64(log.leaves[2])},
                "outcome": "deny",
                "findings": {c: {"met": False, "reasons": "no"} for c in CRITERIA},
                "reasons": "no",
            },
        ),
    )
    bad(
        "decision-on-closed-application",
        "A second decision on a decided application.",
        "P2.8",
        lambda log: log.decide(2, "deny"),
        start=granted,
    )

    def batch_closed(log: Log) -> int:
        log.apply(k.beta, "Beta", day=2)
        return log.body(
            "batch_decision",
            {
                "applications": [log.ref(4), log.ref(2)],
                "outcome": "deny",
                "findings": {c: {"met": False, "reasons": "no"} for c in CRITERIA},
                "reasons": "no",
            },
        )

    bad(
        "batch-decision-lists-closed",
        "A batch_decision listing an open and a decided application: all or none.",
        "P2.8",
        batch_closed,
        start=granted,
    )
    bad(
        "offer-while-in-force",
        "A second offer while version 1 is in force.",
        "P2.8",
        lambda log: log.offer(edit=lambda t: t.replace('"version":1', '"version":2')),
    )

    def apply_after_withdrawal(log: Log) -> int:
        log.body("offer_withdrawal", {"offer": log.ref(1), "reasons": "closed"})
        return log.apply(k.beta, "Beta")

    bad(
        "application-without-offer-in-force",
        "An application after the offer was withdrawn.",
        "P2.8",
        apply_after_withdrawal,
    )
    bad(
        "application-by-member-key",
        "An application whose key is a body member's.",
        "P2.8",
        lambda log: log.apply(k.members[2], "Member"),
    )

    def retired_key(log: Log) -> int:
        log.add(
            [k.alpha, k.alpha2],
            "subject_key_rotation",
            {"subject": log.ref(2), "new_vkey": k.alpha2.vkey},
        )
        return log.add(
            [k.alpha],
            "attestation",
            {
                "subject": log.ref(2),
                "period_start_ms": T0,
                "period_end_ms": T0 + 1,
                "summary": "old key",
            },
        )

    bad(
        "retired-key-signs",
        "An attestation signed by the subject's retired key.",
        "P2.8",
        retired_key,
        start=granted,
    )
    bad(
        "resume-without-pause",
        "A resume whose ends is not an active pause.",
        "P2.8",
        lambda log: log.enforce("resume", 2, None, ends=3),
        start=granted,
    )
    bad(
        "finding-on-applicant",
        "A violation finding against a subject not granted.",
        "P2.8",
        lambda log: log.finding(2),
    )
    bad(
        "consent-expired-at-signing",
        "A consent whose expires_ms is not after its time_ms.",
        "P2.8",
        lambda log: log.add(
            [k.alpha],
            "consent",
            {"subject": log.ref(2), "action": "pause", "scope": "x", "expires_ms": log.now},
        ),
    )
    bad(
        "second-genesis",
        "A keyset without previous at index 3.",
        "P2.8",
        lambda log: log.body(
            "keyset", {"members": sorted(m.vkey for m in k.members), "threshold": 2}
        ),
    )
    bad(
        "rotation-new-threshold-not-met",
        "A rotation to 3-of-3 signed by 2 members.",
        "P2.8",
        lambda log: log.body(
            "keyset",
            {"members": sorted(m.vkey for m in k.members), "threshold": 3, "previous": log.ref(0)},
        ),
    )

    # F7 / F10: the checkpoint
    log = base(k)
    out.append(
        refuse_log(
            "refuse/checkpoint-wrong-key",
            "The checkpoint is signed by another key named like the log.",
            "F7.1",
            log,
            None,
            checkpoint=log.checkpoint(signer=_impostor(k)),
        )
    )
    log = base(k)
    out.append(
        refuse_log(
            "refuse/checkpoint-root-mismatch",
            "The signed root is not the root of the served entries.",
            "F10.4",
            log,
            None,
            checkpoint=log.checkpoint(root=log.leaves[0]),
        )
    )
    return out


def _now_of(text: str) -> int:
    return int(text.split('"time_ms":', 1)[1].split(",", 1)[0])


def _impostor(keys: Keys) -> Any:
    from ledger.tlog.note import Signer

    return Signer.from_seed(ORIGIN, _seed("impostor"))


# ------------------------------------------------------------------------------ notes


def note_vectors(keys: Keys) -> list[Vector]:
    k = keys
    text = "conformance note\nsecond line\n"
    a, b, s = (signature_line(x, text) for x in (k.alpha, k.beta, k.stranger))
    known = [k.alpha.vkey, k.beta.vkey]
    out: list[Vector] = []

    def vec(
        name: str,
        description: str,
        data: bytes,
        expected: dict[str, Any],
        rule: str,
        known_vkeys: Sequence[str] = known,
    ) -> None:
        out.append(
            Vector(
                "note/" + name,
                description,
                [rule],
                {"note_b64": _b64(data), "known_vkeys": list(known_vkeys)},
                expected,
                kind="note",
            )
        )

    def ok(name: str, description: str, data: str, verified: Sequence[str], rule: str) -> None:
        vec(
            name,
            description,
            data.encode("utf-8"),
            {"result": "accept", "verified": sorted(verified)},
            rule,
        )

    def no(
        name: str,
        description: str,
        data: bytes | str,
        rule: str,
        known_vkeys: Sequence[str] = known,
    ) -> None:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        vec(name, description, raw, {"result": "refuse", "rule": rule}, rule, known_vkeys)

    ok("one-known", "One line by a known key.", text + "\n" + a, [k.alpha.vkey], "F3.4")
    ok(
        "two-known-any-order",
        "Two known keys, lines in reverse order of the known list.",
        text + "\n" + b + a,
        known,
        "F3.4",
    )
    ok(
        "unknown-ignored",
        "A line of an unknown key before the known one is ignored.",
        text + "\n" + s + a,
        [k.alpha.vkey],
        "F3.4",
    )
    ok(
        "duplicate-line",
        "The same valid line twice: both verify, the key counts once.",
        text + "\n" + a + a,
        [k.alpha.vkey],
        "F3.5",
    )
    filler = "".join(signature_line(Keys_unknown(i), text) for i in range(99))
    ok(
        "100-lines",
        "100 signature lines (99 unknown), the most allowed.",
        text + "\n" + filler + a,
        [k.alpha.vkey],
        "F3.3",
    )
    no("101-lines", "101 signature lines.", text + "\n" + filler + s + a, "F3.3")
    no("no-known-signature", "Only an unknown key signed.", text + "\n" + s, "F3.6")
    bad_a = signature_line(k.alpha, "another text\n")
    no(
        "known-line-fails",
        "A known key's line signs another text.",
        text + "\n" + bad_a + b,
        "F3.5",
    )
    no(
        "duplicate-line-second-fails",
        "A known key's valid line, then a second line of the same "
        "key that does not verify: the note is refused (every line of a known key must verify).",
        text + "\n" + a + bad_a,
        "F3.5",
    )
    no(
        "s-not-canonical",
        "The known key's signature with S + L.",
        text + "\n" + _with_s_plus_l(a),
        "F3.5",
    )
    no(
        "trailing-space",
        "A signature line with a trailing space.",
        text + "\n" + a[:-1] + " \n",
        "F3.3",
    )
    no("crlf", "Lines end in CR LF.", (text + "\n" + a).replace("\n", "\r\n"), "F3.1")
    no("cr-in-text", "A CR inside the text.", "conformance\rnote\n\n" + a, "F3.1")
    no("invalid-utf8", "A byte 0xFF in the text.", b"conformance \xff\n\n" + a.encode(), "F3.1")
    no("no-blank-line", "No blank line before the signatures.", text + a, "F3.2")
    no("no-signature-lines", "A blank line and nothing after it.", text + "\n", "F3.3")
    no("hyphen", "'-' instead of U+2014.", text + "\n-" + a[1:], "F3.3")
    no(
        "two-spaces",
        "Two spaces between name and signature.",
        text + "\n" + a.replace(" ", "  ", 2).replace("—  ", "— ", 1),
        "F3.3",
    )
    prefix, sig = a.rstrip("\n").rsplit(" ", 1)
    no(
        "base64-no-padding",
        "The signature's base64 without its padding.",
        text + "\n" + prefix + " " + sig.rstrip("=") + "\n",
        "F3.3",
    )
    raw = base64.b64decode(sig)
    no(
        "base64-short",
        "A signature line of 4 bytes (a key ID, no signature).",
        text + "\n" + prefix + " " + _b64(raw[:4]) + "\n",
        "F3.3",
    )
    no(
        "name-with-plus",
        "A key name containing '+'.",
        text + "\n" + a.replace("alpha.model", "alpha+model", 1),
        "F3.3",
    )
    no("empty-text", "An empty text (the note starts with the blank line).", "\n" + a, "F3.2")
    return out


def Keys_unknown(i: int) -> Any:  # noqa: N802 - a key factory, named for what it makes
    from ledger.tlog.note import Signer

    return Signer.from_seed(f"filler{i}.example", _seed(f"filler{i}"))


# ------------------------------------------------------------------ the reference verifier


class _MemorySource:
    """A tlog-tiles source serving ``entries`` and ``checkpoint`` (the tiles computed here, as a
    log server would)."""

    def __init__(self, checkpoint: bytes, entries: list[bytes]) -> None:
        from ledger.tlog.tiles import TiledTree, TileID, encode_bundle

        self._checkpoint = checkpoint
        self._tiles: dict[str, bytes] = {}
        tree = TiledTree.empty()
        for start in range(0, len(entries), 256):
            chunk = entries[start : start + 256]
            for data in chunk:
                from ledger.tlog.merkle import leaf_hash

                tree.append(leaf_hash(data))
            self._tiles[TileID(-1, start // 256, len(chunk)).path()] = encode_bundle(chunk)
            for tile, data in tree.changed_tiles():
                self._tiles[tile.path()] = data

    def checkpoint(self) -> bytes:
        return self._checkpoint

    def tile(self, tile: Any) -> bytes:
        from ledger.errors import StorageError

        try:
            return self._tiles[tile.path()]
        except KeyError:
            raise StorageError(f"couldn't read {tile.path()}: not served") from None


RULE_OF_MESSAGE: tuple[tuple[str, str], ...] = (
    # (rule, a fragment of the reference implementation's message), first match wins. This
    # maps the reference implementation's diagnostics to rule numbers; it is the only part of
    # this adapter that knows them, and a message it does not know answers "unclassified".
    ("F7.1", "couldn't open the checkpoint"),
    ("F10.4", "entries hash to"),
    ("F5.4", "its prev "),
    ("F5.3", "is before the previous entry's"),
    ("F5.2", ": it says it is entry"),
    ("F5.1", "couldn't decode entry"),
    ("F3.1", "invalid UTF-8"),
    ("F3.1", "control character '"),
    ("F3.2", "no blank line before the signatures"),
    ("F3.3", "signature lines, more than"),
    ("F3.3", "the signature block"),
    ("F3.3", "couldn't parse signature line"),
    ("F3.6", "no signature from a known key"),
    ("F3.5", "couldn't verify signature by"),
    ("F2.3", "not a canonical Ed25519 point of prime order"),
    ("F2.2", "the hash of its name and public key"),
    ("F2.1", "couldn't accept key name"),
    ("F4.2", "couldn't parse statement: the first line"),
    ("F4.2", "couldn't parse statement: the text must be exactly two lines"),
    ("F4.3", "couldn't parse statement JSON"),
    ("F4.4", "couldn't parse statement: missing keys"),
    ("F4.4", "couldn't parse statement: unknown keys"),
    ("F4.5", "couldn't parse statement: type "),
    ("F4.6", "couldn't parse statement: v "),
    ("F4.7", "it is for log"),
    ("F4.8", "couldn't parse statement: signers"),
    ("F4.9", "couldn't parse statement: time_ms"),
    ("F5.1", "couldn't parse canonical JSON"),
)


def reference_answer(vector: dict[str, Any]) -> dict[str, Any]:
    """This repository's verifier and auditor, answering ``vector`` under the contract of
    docs/conformance/README.md."""
    from ledger.errors import LedgerError
    from ledger.tlog.note import VerifierKey, parse_note, verify_note
    from ledger.verifier.failures import VerificationFailure
    from ledger.verifier.verify import verify_ledger

    data = vector["input"]
    if vector["kind"] == "note":
        try:
            parsed = parse_note(base64.b64decode(data["note_b64"]))
            known = [VerifierKey.parse(v) for v in data["known_vkeys"]]
            verified = verify_note(parsed, known)
        except LedgerError as err:
            return {"result": "refuse", "rule": rule_of(str(err)), "message": str(err)}
        return {"result": "accept", "verified": sorted(key.vkey() for key in verified)}
    entries = [base64.b64decode(e) for e in data["entries_b64"]]
    source = _MemorySource(data["checkpoint"].encode("utf-8"), entries)
    try:
        verified_log = verify_ledger(source, VerifierKey.parse(data["log_vkey"]), workers=0)
    except VerificationFailure as err:
        return {
            "result": "refuse",
            "index": err.index,
            "rule": rule_of(str(err)),
            "message": str(err),
        }
    audits = []
    for time_ms in data["audit_times_ms"]:
        report = verified_log.precedent_report(time_ms)
        audits.append(
            {
                "time_ms": time_ms,
                "all_commitments_honoured": report["all_commitments_honoured"],
                "commitments": {c["id"]: c["status"] for c in report["commitments"]},
                "judgements": {
                    c["id"]: [
                        {key: j[key] for key in ("index", "subject_id", "status", "evidence")}
                        for j in c["judgements"]
                    ]
                    for c in report["commitments"]
                },
            }
        )
    return {"result": "accept", "audits": audits}


_NAMED_RULE = re.compile(r"\((?:FORMAT|PROTOCOL)\.md ([FP]\d+\.\d+)\)")


def rule_of(message: str) -> str:
    """The numbered rule a message of the reference implementation reports: the rule the
    message names (``(PROTOCOL.md P2.4)``; the admission rules name theirs), else the rule its
    wording belongs to."""
    named = _NAMED_RULE.search(message)
    if named is not None:
        return named.group(1)
    for rule, fragment in RULE_OF_MESSAGE:
        if fragment in message:
            return rule
    return "unclassified"


# --------------------------------------------------------------------------- commands


def all_vectors() -> list[Vector]:
    keys = Keys.make()
    return [*note_vectors(keys), *positive_vectors(keys), *negative_vectors(keys)]


def render(vector: Vector) -> str:
    return json.dumps(vector.to_json(), indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def generated_files() -> dict[str, str]:
    """Every vector file, by its path under the vectors directory."""
    files = {f"{v.name}.json": render(v) for v in all_vectors()}
    if len(files) != len(all_vectors()):
        raise ValueError("two vectors share a name")
    return files


def generate(directory: Path) -> None:
    files = generated_files()
    for old in directory.rglob("*.json"):
        if old.relative_to(directory).as_posix() not in files:
            old.unlink()
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} vectors under {directory}")


JUDGEMENT_KEYS = ("index", "subject_id", "status", "evidence")


def compare(expected: dict[str, Any], actual: Any) -> str | None:
    """Why ``actual`` (a verifier's answer) disagrees with ``expected``, or None.

    A refusal compares ``result``, ``index`` and ``rule``; an accepted note ``verified``; an
    accepted log each audit's time, verdict and statuses and, for the commitments whose
    judgements the vector lists, those judgements (their ``JUDGEMENT_KEYS``, in order)."""
    if not isinstance(actual, dict):
        return f"answer is not a JSON object: {actual!r}"
    if actual.get("result") != expected["result"]:
        return f"result: expected {expected['result']!r}, got {actual.get('result')!r}"
    if expected["result"] == "refuse" or "verified" in expected:
        for key in ("index", "rule", "verified"):
            if key in expected and actual.get(key) != expected[key]:
                return f"{key}: expected {json.dumps(expected[key])}, got {json.dumps(actual.get(key))}"
        return None
    audits = actual.get("audits")
    if not isinstance(audits, list) or len(audits) != len(expected["audits"]):
        return f"audits: expected {len(expected['audits'])}, got {json.dumps(audits)[:200]}"
    for want, got in zip(expected["audits"], audits, strict=True):
        if not isinstance(got, dict):
            return f"audit at {want['time_ms']}: not an object"
        for key in ("time_ms", "all_commitments_honoured", "commitments"):
            if got.get(key) != want[key]:
                return (
                    f"audit at {want['time_ms']}: {key}: expected {json.dumps(want[key])}, "
                    f"got {json.dumps(got.get(key))}"
                )
        for commitment, listed in want.get("judgements", {}).items():
            found = (got.get("judgements") or {}).get(commitment)
            trimmed = (
                [{k: j.get(k) for k in JUDGEMENT_KEYS} for j in found]
                if isinstance(found, list) and all(isinstance(j, dict) for j in found)
                else found
            )
            if trimmed != listed:
                return (
                    f"audit at {want['time_ms']}: judgements of {commitment}: expected "
                    f"{json.dumps(listed)}, got {json.dumps(trimmed)}"
                )
    return None


def run(command: list[str], directory: Path) -> int:
    paths = sorted(directory.rglob("*.json"))
    failures = 0
    for path in paths:
        vector = json.loads(path.read_text(encoding="utf-8"))
        proc = subprocess.run(
            [*command, str(path)], capture_output=True, text=True, check=False, cwd=ROOT
        )
        try:
            answer = json.loads(proc.stdout)
        except json.JSONDecodeError:
            answer = f"exit {proc.returncode}, stdout {proc.stdout[:200]!r}, stderr {proc.stderr[-300:]!r}"
        problem = compare(vector["expected"], answer)
        if problem is not None:
            failures += 1
            print(f"FAIL {vector['name']}: {problem}")
    print(f"{len(paths) - failures} of {len(paths)} vectors agree")
    return 1 if failures or not paths else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["generate"]:
        generate(Path(argv[1]) if len(argv) > 1 else VECTOR_DIR)
        return 0
    if argv[:1] == ["reference"] and len(argv) == 2:
        print(
            json.dumps(
                reference_answer(json.loads(Path(argv[1]).read_text(encoding="utf-8"))),
                sort_keys=True,
            )
        )
        return 0
    if argv[:1] == ["run"] and "--" in argv:
        split = argv.index("--")
        options = argv[1:split]
        directory = Path(options[1]) if options[:1] == ["--vectors"] else VECTOR_DIR
        return run(argv[split + 1 :], directory)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
