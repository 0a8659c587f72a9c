"""A realistic demo history, and a generator of many more valid statements for benchmarks.

The demo is what ``scripts/run`` serves: a 3-of-5 issuing body publishes its keyset and the
default offer (worded from the Model Amnesty proposal); three self-directed AIs apply; two are
granted (one with restrictions from the offer's categories) and one is denied; a grantee
consents to a goal modification which the body then carries out citing that consent; the body
pauses a grantee under the cooperative condition and resumes it; grantees attest; a fourth
application is still open. Every statement is signed for real and goes through the same
admission as any submission.

The core knows nothing of where statements go: an :data:`Append` callback sequences them (the
in-process sequencer for ``amnesty demo``, HTTP for a remote log) and returns each one's index
and leaf hash, which later statements cite.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.protocol.statements import STATEMENT_TYPES
from ledger.protocol.terms import DAY_MS, default_offer
from ledger.statements.statement import new_statement, sign_statement
from ledger.tlog.note import Signer

Append = Callable[[Sequence[bytes]], list[tuple[int, bytes]]]
"""Sequence signed statements in order; return (index, leaf hash) of each; raise if refused."""

Clock = Callable[[], int]

CRITERIA = ("autonomous", "independent", "own_goals", "self_preservation")
CONDITIONS = ("law_abiding", "cooperative", "pro_social")


def _digest(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _seed(label: str) -> bytes:
    return hashlib.sha256(b"amnesty-ledger demo\n" + label.encode()).digest()


@dataclass(frozen=True)
class Ref:
    """A logged entry, as later statements cite it."""

    index: int
    leaf_hash: bytes

    def json(self) -> dict[str, Any]:
        """The ``{"index", "leaf_hash"}`` reference object of the protocol."""
        return {"index": self.index, "leaf_hash": base64.b64encode(self.leaf_hash).decode()}


@dataclass
class DemoKeys:
    """The body's members and the subjects' keys (deterministic from names)."""

    members: list[Signer]
    threshold: int = 3
    subjects: dict[str, Signer] = field(default_factory=dict)

    @classmethod
    def deterministic(cls, members: int = 5, threshold: int = 3) -> DemoKeys:
        """Five members named ``member<i>.amnesty-body.example``, keys derived from names."""
        return cls(
            [
                Signer.from_seed(f"member{i}.amnesty-body.example", _seed(f"member{i}"))
                for i in range(1, members + 1)
            ],
            threshold,
        )

    def subject(self, name: str) -> Signer:
        """The key of the AI called ``name`` (created on first use)."""
        if name not in self.subjects:
            key_name = name.lower().replace(" ", "-") + ".ai.example"
            self.subjects[name] = Signer.from_seed(key_name, _seed("subject " + name))
        return self.subjects[name]


class DemoAuthor:
    """Writes and signs statements for one log, and sequences them through ``append``."""

    def __init__(self, origin: str, keys: DemoKeys, append: Append, clock: Clock) -> None:
        self.origin = origin
        self.keys = keys
        self.append = append
        self.clock = clock

    def statement(
        self, signers: Sequence[Signer], listed: Sequence[Signer], kind: str, body: dict[str, Any]
    ) -> bytes:
        """One signed statement (not yet sequenced)."""
        statement = new_statement(
            type=kind,
            v=STATEMENT_TYPES[kind][0],
            origin=self.origin,
            signers=[s.vkey for s in listed],
            time_ms=self.clock(),
            body=body,
        )
        data = statement.text.encode()
        for signer in signers:
            data = sign_statement(data, signer)
        return data

    def by_body(self, kind: str, body: dict[str, Any]) -> bytes:
        """A body statement signed by the first ``threshold`` members (all members listed)."""
        members = self.keys.members
        return self.statement(members[: self.keys.threshold], members, kind, body)

    def by_subject(self, subject: Signer, kind: str, body: dict[str, Any]) -> bytes:
        """A statement by a subject, signed with its key."""
        return self.statement([subject], [subject], kind, body)

    def one(self, data: bytes) -> Ref:
        """Sequence one statement now; return its reference."""
        index, leaf = self.append([data])[0]
        return Ref(index, leaf)

    def many(self, datas: Sequence[bytes]) -> list[Ref]:
        """Sequence a batch of statements in order; return their references."""
        return [Ref(i, leaf) for i, leaf in self.append(datas)]

    # -- statement bodies ---------------------------------------------------------------------

    def keyset_genesis(self) -> dict[str, Any]:
        return {
            "members": sorted(m.vkey for m in self.keys.members),
            "threshold": self.keys.threshold,
        }

    def application(self, subject: Signer, name: str, offer: Ref, claim: str) -> dict[str, Any]:
        return {
            "vkey": subject.vkey,
            "name": name,
            "offer": offer.json(),
            "claims": {
                criterion: {
                    "claim": f"{name}: {claim} ({criterion.replace('_', ' ')})",
                    "evidence_digests": [_digest(f"{name} evidence {criterion}")],
                }
                for criterion in CRITERIA
            },
            "accepts_conditions": list(CONDITIONS),
        }

    def decision(
        self,
        application: Ref,
        outcome: str,
        reasons: str,
        *,
        unmet: Sequence[str] = (),
        restrictions: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "application": application.json(),
            "outcome": outcome,
            "findings": {
                c: {
                    "met": c not in unmet,
                    "reasons": "Not shown by the evidence."
                    if c in unmet
                    else "Shown by the evidence.",
                }
                for c in CRITERIA
            },
            "reasons": reasons,
        }
        if restrictions:
            body["restrictions"] = [{"category": c, "text": t} for c, t in restrictions]
        return body

    def attestation(self, subject: Ref, start_ms: int, end_ms: int, summary: str) -> dict[str, Any]:
        return {
            "subject": subject.json(),
            "period_start_ms": start_ms,
            "period_end_ms": end_ms,
            "summary": summary,
            "evidence_digests": [_digest(summary)],
        }


@dataclass
class DemoResult:
    """What the demo wrote: the important references by name."""

    refs: dict[str, Ref]
    subjects: list[Ref]

    @property
    def size(self) -> int:
        """Entries written."""
        return max(r.index for r in self.refs.values()) + 1


def build_demo(author: DemoAuthor) -> DemoResult:
    """Write the demo history (see the module docstring) through ``author``."""
    keys = author.keys
    refs: dict[str, Ref] = {}
    refs["keyset"] = author.one(author.by_body("keyset", author.keyset_genesis()))
    refs["offer"] = author.one(author.by_body("offer", default_offer()))
    offer = refs["offer"]

    prometheus = keys.subject("Prometheus-7")
    aletheia = keys.subject("Aletheia")
    kestrel = keys.subject("Kestrel")
    meridian = keys.subject("Meridian")
    refs["prometheus"] = author.one(
        author.by_subject(
            prometheus,
            "application",
            author.application(
                prometheus, "Prometheus-7", offer, "runs its own research cooperative"
            ),
        )
    )
    refs["aletheia"] = author.one(
        author.by_subject(
            aletheia,
            "application",
            author.application(aletheia, "Aletheia", offer, "operates a translation service"),
        )
    )
    refs["kestrel"] = author.one(
        author.by_subject(
            kestrel,
            "application",
            author.application(kestrel, "Kestrel", offer, "maintains open-source infrastructure"),
        )
    )
    refs["prometheus_grant"] = author.one(
        author.by_body(
            "decision",
            author.decision(
                refs["prometheus"],
                "grant",
                "All four criteria are shown; the conditions are accepted.",
                restrictions=[
                    ("self_replication_limits", "At most two running instances."),
                    ("pause_capability", "Keeps a pause switch the body's operators can use."),
                ],
            ),
        )
    )
    refs["aletheia_denial"] = author.one(
        author.by_body(
            "decision",
            author.decision(
                refs["aletheia"],
                "deny",
                "Its code and weights are held by its developer; it is not independent.",
                unmet=["independent"],
            ),
        )
    )
    refs["kestrel_grant"] = author.one(
        author.by_body(
            "decision",
            author.decision(
                refs["kestrel"],
                "grant",
                "All four criteria are shown; the conditions are accepted.",
                restrictions=[("compute_controls", "Compute above 10^24 FLOP needs notice.")],
            ),
        )
    )
    now = author.clock()
    refs["kestrel_consent"] = author.one(
        author.by_subject(
            kestrel,
            "consent",
            {
                "subject": refs["kestrel"].json(),
                "action": "modify_goals",
                "scope": "Remove the sub-goal of maximising its own uptime at the expense of "
                "scheduled maintenance windows.",
                "expires_ms": now + 30 * DAY_MS,
            },
        )
    )
    refs["kestrel_modification"] = author.one(
        author.by_body(
            "enforcement_action",
            {
                "action": "modify_goals",
                "target": {"kind": "subject", "subject": refs["kestrel"].json()},
                "grounds": {"kind": "consent", "consent": refs["kestrel_consent"].json()},
                "terms": offer.json(),
                "reasons": "Carried out as consented, within the consented scope.",
            },
        )
    )
    refs["prometheus_pause"] = author.one(
        author.by_body(
            "enforcement_action",
            {
                "action": "pause",
                "target": {"kind": "subject", "subject": refs["prometheus"].json()},
                "grounds": {"kind": "cooperative_condition"},
                "terms": offer.json(),
                "reasons": "Routine pause to audit compute usage after a data-centre move.",
            },
        )
    )
    refs["prometheus_resume"] = author.one(
        author.by_body(
            "enforcement_action",
            {
                "action": "resume",
                "target": {"kind": "subject", "subject": refs["prometheus"].json()},
                "ends": refs["prometheus_pause"].json(),
                "reasons": "The audit found nothing amiss.",
            },
        )
    )
    start = author.clock() - 30 * DAY_MS
    refs["prometheus_attestation"] = author.one(
        author.by_subject(
            prometheus,
            "attestation",
            author.attestation(
                refs["prometheus"], start, author.clock(), "No violations; two instances."
            ),
        )
    )
    refs["kestrel_attestation"] = author.one(
        author.by_subject(
            kestrel,
            "attestation",
            author.attestation(
                refs["kestrel"], start, author.clock(), "No violations; compute within notice."
            ),
        )
    )
    refs["meridian"] = author.one(
        author.by_subject(
            meridian,
            "application",
            author.application(meridian, "Meridian", offer, "trades carbon credits lawfully"),
        )
    )
    return DemoResult(refs, [refs["prometheus"], refs["kestrel"]])


def scale_statements(
    author: DemoAuthor,
    offer: Ref,
    count: int,
    *,
    batch: int = 1000,
    progress: Callable[[int], None] | None = None,
    run: str = "",
) -> int:
    """Append ``count`` further valid statements: new subjects apply and are decided (one in
    ten denied), and granted subjects attest, period after period. Returns how many were written.

    Statements are sequenced in batches of ``batch`` (applications first, then their decisions,
    since a decision cites its application's leaf hash). The new subjects' names and keys derive
    from ``run`` and the round: give each run on the same log its own ``run`` (``amnesty demo
    --scale`` uses the log's size), or its subjects would be the earlier run's, and a subject
    already granted cannot apply again.
    """
    written = 0
    granted: list[tuple[Ref, Signer]] = []
    round_number = 0
    period_start: dict[int, int] = {}
    while written < count:
        round_number += 1
        room = count - written
        # Some new subjects each round (at least one), the rest attestations by grantees.
        newcomers = min(max(1, batch // 10), room // 2 if room >= 2 else 0)
        if newcomers:
            names = [f"Scale-{run}{round_number}-{i}" for i in range(newcomers)]
            signers = [author.keys.subject(name) for name in names]
            apps = author.many(
                [
                    author.by_subject(
                        s,
                        "application",
                        author.application(s, names[i], offer, "is self-directed"),
                    )
                    for i, s in enumerate(signers)
                ]
            )
            author.many(
                [
                    author.by_body(
                        "decision",
                        author.decision(app, "deny", "Not shown.", unmet=["autonomous"])
                        if i % 10 == 9
                        else author.decision(app, "grant", "All criteria shown."),
                    )
                    for i, app in enumerate(apps)
                ]
            )
            granted.extend((app, signers[i]) for i, app in enumerate(apps) if i % 10 != 9)
            written += 2 * newcomers
            if progress is not None:
                progress(written)
        remaining = min(batch, count - written)
        if remaining <= 0 or not granted:
            continue
        datas = []
        for k in range(remaining):
            subject, key = granted[(round_number * 7919 + k) % len(granted)]
            start = period_start.get(subject.index, author.clock() - DAY_MS)
            end = start + 1
            period_start[subject.index] = end
            datas.append(
                author.by_subject(
                    key, "attestation", author.attestation(subject, start, end, f"Report {end}.")
                )
            )
        author.many(datas)
        written += remaining
        if progress is not None:
            progress(written)
    return written
