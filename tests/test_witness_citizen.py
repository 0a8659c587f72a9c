"""The log as a citizen of the public witness network: paced requests, backoff, Retry-After,
404 as "not configured yet", resync from a 409, and the ``logs/v0`` entry it applies with.

Time is simulated: the cosigner's clock is a number the test advances, and the witness is either
a scripted HTTP peer (``httpx.MockTransport``: the remote side, not the part under test) or the
real witness app (``api.witness_app``) over an in-process transport. The request path is the
service's own: ``request_cosignatures(..., max_attempts=1)``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import httpx
import pytest
from starlette.testclient import TestClient

from api.witness_app import WitnessSettings, create_witness_app
from ledger.errors import MalformedError
from ledger.server.logview import LogView
from ledger.server.sequencer import Sequencer
from ledger.tlog.checkpoint import Checkpoint, CosignatureSigner, verify_cosignatures
from ledger.tlog.note import ALG_MLDSA44, NoteSignature, VerifierKey
from ledger.witness.client import parse_retry_after, request_cosignatures
from ledger.witness.cosigner import (
    Cosigner,
    Pacing,
    WitnessEndpoint,
    WitnessPacer,
    group_endpoints,
)
from ledger.witness.loglist import LOG_LIST_HEADER, log_list_entry, parse_log_list
from ledger.witness.witness import SIZE_CONTENT_TYPE
from tests.livelog import amnesty
from tests.support import OpaquePolicy, create_log, make_signer

DAY = 86_400
STEP = 20.0
"""Simulated seconds between cosigning rounds (the service polls every 0.5 s; any step shorter
than the interval tests the pacing)."""

W_ED = CosignatureSigner.generate("witness.example/citizen")
W_PQ = CosignatureSigner.generate("witness.example/citizen", ALG_MLDSA44)


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Log:
    def __init__(self, folder: Path) -> None:
        self.signer = make_signer()
        self.store = create_log(f"sqlite:///{folder / 'log.db'}", self.signer)
        self.policy = OpaquePolicy()
        self.sequencer = Sequencer(self.store, self.signer, self.policy)
        self.view = LogView(self.store)
        self.count = 0

    def grow(self, entries: int = 1) -> None:
        self.sequencer.sequence_now(
            [self.policy.prepare(f"entry {self.count + i}".encode()) for i in range(entries)]
        )
        self.count += entries


def _cosigner(
    log: Log, http: httpx.Client, clock: SimulatedClock, keys: Sequence[VerifierKey]
) -> Cosigner:
    def request(
        url: str,
        witness_keys: tuple[VerifierKey, ...],
        note: bytes,
        old: int,
        proof: Sequence[bytes],
        prove: Callable[[int], list[bytes]],
    ) -> Sequence[NoteSignature]:
        return request_cosignatures(
            url, witness_keys, note, old, proof, prove=prove, client=http, max_attempts=1,
            clock=clock,
        )  # fmt: skip

    endpoint = WitnessEndpoint("http://witness.test", tuple(keys))
    return Cosigner(log.view, [endpoint], request, clock=clock, rng=random.Random(7))


def _run(cosigner: Cosigner, clock: SimulatedClock, seconds: float) -> None:
    end = clock.now + seconds
    while clock.now < end:
        cosigner.cosign_latest()
        clock.now += STEP


def _assert_paced(times: list[float], pacing: Pacing) -> None:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= pacing.min_interval_s for gap in gaps), min(gaps)
    for i, start in enumerate(times):  # every 24-hour window
        assert sum(1 for t in times[i:] if t < start + DAY) <= pacing.qpd


FAILING = {
    "500": lambda request: httpx.Response(500, text="down"),
    "503 Retry-After 120": lambda request: httpx.Response(
        503, text="busy", headers={"Retry-After": "120"}
    ),
    "429 Retry-After 900": lambda request: httpx.Response(
        429, text="slow down", headers={"Retry-After": "900"}
    ),
    "404": lambda request: httpx.Response(404, text="unknown log"),
    # A witness that claims a larger tree than the log has ever had.
    "409 ahead": lambda request: httpx.Response(
        409, content=b"1000000\n", headers={"Content-Type": SIZE_CONTENT_TYPE}
    ),
    # A witness that answers 409 with the very size it was sent (malformed).
    "409 same size": lambda request: httpx.Response(
        409, content=b"0\n", headers={"Content-Type": SIZE_CONTENT_TYPE}
    ),
    "unreachable": None,
}


@pytest.mark.parametrize("behaviour", list(FAILING))
def test_a_failing_witness_gets_no_more_than_the_declared_qpd(
    tmp_path: Path, behaviour: str
) -> None:
    log = Log(tmp_path)
    log.grow()
    clock = SimulatedClock()
    times: list[float] = []
    scripted = FAILING[behaviour]

    def answer(request: httpx.Request) -> httpx.Response:
        times.append(clock.now)
        if scripted is None:
            raise httpx.ConnectError("connection refused", request=request)
        return scripted(request)

    cosigner = _cosigner(
        log, httpx.Client(transport=httpx.MockTransport(answer)), clock, [W_ED.verifier_key]
    )
    _run(cosigner, clock, DAY)
    pacing = cosigner.pacing
    _assert_paced(times, pacing)
    assert times, "the witness was never asked"
    # Failures back off: far fewer than the qpd (doubling up to an hour, with jitter).
    assert len(times) < 60
    if behaviour.startswith("429"):
        assert min(b - a for a, b in itertools.pairwise(times)) >= 900
    if behaviour == "404":
        assert all(b - a >= 3_600 for a, b in itertools.pairwise(times))
    assert cosigner.failures


def test_a_healthy_witness_of_a_busy_log_is_asked_once_per_interval(tmp_path: Path) -> None:
    log = Log(tmp_path)
    clock = SimulatedClock()
    times: list[float] = []
    witnessed: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        times.append(clock.now)
        text = request.content.decode()
        note_text = text.split("\n\n", 1)[1].rsplit("\n\n", 1)[0] + "\n"
        checkpoint = Checkpoint.parse(note_text)
        witnessed.append(checkpoint.size)
        line = W_ED.cosign(checkpoint, int(clock.now))
        return httpx.Response(200, text=line.line())

    cosigner = _cosigner(
        log, httpx.Client(transport=httpx.MockTransport(answer)), clock, [W_ED.verifier_key]
    )
    end = clock.now + 7_200
    while clock.now < end:
        log.grow()  # a new checkpoint every round
        cosigner.cosign_latest()
        clock.now += STEP
    _assert_paced(times, cosigner.pacing)
    assert len(times) == 7_200 / cosigner.pacing.min_interval_s
    assert witnessed == sorted(witnessed) and not cosigner.failures


def test_backoff_has_jitter_and_a_ceiling() -> None:
    pacing = Pacing()
    delays = []
    for seed in range(20):
        pacer = WitnessPacer(pacing, random.Random(seed))
        delays.append([pacer.failed(0.0) for _ in range(12)])
    assert all(min(row) >= pacing.min_interval_s for row in delays)
    assert all(max(row) <= pacing.max_backoff_s for row in delays)
    assert len({row[5] for row in delays}) > 10  # jittered, not in lockstep
    assert Pacing(min_interval_s=60).qpd == 1_440 and Pacing(min_interval_s=7).qpd == 12_343
    with pytest.raises(MalformedError):
        Pacing(min_interval_s=7_200, max_backoff_s=3_600)


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    assert parse_retry_after("120", 0.0) == 120.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:02:00 GMT", 60.0) == 60.0
    assert parse_retry_after("999999999", 0.0) == 86_400.0
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after(None, 0.0) is None


def _witness_settings(tmp_path: Path, log_vkey: str) -> WitnessSettings:
    key = tmp_path / "witness.key"
    key.write_text(W_ED.private_key_text() + "\n" + W_PQ.private_key_text() + "\n")
    return WitnessSettings(
        key_path=key,
        state_path=tmp_path / "witness-state.json",
        log_vkeys=(log_vkey,),
        create_state=True,
    )


def test_the_log_resyncs_after_its_restart_and_gets_both_witness_lines(tmp_path: Path) -> None:
    """A real witness (both key types) cosigns; a restarted cosigner (knowing nothing) learns
    the witness's size from its 409 and, one interval later, proves consistency from it."""
    log = Log(tmp_path)
    log.grow(5)
    clock = SimulatedClock()
    keys = [W_ED.verifier_key, W_PQ.verifier_key]
    with TestClient(
        create_witness_app(_witness_settings(tmp_path, log.signer.vkey)),
        base_url="http://witness.test",
    ) as http:
        first = _cosigner(log, cast(httpx.Client, http), clock, keys)
        assert first.cosign_latest() == 1
        served = log.view.witnessed(log.view.latest())
        assert verify_cosignatures(served, keys).keys() == set(keys)
        log.grow(3)
        restarted = _cosigner(log, cast(httpx.Client, http), clock, keys)
        assert restarted.cosign_latest() == 0  # 409: the witness holds size 5
        assert restarted.known[W_ED.verifier_key.vkey()] == 5
        clock.now += 30
        assert restarted.cosign_latest() == 0  # not due yet: no request
        clock.now += 30
        assert restarted.cosign_latest() == 1  # from 5, with a consistency proof
    served = log.view.witnessed(log.view.latest())
    assert set(verify_cosignatures(served, keys)) == set(keys)


def test_a_policy_listing_both_witness_keys_at_one_url_makes_one_endpoint() -> None:
    url = "http://witness.test/"
    (endpoint,) = group_endpoints([(url, W_ED.verifier_key), (url, W_PQ.verifier_key)])
    assert endpoint.keys == (W_ED.verifier_key, W_PQ.verifier_key)
    assert endpoint.url == "http://witness.test"


def test_the_log_list_entry_is_valid_logs_v0(tmp_path: Path) -> None:
    signer = make_signer()
    entry = log_list_entry(signer.verifier_key, Pacing().qpd, "ops@example.org")
    assert entry.text() == (
        f"vkey {signer.vkey}\norigin {signer.name}\nqpd 1440\ncontact ops@example.org\n"
    )
    listed = parse_log_list(f"# list\n{LOG_LIST_HEADER}\n\n{entry.text()}\n{entry.text()}")
    assert listed == [entry, entry]
    with pytest.raises(MalformedError, match="Ed25519"):
        log_list_entry(W_PQ.verifier_key, 1, "x")
    with pytest.raises(MalformedError, match="contact"):
        log_list_entry(signer.verifier_key, 1, "a\nb")
    for broken in (
        f"{entry.text()}",  # no header
        f"{LOG_LIST_HEADER}\nqpd 1\n",
        f"{LOG_LIST_HEADER}\nvkey {signer.vkey}\nqpd 0\ncontact x\n",
        f"{LOG_LIST_HEADER}\nvkey {signer.vkey}\nqpd 10\n",
        f"{LOG_LIST_HEADER}\nvkey {signer.vkey}\ncontact x\n",
    ):
        with pytest.raises(MalformedError):
            parse_log_list(broken)
    printed = amnesty(
        "witness", "log-list-entry", "--vkey", signer.vkey, "--contact", "ops@example.org",
        "--min-interval", "30",
    ).stdout  # fmt: skip
    assert parse_log_list(f"{LOG_LIST_HEADER}\n{printed}")[0].qpd == 2_880
