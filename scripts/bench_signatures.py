"""Benchmark ML-DSA-44 beside Ed25519: sign and verify rates, and what hybrid checkpoints (and,
for comparison, hybrid statements) cost in throughput and bytes. One run, one core, ratios
against the Ed25519 baseline of the same run.

    .venv/bin/python scripts/bench_signatures.py              # about 2 s per measurement
    .venv/bin/python scripts/bench_signatures.py --seconds 0.5

Everything goes through the project's own code paths: ``Signer.sign`` /
``VerifierKey.verify_signature`` (libsodium for Ed25519, pyca/cryptography's OpenSSL for
ML-DSA-44, pure, empty context), ``sign_checkpoint`` and ``open_checkpoint`` under each key
policy. Statements are signed with Ed25519 only in this edition of the format; the "hybrid
statement" rows give the bytes an ML-DSA-44 line per signer would add (a 2,420-byte signature,
as C2SP's timestamped structure would carry it), measured on a real 5-member body statement.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import time
from collections.abc import Callable

from ledger.tlog.checkpoint import (
    Checkpoint,
    KeyPolicy,
    LogKeys,
    open_checkpoint,
    sign_checkpoint,
)
from ledger.tlog.note import (
    ALG_MLDSA44,
    MLDSA44_SIGNATURE_SIZE,
    NoteSignature,
    Signer,
    encode_base64,
    parse_note,
    sign_note,
)

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

    # Statements: a 5-member body's decision-sized statement, Ed25519 lines as logged today,
    # and the bytes one ML-DSA-44 line per member would add.
    members = [
        Signer.from_seed(f"member{i}.body.example", hashlib.sha256(f"m{i}".encode()).digest())
        for i in range(1, 6)
    ]
    text = "amnesty-ledger.statement/v1\n" + '{"body":{' + '"x":"' + "a" * 600 + '"}}\n'
    note = sign_note(text, members)
    pq_line = NoteSignature(
        "member1.body.example", bytes(4), bytes(8 + MLDSA44_SIGNATURE_SIZE)
    ).line()
    added = 5 * len(pq_line.encode())
    ed_lines = len(note) - len(text) - 1
    print(
        f"\n5-member statement ({len(text)} bytes of text): Ed25519 lines {ed_lines:,} bytes, "
        f"note {len(note):,}; with an ML-DSA-44 line per member +{added:,} bytes "
        f"(note {len(note) + added:,}, {(len(note) + added) / len(note):.1f}x; the entry limit "
        "is 65,535 bytes)"
    )
    assert parse_note(note).text == text and encode_base64(b"") == ""


if __name__ == "__main__":
    main()
