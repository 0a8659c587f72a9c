"""The log entry: the envelope the sequencer wraps around an accepted statement.

The leaf data of the Merkle tree is the RFC 8785 canonical JSON encoding of::

    {"index": <int>, "log_time_ms": <int>, "prev": <base64 of 32 bytes>, "statement": <str>}

- ``index`` is the entry's position in the log (0-based). An entry therefore cannot be moved.
- ``log_time_ms`` is the log's clock when it sequenced the entry, in milliseconds since the
  Unix epoch. It never decreases along the log.
- ``prev`` is the RFC 6962 root hash of the tree of all earlier entries ``[0, index)``
  (``SHA-256("")`` for entry 0). This is the hash chain: every entry commits to the whole history
  before it, so a verifier that holds any single entry can check it against any checkpoint of
  size ``index``.
- ``statement`` is the signed statement note, verbatim (text, blank line, signature lines).

An encoded entry is at most :data:`ledger.tlog.tiles.MAX_ENTRY_SIZE` bytes (the entry-bundle limit).
:func:`entry_size` is the size a statement's entry will have at most, wherever it is logged, so
a signer can refuse a statement that could never be logged before anyone submits it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from json.encoder import encode_basestring

from ledger.errors import MalformedError
from ledger.statements.canonical import JSONValue, has_astral, parse_canonical
from ledger.tlog.merkle import HASH_SIZE, leaf_hash
from ledger.tlog.tiles import MAX_ENTRY_SIZE

_ENTRY_KEYS = frozenset({"index", "log_time_ms", "prev", "statement"})

_ENTRY_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
"""RFC 8785 for exactly this shape, at C speed: the keys are ASCII (so sorting by code point is
JCS's UTF-16 order), the numbers are integers, and JCS escapes in strings exactly what this
encoder does (quote, backslash and control characters, the latter as the two-character escapes
or lowercase six-character ones). A lone surrogate in ``statement`` makes ``.encode("utf-8")``
fail, as JCS requires. ``tests/test_entry.py`` checks the equality with ``canonical_dumps``."""


_MAX_SAFE_INTEGER = 2**53 - 1
_ENVELOPE_BYTES = len(
    _ENTRY_ENCODER.encode(
        {
            "index": _MAX_SAFE_INTEGER,
            "log_time_ms": _MAX_SAFE_INTEGER,
            "prev": "A" * 43 + "=",
            "statement": "",
        }
    )
)
"""The envelope around the statement at its largest (16-digit index and log time): 126 bytes."""


def entry_size(statement: str) -> int:
    """The largest size, in bytes, of the entry that holds ``statement`` (the signed note as
    text): the envelope at its largest plus the note escaped as a JSON string (a newline
    becomes two bytes, a quote or backslash two, a control character six). A statement whose
    size here is over :data:`~ledger.tlog.tiles.MAX_ENTRY_SIZE` cannot be logged."""
    return _ENVELOPE_BYTES + len(encode_basestring(statement).encode("utf-8")) - 2


_FAST_HEAD = re.compile(
    r'\{"index":(0|[1-9][0-9]{0,14}),"log_time_ms":(0|[1-9][0-9]{0,14}),'
    r'"prev":"([A-Za-z0-9+/]{43}=)","statement":"'
)
"""The start of an envelope in the one shape :func:`_fast_fields` reads: integers of at most 15
digits (so within ±(2^53 − 1)) in canonical spelling, and a ``prev`` of base64 characters only
(no escape can hide in it)."""


def _fast_fields(data: bytes) -> tuple[int, int, str, str] | None:
    """The four fields of ``data`` if it is, provably, the canonical envelope of them; ``None``
    for anything else, which :meth:`LogEntry.decode` then hands to the strict parser.

    Exact: a result is returned only when ``data`` is byte for byte what the canonical encoder
    writes for the object of these four keys (the keys in order, the integers and ``prev`` as
    matched, the statement re-escaped by the very function the encoder escapes strings with),
    so only when :func:`~ledger.statements.canonical.parse_canonical` would return the same object. A
    character beyond U+FFFF sends the entry to the strict parser, as does every refusal.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    head = _FAST_HEAD.match(text)
    if head is None or not text.endswith('"}') or has_astral(data):
        return None
    start = head.end()
    try:
        statement, end = scanstring(text, start, True)
    except ValueError:
        return None
    if end != len(text) - 1 or encode_basestring(statement) != text[start - 1 : end]:
        return None
    index, log_time_ms, prev_b64 = head.groups()
    return int(index), int(log_time_ms), prev_b64, statement


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One decoded log entry. Construct with :meth:`decode` or directly; :meth:`encode` is the
    only way bytes are made, so ``decode(e.encode()) == e`` and ``decode(b).encode() == b``."""

    index: int
    log_time_ms: int
    prev: bytes
    statement: str

    def encode(self) -> bytes:
        """Return the canonical leaf bytes; raise :class:`MalformedError` above the size limit."""
        if self.index < 0 or self.log_time_ms < 0:
            raise MalformedError(
                f"couldn't encode entry {self.index}: index and log_time_ms must be >= 0"
            )
        if len(self.prev) != HASH_SIZE:
            raise MalformedError(
                f"couldn't encode entry {self.index}: prev is {len(self.prev)} bytes, not 32"
            )
        data = _ENTRY_ENCODER.encode(
            {
                "index": self.index,
                "log_time_ms": self.log_time_ms,
                "prev": base64.b64encode(self.prev).decode("ascii"),
                "statement": self.statement,
            }
        ).encode("utf-8")
        if len(data) > MAX_ENTRY_SIZE:
            raise MalformedError(
                f"couldn't encode entry {self.index}: {len(data)} bytes is over the "
                f"{MAX_ENTRY_SIZE}-byte entry limit of tlog-tiles bundles"
            )
        return data

    def leaf_hash(self) -> bytes:
        """RFC 6962 leaf hash of the encoded entry."""
        return leaf_hash(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> LogEntry:
        """Parse leaf bytes strictly: canonical JSON, exactly the four keys, correct types."""
        if len(data) > MAX_ENTRY_SIZE:
            raise MalformedError(
                f"couldn't decode entry: {len(data)} bytes is over the {MAX_ENTRY_SIZE}-byte limit"
            )
        index: JSONValue
        log_time_ms: JSONValue
        prev_b64: JSONValue
        statement: JSONValue
        fields = _fast_fields(data)
        if fields is not None:
            index, log_time_ms, prev_b64, statement = fields
            # 43 base64 characters and "=": always 32 bytes, decoded as b64decode would.
            prev = binascii.a2b_base64(prev_b64, strict_mode=True)
            if base64.b64encode(prev).decode("ascii") != prev_b64:
                raise MalformedError(
                    f"couldn't decode entry {index}: prev must be the canonical base64 of 32 bytes"
                )
            return cls(index=index, log_time_ms=log_time_ms, prev=prev, statement=statement)
        else:
            value = parse_canonical(data)
            if not isinstance(value, dict) or set(value) != _ENTRY_KEYS:
                keys = sorted(value) if isinstance(value, dict) else type(value).__name__
                raise MalformedError(
                    f"couldn't decode entry: expected keys {sorted(_ENTRY_KEYS)}, got {keys}"
                )
            index, log_time_ms = value["index"], value["log_time_ms"]
            prev_b64, statement = value["prev"], value["statement"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise MalformedError(f"couldn't decode entry: index {index!r} is not an integer >= 0")
        if not isinstance(log_time_ms, int) or isinstance(log_time_ms, bool) or log_time_ms < 0:
            raise MalformedError(
                f"couldn't decode entry {index}: log_time_ms {log_time_ms!r} is not an integer >= 0"
            )
        if not isinstance(prev_b64, str) or not isinstance(statement, str):
            raise MalformedError(
                f"couldn't decode entry {index}: prev and statement must be strings"
            )
        try:
            prev = base64.b64decode(prev_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedError(
                f"couldn't decode entry {index}: prev is not base64: {exc}"
            ) from exc
        if len(prev) != HASH_SIZE or base64.b64encode(prev).decode("ascii") != prev_b64:
            raise MalformedError(
                f"couldn't decode entry {index}: prev must be the canonical base64 of 32 bytes"
            )
        return cls(index=index, log_time_ms=log_time_ms, prev=prev, statement=statement)
