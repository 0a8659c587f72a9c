"""Benchmark ML-DSA-44 beside Ed25519: sign and verify rates, and what hybrid checkpoints and
hybrid statements cost in throughput and bytes. One run, one core, ratios against the Ed25519
baseline of the same run.

    .venv/bin/python scripts/bench_signatures.py              # about 2 s per measurement
    .venv/bin/python scripts/bench_signatures.py --seconds 0.5

Everything goes through the project's own code paths: ``Signer.sign`` /
``VerifierKey.verify_signature`` (libsodium for Ed25519, pyca/cryptography's OpenSSL for
ML-DSA-44, pure, empty context), ``sign_checkpoint`` and ``open_checkpoint`` under each key
policy. Statements: a 5-member body's 3-of-5 statement signed with Ed25519 only, against the
same statement listing each member's ML-DSA-44 statement key too and signed by three members
with both keys (``ledger.tlog.statement_mldsa``; what a keyset with ``signatures: hybrid``
requires): their bytes (note and log entry), and the rate at which ``verified_signers`` (parse,
then every listed signer's line) checks each.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import time
from collections.abc import Callable, Sequence

from ledger.statements.canonical import JSONValue
from ledger.statements.entry import entry_size
from ledger.statements.statement import (
    MAX_HYBRID_SIGNERS,
    new_statement,
    parse_statement,
    sign_statement,
    verified_signers,
)
from ledger.tlog.checkpoint import (
    Checkpoint,
    KeyPolicy,
    LogKeys,
    open_checkpoint,
    sign_checkpoint,
)
from ledger.tlog.note import ALG_MLDSA44, Signer
from ledger.tlog.statement_mldsa import StatementMLDSA44Signer
from ledger.tlog.tiles import MAX_ENTRY_SIZE

ORIGIN = "bench.example.org/log"
MESSAGE = hashlib.sha256(b"message").digest() * 4  # 128 bytes, about a checkpoint's text


def rates(works: dict[str, Callable[[], object]], seconds: float) -> dict[str, float]:
    """Calls per second of each of ``works``, measured interleaved — short bursts of each in
    turn until each has run ``seconds`` — so that load from other processes on a shared
    machine affects all of them alike and the ratios between them stay meaningful."""
    spent = dict.fromkeys(works, 0.0)
    calls = dict.fromkeys(works, 0)
    for work in works.values():  # warm-up
        for _ in range(5):
            work()
    burst = min(0.1, seconds / 5)
    while min(spent.values()) < seconds:
        for name, work in works.items():
            started = time.perf_counter()
            count = 0
            while time.perf_counter() - started < burst:
                work()
                count += 1
            spent[name] += time.perf_counter() - started
            calls[name] += count
    return {name: calls[name] / spent[name] for name in works}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    seconds: float = args.seconds

    ed = Signer.from_seed(ORIGIN, hashlib.sha256(b"ed").digest())
    pq = Signer.from_seed(ORIGIN, hashlib.sha256(b"pq").digest(), ALG_MLDSA44)
    ed_sig, pq_sig = ed.sign(MESSAGE), pq.sign(MESSAGE)
    ed_key, pq_key = ed.verifier_key, pq.verifier_key

    print(f"one core, {seconds:g} s per measurement; message {len(MESSAGE)} bytes\n")
    primitives = rates(
        {
            "Ed25519 sign": lambda: ed.sign(MESSAGE),
            "ML-DSA-44 sign": lambda: pq.sign(MESSAGE),
            "Ed25519 verify": lambda: ed_key.verify_signature(MESSAGE, ed_sig),
            "ML-DSA-44 verify": lambda: pq_key.verify_signature(MESSAGE, pq_sig),
        },
        seconds,
    )
    print(f"{'primitive':<22}{'per second':>12}{'vs Ed25519':>12}")
    for name, value in primitives.items():
        base = primitives["Ed25519 sign" if "sign" in name else "Ed25519 verify"]
        print(f"{name:<22}{value:>12,.0f}{value / base:>11.2f}x")

    checkpoint = Checkpoint(ORIGIN, 1_000_000, hashlib.sha256(b"root").digest())
    plain = sign_checkpoint(checkpoint, ed)
    hybrid = sign_checkpoint(checkpoint, ed, [pq])
    both = LogKeys(ed_key, pq_key)
    print(f"\n{'checkpoint':<34}{'per second':>12}{'vs Ed25519':>12}")
    works: dict[str, Callable[[], object]] = {
        "sign, Ed25519 only": functools.partial(sign_checkpoint, checkpoint, ed),
        "sign, hybrid": functools.partial(sign_checkpoint, checkpoint, ed, [pq]),
        "open, Ed25519 only": functools.partial(open_checkpoint, plain, ed_key),
    }
    for policy in KeyPolicy:
        keys = LogKeys(ed_key, pq_key, policy)
        works[f"open hybrid, policy {policy.value}"] = functools.partial(
            open_checkpoint, hybrid, keys
        )
    measured = rates(works, seconds)
    sign_plain, sign_hybrid = measured["sign, Ed25519 only"], measured["sign, hybrid"]
    open_plain = measured["open, Ed25519 only"]
    opened = {policy: measured[f"open hybrid, policy {policy.value}"] for policy in KeyPolicy}
    print(f"{'sign, Ed25519 only':<34}{sign_plain:>12,.0f}{1:>11.2f}x")
    print(f"{'sign, hybrid':<34}{sign_hybrid:>12,.0f}{sign_hybrid / sign_plain:>11.2f}x")
    print(f"{'open, Ed25519 only':<34}{open_plain:>12,.0f}{1:>11.2f}x")
    for policy, value in opened.items():
        label = f"open hybrid, policy {policy.value}"
        print(f"{label:<34}{value:>12,.0f}{value / open_plain:>11.2f}x")
    assert open_checkpoint(hybrid, both) == checkpoint
    print(
        f"\ncheckpoint note bytes: Ed25519 only {len(plain):,}, hybrid {len(hybrid):,} "
        f"({len(hybrid) / len(plain):.1f}x; +{len(hybrid) - len(plain):,} per checkpoint)"
    )
    print(
        "a sequencer signs one checkpoint per batch: at the hybrid rate above it can sign "
        f"{sign_hybrid:,.0f} batches/s on one core, each of up to thousands of entries"
    )

    bench_statements(seconds)


def bench_statements(seconds: float) -> None:
    """A 3-of-5 body statement, Ed25519 only and hybrid: bytes and verify rate."""
    members = [
        Signer.from_seed(f"member{i}.body.example", hashlib.sha256(f"m{i}".encode()).digest())
        for i in range(1, 6)
    ]
    pq_members = [
        StatementMLDSA44Signer(m.name, hashlib.sha256(f"pq{m.name}".encode()).digest())
        for m in members
    ]
    body: dict[str, JSONValue] = {
        "offer": {"index": 1, "leaf_hash": encode_digest()},
        "reasons": "a" * 600,
    }

    def signed(listed: list[str], signing: Sequence[Signer | StatementMLDSA44Signer]) -> bytes:
        data = new_statement(
            type="offer_withdrawal",
            v=1,
            origin=ORIGIN,
            signers=listed,
            time_ms=1_767_225_600_000,
            body=body,
        ).text.encode()
        for signer in signing:
            data = sign_statement(data, signer)
        return data

    ed_only = signed([m.vkey for m in members], members[:3])
    hybrid = signed(
        [m.vkey for m in members] + [p.vkey for p in pq_members], [*members[:3], *pq_members[:3]]
    )
    assert len(verified_signers(parse_statement(hybrid))) == 6
    measured = rates(
        {
            "Ed25519 3-of-5": lambda: verified_signers(parse_statement(ed_only)),
            "hybrid 3-of-5": lambda: verified_signers(parse_statement(hybrid)),
        },
        seconds,
    )
    base = measured["Ed25519 3-of-5"]
    print(f"\n{'statement (parse + verify)':<34}{'per second':>12}{'vs Ed25519':>12}")
    for name, value in measured.items():
        print(f"{name:<34}{value:>12,.0f}{value / base:>11.2f}x")
    sizes = {
        name: (len(data), entry_size(data.decode()))
        for name, data in (("Ed25519 3-of-5", ed_only), ("hybrid 3-of-5", hybrid))
    }
    print(f"\n{'statement bytes':<34}{'note':>12}{'entry (max)':>12}")
    for name, (note, entry) in sizes.items():
        print(f"{name:<34}{note:>12,}{entry:>12,}")
    ratio = sizes["hybrid 3-of-5"][1] / sizes["Ed25519 3-of-5"][1]
    print(
        f"the hybrid entry is {ratio:.1f}x the Ed25519 one; the limit is {MAX_ENTRY_SIZE:,} "
        f"bytes, and at most {MAX_HYBRID_SIGNERS} hybrid signers fit in one statement"
    )


def encode_digest() -> str:
    """A canonical base64 digest for the benchmark body."""
    return base64.b64encode(hashlib.sha256(b"leaf").digest()).decode()


if __name__ == "__main__":
    main()
