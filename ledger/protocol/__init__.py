"""The pure Model Amnesty protocol: statement bodies, admission, state, commitments, audit.
It imports nothing of the project but :mod:`ledger.errors`, the key parser of
:mod:`ledger.tlog.note` and itself (no I/O, no clock).

- :mod:`~ledger.protocol.terms` — the offer's terms and :func:`default_offer`.
- :mod:`~ledger.protocol.statements` — one strict body model per statement type
  (:data:`STATEMENT_TYPES`) and :class:`LoggedStatement`, the protocol's input.
- :mod:`~ledger.protocol.keys` — key identity: a key is its public key; a vkey in a body is a
  real key (:func:`~ledger.protocol.keys.checked_vkey`).
- :mod:`~ledger.protocol.quoting` — log text shown as a quotation (:func:`quote`).
- :mod:`~ledger.protocol.records` — the records the state keeps, and subject views.
- :mod:`~ledger.protocol.state` — :class:`ProtocolState`: admission, transitions, :func:`replay`;
  assembled from :mod:`~ledger.protocol.tables` (its tables and shared checks),
  :mod:`~ledger.protocol.body_rules` and :mod:`~ledger.protocol.subject_rules` (the rules of
  the body's and the subjects' statements) and :mod:`~ledger.protocol.queries` (its queries).
- :mod:`~ledger.protocol.commitments` — one named rule per body commitment.
- :mod:`~ledger.protocol.audit` — :func:`precedent_report` and :func:`render_precedent_text`.

The rules in words, precise enough to reimplement: ``docs/PROTOCOL.md``.
"""

from ledger.protocol.audit import PrecedentReport, precedent_report, render_precedent_text
from ledger.protocol.commitments import COMMITMENT_RULES, CommitmentCheck, Judgement
from ledger.protocol.state import MAX_CLOCK_SKEW_MS, ProtocolState, replay
from ledger.protocol.statements import STATEMENT_TYPES, LoggedStatement, parse_body
from ledger.protocol.terms import COMMITMENT_IDS, OfferTerms, default_offer

__all__ = [
    "COMMITMENT_IDS",
    "COMMITMENT_RULES",
    "MAX_CLOCK_SKEW_MS",
    "STATEMENT_TYPES",
    "CommitmentCheck",
    "Judgement",
    "LoggedStatement",
    "OfferTerms",
    "PrecedentReport",
    "ProtocolState",
    "default_offer",
    "parse_body",
    "precedent_report",
    "render_precedent_text",
    "replay",
]
