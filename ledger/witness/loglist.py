"""The public witness network's log-list format (``logs/v0``): how a log asks to be witnessed.

Followed as the network's own validator reads it (transparency-dev/witness-network,
``cmd/validate/main.go`` at commit 04704dec; its ``docs/log-list-format.md`` is not consistent
about where a ``bastion`` line goes, and the validator accepts none, so neither do we): the
header line ``logs/v0``, then for each log, in order, ``vkey VKEY``, optionally
``origin ORIGIN``, ``qpd QPD`` (a positive decimal: the add-checkpoint requests the log may
make per day) and ``contact CONTACT`` (any non-empty text). Blank lines and lines starting with
``#`` are ignored; surrounding whitespace is trimmed.

An entry this project prints is stricter than the format: the vkey is the log's Ed25519 key
(type 0x01, as the network's participation guide asks), the origin line is always written and is
the key's name, and ``qpd`` is derived from the cosigner's minimum interval
(``ledger.witness.cosigner.Pacing.qpd``), so the log never exceeds what it declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ledger.errors import MalformedError
from ledger.tlog.checkpoint import MAX_INT63
from ledger.tlog.note import ALG_ED25519, VerifierKey, excerpt

LOG_LIST_HEADER: Final = "logs/v0"


@dataclass(frozen=True, slots=True)
class LogListEntry:
    """One log of a ``logs/v0`` list. ``origin`` is ``None`` when the entry has no origin line
    (the origin is then the vkey's name)."""

    vkey: VerifierKey
    origin: str | None
    qpd: int
    contact: str

    def text(self) -> str:
        """The entry's lines, each ending in a newline (the origin line only if set)."""
        lines = [f"vkey {self.vkey.vkey()}"]
        if self.origin is not None:
            lines.append(f"origin {self.origin}")
        lines += [f"qpd {self.qpd}", f"contact {self.contact}"]
        return "".join(line + "\n" for line in lines)


def log_list_entry(log_key: VerifierKey, qpd: int, contact: str) -> LogListEntry:
    """The entry this log submits: its Ed25519 key, its origin, ``qpd`` and ``contact``,
    checked against the format (by parsing it back) and this project's stricter rules."""
    if log_key.alg != ALG_ED25519:
        raise MalformedError(
            f"couldn't make a log-list entry for {log_key.vkey()}: the witness network lists a "
            f"log's Ed25519 key (type 0x01), not type 0x{log_key.alg:02x}"
        )
    contact = contact.strip()
    if not contact or any(c < " " or c == "\x7f" for c in contact):
        raise MalformedError(
            f"couldn't make a log-list entry: contact {excerpt(contact)} is empty or holds a "
            "control character"
        )
    entry = LogListEntry(log_key, log_key.name, qpd, contact)
    (parsed,) = parse_log_list(f"{LOG_LIST_HEADER}\n\n{entry.text()}")
    if parsed != entry:
        raise MalformedError(
            f"couldn't make a log-list entry: {excerpt(entry.text())} does not read back as written"
        )
    return entry


def parse_log_list(text: str) -> list[LogListEntry]:
    """Parse a ``logs/v0`` list; raise :class:`MalformedError` naming the line number."""
    entries: list[LogListEntry] = []
    header = False
    vkey: VerifierKey | None = None
    origin: str | None = None
    qpd: int | None = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r").strip()
        if not line or line.startswith("#"):
            continue
        try:
            if not header:
                if line != LOG_LIST_HEADER:
                    raise MalformedError(f"want the header {LOG_LIST_HEADER!r}")
                header = True
                continue
            keyword, _, value = line.partition(" ")
            if vkey is None:
                if keyword != "vkey" or not value or " " in value:
                    raise MalformedError("want 'vkey VKEY'")
                vkey = VerifierKey.parse(value)
            elif qpd is None and keyword == "origin" and origin is None:
                if not value:
                    raise MalformedError("want 'origin ORIGIN'")
                origin = value
            elif qpd is None:
                if keyword != "qpd" or not value.isascii() or not value.isdecimal():
                    raise MalformedError("want 'qpd N', N a positive decimal")
                qpd = int(value)
                if not 0 < qpd <= MAX_INT63:
                    raise MalformedError(f"qpd {qpd} is not from 1 to {MAX_INT63}")
            else:
                if keyword != "contact" or not value:
                    raise MalformedError("want 'contact CONTACT'")
                entries.append(LogListEntry(vkey, origin, qpd, value))
                vkey, origin, qpd = None, None, None
        except MalformedError as err:
            raise MalformedError(
                f"couldn't parse log list line {number} {excerpt(line)}: {err}"
            ) from None
    if not header:
        raise MalformedError(f"couldn't parse log list: no {LOG_LIST_HEADER!r} header")
    if vkey is not None:
        raise MalformedError("couldn't parse log list: the last log's entry is incomplete")
    return entries
