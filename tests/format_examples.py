"""The worked examples of docs/FORMAT.md, generated from the code with fixed keys and times.

``tests/test_format_doc.py`` checks that every ```` ```example:NAME ```` block in the spec is
byte for byte what this module produces; ``python tests/format_examples.py`` rewrites the blocks.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
from pathlib import Path

from ledger.statements.entry import LogEntry
from ledger.statements.statement import new_statement, sign_statement
from ledger.tlog.checkpoint import Checkpoint, sign_checkpoint
from ledger.tlog.merkle import EMPTY_ROOT, leaf_hash
from ledger.tlog.note import Signer
from ledger.tlog.tiles import TiledTree, encode_bundle
from ledger.tlog.tlogproof import TlogProof, format_tlog_proof

ORIGIN = "ledger.example.org/amnesty"
SPEC = Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md"
_BLOCK = re.compile(r"```example:([a-z0-9-]+)\n(.*?)```", re.DOTALL)


def _seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def generate_examples() -> dict[str, str]:
    """Every example block's exact contents, by name."""
    log_key = Signer.from_seed(ORIGIN, _seed("example log key"))
    members = [Signer.from_seed(f"member{i}.body.example", _seed(f"member{i}")) for i in (1, 2, 3)]
    out: dict[str, str] = {}
    out["private-key"] = log_key.private_key_text() + "\n"
    out["vkeys"] = "".join(k.vkey + "\n" for k in [log_key, *members])

    genesis = new_statement(
        type="keyset",
        v=1,
        origin=ORIGIN,
        signers=[m.vkey for m in members],
        time_ms=1767225600000,
        body={"members": sorted(m.vkey for m in members), "threshold": 2},
    )
    out["statement-unsigned"] = genesis.text
    signed = sign_statement(sign_statement(genesis.text.encode(), members[1]), members[0])
    out["statement-signed"] = signed.decode()
    out["statement-id"] = genesis.statement_id.hex() + "\n"

    tree = TiledTree.empty()
    entry0 = LogEntry(
        index=0, log_time_ms=1767225600123, prev=EMPTY_ROOT, statement=signed.decode()
    )
    data0 = entry0.encode()
    out["entry-0"] = data0.decode() + "\n"
    leaf0 = leaf_hash(data0)
    out["leaf-hash-0"] = leaf0.hex() + "\n"
    tree.append(leaf0)
    cp1 = sign_checkpoint(Checkpoint(ORIGIN, 1, tree.root()), log_key)
    out["checkpoint-1"] = cp1.decode()

    rotation = new_statement(
        type="keyset",
        v=1,
        origin=ORIGIN,
        signers=[m.vkey for m in members],
        time_ms=1767312000000,
        body={
            "members": sorted(m.vkey for m in members),
            "previous": {"index": 0, "leaf_hash": base64.b64encode(leaf0).decode()},
            "threshold": 3,
        },
    )
    rotation_signed = rotation.text.encode()
    for member in members:
        rotation_signed = sign_statement(rotation_signed, member)
    entry1 = LogEntry(
        index=1, log_time_ms=1767312000456, prev=tree.root(), statement=rotation_signed.decode()
    )
    data1 = entry1.encode()
    out["entry-1"] = data1.decode() + "\n"
    leaf1 = leaf_hash(data1)
    tree.append(leaf1)
    out["root-2"] = (
        f"leaf hash of entry 1: {leaf1.hex()}\n"
        f"root of size 1:       {leaf0.hex()}\n"
        f"root of size 2:       {tree.root().hex()}\n"
    )
    cp2 = sign_checkpoint(Checkpoint(ORIGIN, 2, tree.root()), log_key)
    out["checkpoint-2"] = cp2.decode()
    tiles = dict(tree.changed_tiles())
    out["tiles-2"] = "".join(
        f"{tile.path()}  ({len(data)} bytes) {data.hex()}\n"
        for tile, data in sorted(tiles.items(), key=lambda t: t[0].path())
    )
    bundle = encode_bundle([data0, data1])
    out["bundle-2"] = (
        f"tile/entries/000.p/2  ({len(bundle)} bytes)\n"
        f"{bundle[:2].hex()} <entry 0: {len(data0)} bytes> {bundle[2 + len(data0) : 4 + len(data0)].hex()} <entry 1: {len(data1)} bytes>\n"
    )
    proof = format_tlog_proof(TlogProof(index=0, hashes=(leaf1,), checkpoint=cp2))
    out["tlog-proof-0"] = proof.decode()
    return out


def rewrite_spec(path: Path = SPEC) -> None:
    """Replace every example block in the spec with the generated text."""
    examples = generate_examples()

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"```example:{name}\n{examples[name]}```"

    path.write_text(_BLOCK.sub(replace, path.read_text(encoding="utf-8")), encoding="utf-8")


def spec_blocks(path: Path = SPEC) -> dict[str, str]:
    """The example blocks as the spec has them."""
    return {m.group(1): m.group(2) for m in _BLOCK.finditer(path.read_text(encoding="utf-8"))}


if __name__ == "__main__":
    rewrite_spec(Path(sys.argv[1]) if len(sys.argv) > 1 else SPEC)
