"""The public page in a real Chromium, against a real uvicorn server: it verifies what it shows.

The page must end at ``data-verification="verified"`` on the honest server, with no console or
page error and every commitment shown by the name and text the signed offer gives it; and at
``failed`` — showing nothing from the log — through a lying proxy (an edited entry, edited JSON,
a corrupted or forged checkpoint signature, a dropped entry, an edited proof), or when the
server shows a second history under the same key after a first visit (with both signed
checkpoints offered as evidence). On a hybrid log (Ed25519 and ML-DSA-44) the page verifies the
ML-DSA-44 line under its key policy: a changed or missing line fails the policy ``both``, a
swapped ML-DSA-44 key after a first visit is refused, and a log that added its key by a
``log_key`` entry still verifies the checkpoints from before it (tests/test_page_log_key.py: the
page checks that entry, anchoring the key its source states). The proxy is Chromium's own request interception
(``page.route``): the page gets the server's real answer, edited.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nacl.bindings
import pytest
from playwright.sync_api import Browser, BrowserContext, Route

from ledger.errors import LedgerError
from ledger.protocol.quoting import quote
from ledger.protocol.statements import STATEMENT_TYPES
from ledger.protocol.terms import default_offer
from ledger.server.admission import StatementPolicy
from ledger.server.sequencer import Receipt, Sequencer
from ledger.statements.statement import new_statement, sign_statement
from ledger.storage.base import LogIdentity
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    KeyPolicy,
    LogKey,
    LogKeys,
    LogSigners,
    open_checkpoint,
    sign_checkpoint,
)
from ledger.tlog.merkle import EMPTY_ROOT
from ledger.tlog.note import (
    ALG_MLDSA44,
    Signer,
    format_note,
    key_id,
    parse_note,
    sign_note,
    verify_note,
)
from ledger.tlog.statement_mldsa import StatementMLDSA44Signer
from tests.api_support import TestLog, live_server, make_log
from tests.browser_support import RouteHandler, chromium, dom_tree, edit_response, nodes, visit
from tests.merkle_reference import ReferenceTree, ref_leaf_hash
from tests.support import ORIGIN, body_members, make_signer

FIRST_NAME = "<img src=x onerror=alert(1)>"


@dataclass
class Served:
    log: TestLog
    base: str


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (its own localStorage)."""
    fresh = browser.new_context()
    try:
        yield fresh
    finally:
        fresh.close()


def demo_log(folder: Path, name: str = FIRST_NAME) -> TestLog:
    """A log of 4 entries: keyset, offer, an application by ``name``, its grant."""
    folder.mkdir(parents=True, exist_ok=True)
    log = make_log(folder)
    ai = Signer.from_seed("first.ai.example", b"1" * 32)
    log.append("first", log.application(ai, name))
    log.append("grant", log.decision("first"))
    return log


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = demo_log(tmp_path_factory.mktemp("page"))
    with live_server(log.settings()) as base:
        yield Served(log, base)


def test_a_missing_browser_fails_the_tests_instead_of_skipping_them(tmp_path: Path) -> None:
    with (
        pytest.raises(pytest.fail.Exception, match="couldn't find Chromium"),
        chromium(tmp_path / "no-chromium"),
    ):
        pass


def test_the_honest_page_verifies_what_it_shows(context: BrowserContext, served: Served) -> None:
    shown = visit(context, served.base + "/")
    assert shown.state == "verified", shown.sentence
    assert shown.sentence.startswith("Verified in this browser: the checkpoint of 4 entries")
    assert "the 4 entries shown are proven included" in shown.sentence
    assert "its own claim" in shown.sentence  # no key pinned: the server's key, said to be so
    assert "verdicts are this server's audit" in shown.sentence
    assert shown.console_errors == [] and shown.page_errors == [], shown
    assert shown.failed_requests == []  # the favicon included
    page = shown.page
    # The offer's commitments by their own names and texts, each with a verdict.
    for commitment in default_offer()["terms"]["commitments"]:
        item = page.locator(f"#commitment-{commitment['id']}")
        words = commitment["id"].replace("_", " ")
        assert item.locator("h3").inner_text().endswith(words[0].upper() + words[1:])
        assert item.locator("bdi.quote").inner_text() == quote(commitment["text"])
        assert item.locator(".badge").inner_text() == "honoured"
    verdict = page.locator("#verdict").inner_text()
    assert verdict == "This server's audit at 4 entries: no commitment broken."
    assert "No offer is in force" not in page.inner_text("body")
    assert page.locator("#offer h3 bdi.quote").inner_text() == quote("Model Amnesty offer")
    offer = page.locator("#offer").text_content() or ""
    assert "Signed by 3 of the 5 members of the body's keyset at entry 0 (3 must sign)" in offer
    assert "Eligibility criteria" in offer and "Found in the wild, quoted from the offer" in offer
    # The first applicant: its name from the signed application, as a quotation, never markup.
    first = page.locator("#subject-2")
    assert set(first.locator("bdi.quote").all_inner_texts()) == {quote(FIRST_NAME)}
    steps = first.locator("ol.timeline > li").all_inner_texts()
    assert [step.split(",")[0] for step in steps] == ["Entry 2", "Entry 3"]
    assert steps[1].endswith("a decision. Decides the application at entry 2: grant.")
    assert page.locator("img").count() == 0
    treatment = first.locator(".treatment")
    assert treatment.locator("bdi").count() == 0
    assert treatment.inner_text().startswith("Application granted at entry 3 on ")
    assert treatment.inner_text().endswith("Standing now (this server's word): granted.")
    judged = first.locator("ul.timeline > li").all_inner_texts()
    assert len(judged) == 1 and judged[0].startswith("honoured Decision within promised time, ")
    assert "within the 90-day deadline" in judged[0]
    assert not re.search(r"\d{4}-\d\d-\d\dT", judged[0])  # dates, not ISO timestamps
    assert page.locator("#recent > li").count() == 4
    assert page.locator("#entry-1 h3").inner_text() == "Entry 1: the offer"
    assert page.locator("#vkey").inner_text() == served.log.log_signer.vkey


@pytest.mark.parametrize("log", ["served", "hybrid"])
def test_the_verdicts_are_near_the_top_and_nothing_overflows_at_390_px(
    context: BrowserContext, request: pytest.FixtureRequest, log: str
) -> None:
    """At 390 px, on an Ed25519 log and on a hybrid one (whose ML-DSA-44 vkey, about 1,780
    characters, is shown in full)."""
    served: Served = request.getfixturevalue(log)
    shown = visit(context, served.base + "/", width=390)
    assert shown.state == "verified", shown.sentence
    page = shown.page
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    verification = page.locator("#verification").bounding_box()
    verdict = page.locator("#verdict").bounding_box()
    assert verification is not None and verification["y"] < 600
    assert verdict is not None and verdict["y"] < 1200, verdict
    wide = page.evaluate(
        "Array.from(document.querySelectorAll('body *'))"
        ".filter((e) => e.getBoundingClientRect().right > 391).map((e) => e.tagName + '#' + e.id)"
    )
    assert wide == []


def test_a_log_without_an_offer_says_so(context: BrowserContext, tmp_path: Path) -> None:
    log = make_log(tmp_path, offer=False)
    with live_server(log.settings()) as base:
        shown = visit(context, base + "/")
    assert shown.state == "verified", shown.sentence
    assert shown.page_errors == [] and shown.console_errors == []
    assert shown.page.locator("#offer-section").is_hidden()
    assert "No AI has applied yet." in shown.page.inner_text("#first-applicant")
    assert shown.page.locator("#recent > li").count() == 1


def test_a_permalink_shows_its_entry_verified(context: BrowserContext, tmp_path: Path) -> None:
    """#entry-N names an entry beyond the 20 newest: the page verifies it too and shows it."""
    log = demo_log(tmp_path)
    for n in range(20):
        log.append(
            f"ai{n}",
            log.application(Signer.from_seed(f"ai{n}.example", bytes([n]) * 32), f"AI {n}"),
        )
    with live_server(log.settings()) as base:
        shown = visit(context, base + "/#entry-0")
        assert shown.state == "verified", shown.sentence
        assert "the checkpoint of 24 entries" in shown.sentence
        linked = shown.page.locator("#linked > li")
        assert linked.count() == 1
        assert linked.locator("h3").inner_text() == "Entry 0: the body's keyset"
        assert shown.page.locator("#recent > li").count() == 20
        assert shown.page.locator("#recent #entry-0").count() == 0
        following = shown.page.locator("#next-applicants-list > li")
        assert following.count() == 4
        assert following.first.locator("bdi.quote").inner_text() == quote("AI 0")
        assert following.first.locator(".treatment").inner_text() == (
            "Application open (this server's word)."
        )
        # Following a permalink to an entry not on the page verifies the page again, with it.
        shown.page.evaluate("location.hash = '#entry-1'")
        shown.page.wait_for_selector("#linked #entry-1", state="attached")
        assert shown.page.get_attribute("#verification", "data-verification") == "verified"


def test_a_log_across_entry_bundles_verifies(context: BrowserContext, tmp_path: Path) -> None:
    """300 entries: the offer is in the full bundle 000, the newest in the partial one
    001.p/44 (tlog-tiles paths), each proven against the signed tree."""
    log = demo_log(tmp_path)
    store = SqlLogStore(log.url)
    try:
        policy = StatementPolicy(ORIGIN)
        applications = [
            log.application(Signer.from_seed(f"ai{n}.example", n.to_bytes(32, "big")), f"AI {n}")
            for n in range(296)
        ]
        Sequencer(store, log.log_signer, policy).sequence_now(
            [policy.prepare(note) for note in applications]
        )
    finally:
        store.close()
    bundles: list[str] = []

    def record(route: Route) -> None:
        bundles.append(route.request.url)
        route.continue_()

    with live_server(log.settings()) as base:
        shown = visit(context, base + "/", {"**/tile/entries/**": record})
        assert shown.state == "verified", shown.sentence
        assert "the checkpoint of 300 entries" in shown.sentence
        assert sorted({url.removeprefix(base) for url in bundles}) == [
            "/tile/entries/000",
            "/tile/entries/001.p/44",
        ]
        assert shown.page.locator("#recent > li").first.get_attribute("id") == "entry-299"


def test_the_page_is_one_document_with_landmarks(context: BrowserContext, served: Served) -> None:
    page = visit(context, served.base + "/").page
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").count() == 1
    for landmark in ("header", "main", "footer"):
        assert page.locator(landmark).count() == 1
    assert page.locator("#verification-sentence").get_attribute("aria-live") == "polite"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the ledger"
    background = "getComputedStyle(document.body).backgroundColor"
    assert page.evaluate(background) == "rgb(255, 255, 255)"
    page.emulate_media(color_scheme="dark")
    assert page.evaluate(background) == "rgb(22, 23, 26)"


def _flip_signature(note: bytes) -> bytes:
    text, signature = note.decode().rsplit(" ", 1)
    raw = bytearray(base64.b64decode(signature))
    raw[10] ^= 1
    return f"{text} {base64.b64encode(bytes(raw)).decode()}\n".encode()


def _forged_checkpoint(note: bytes) -> bytes:
    """The real checkpoint's tree, signed by an impostor key under the log's name."""
    _origin, size, root = note.decode().split("\n")[:3]
    impostor = Signer.from_seed(ORIGIN, b"impostor".ljust(32, b"\0"))
    return sign_checkpoint(Checkpoint(ORIGIN, int(size), base64.b64decode(root)), impostor)


def _edit_json(path: list[str | int], value: object) -> RouteHandler:
    def edit(body: bytes) -> bytes:
        data = json.loads(body)
        target = data
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return json.dumps(data).encode()

    return edit_response(edit)


def _add_applicant(body: bytes) -> bytes:
    data = json.loads(body)
    data["applications"].append({**data["applications"][0], "index": 1, "subject_id": 1})
    return json.dumps(data).encode()


def _drop_last_entry(bundle: bytes) -> bytes:
    at, starts = 0, []
    while at < len(bundle):
        starts.append(at)
        at += 2 + int.from_bytes(bundle[at : at + 2], "big")
    return bundle[: starts[-1]]


def _edit_proof(body: bytes) -> bytes:
    data = json.loads(body)
    data["hashes"][0] = base64.b64encode(b"\x01" * 32).decode()
    return json.dumps(data).encode()


LIES: dict[str, tuple[str, RouteHandler, str]] = {
    "edited entry text": (
        "**/tile/entries/**",
        edit_response(lambda b: b.replace(b"onerror=alert(1)", b"onerror=alert(2)")),
        "couldn't prove entry 2 included in the signed tree of 4 entries",
    ),
    "edited offer JSON: another entry": (
        "**/v1/offers",
        _edit_json(["versions", 0, "index"], 2),
        "couldn't check the offer: the server says it is entry 2, which is not an offer",
    ),
    "edited offer JSON: another title": (
        "**/v1/offers",
        _edit_json(["versions", 0, "terms", "title"], "A kinder offer"),
        "couldn't check the offer: the server's JSON differs from the signed entry 1",
    ),
    "edited audit JSON: another first applicant": (
        "**/v1/precedent/summary",
        _edit_json(["first_applicant", "name"], "Someone else"),
        "couldn't check the first applicant: the server's JSON differs from the signed entry 2",
    ),
    "edited audit JSON: another outcome": (
        "**/v1/precedent/summary",
        _edit_json(["first_applicant", "application", "outcome"], "denied"),
        "couldn't check the first applicant's treatment: the server's JSON differs from the "
        "signed decision at entry 3",
    ),
    "edited subject JSON: another timeline": (
        "**/v1/subjects/**",
        _edit_json(["subject", "timeline", 1, "type"], "consent"),
        "couldn't check the first applicant's timeline: the server's JSON differs from the "
        "signed entry 3",
    ),
    "edited entries JSON: no keyset before the offer": (
        "**/v1/entries?type=keyset*",
        _edit_json(["entries", 0, "index"], 2),
        "couldn't check the offer's signers: the server names no keyset entry before entry 1",
    ),
    "edited applications JSON: an offer as an applicant": (
        "**/v1/precedent/applications*",
        edit_response(_add_applicant),
        "couldn't check the applicants: the server says entry 1 is an application, and it is not",
    ),
    "corrupted checkpoint signature": (
        "**/checkpoint",
        edit_response(_flip_signature),
        "couldn't verify a signed note: the signature of key",
    ),
    "forged checkpoint": (
        "**/checkpoint",
        edit_response(_forged_checkpoint),
        "couldn't verify the checkpoint: it has no signature by the pinned log key",
    ),
    "dropped entry": (
        "**/tile/entries/**",
        edit_response(_drop_last_entry),
        "couldn't read an entry bundle: it holds 3 entries, the signed tree needs 4",
    ),
    "edited inclusion proof": (
        "**/v1/proofs/inclusion*",
        edit_response(_edit_proof),
        "couldn't prove entry 0 included in the signed tree of 4 entries",
    ),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_through_a_lying_proxy_the_page_fails_and_shows_nothing_as_verified(
    context: BrowserContext, served: Served, lie: str
) -> None:
    pattern, handler, reason = LIES[lie]
    shown = visit(context, served.base + "/", {pattern: handler})
    assert shown.state == "failed", (lie, shown.sentence)
    assert shown.sentence.startswith(f"Verification failed: {reason}"), shown.sentence
    assert shown.sentence.startswith("Verification failed: couldn't ")
    page = shown.page
    assert page.locator("#content").is_hidden()
    body = page.inner_text("body")
    assert "Verified" not in body and "honoured" not in body
    for forged in ("alert(2)", "A kinder offer", "Someone else"):
        assert forged not in body
    assert shown.page_errors == []


def test_an_unknown_signature_line_on_the_checkpoint_is_ignored(
    context: BrowserContext, served: Served
) -> None:
    """C2SP signed-note: lines of keys the verifier does not pin (a witness, the log's
    post-quantum key, grease) are ignored, not refused."""
    grease = Signer.from_seed(ORIGIN, b"grease".ljust(32, b"\0"))

    def with_grease(note: bytes) -> bytes:
        _origin, size, root = note.decode().split("\n")[:3]
        tree = Checkpoint(ORIGIN, int(size), base64.b64decode(root))
        return sign_checkpoint(tree, served.log.log_signer, [grease])

    shown = visit(context, served.base + "/", {"**/checkpoint": edit_response(with_grease)})
    assert shown.state == "verified", shown.sentence
    assert "1 other signature line(s)" in shown.page.locator("#cosignatures").inner_text()


def test_an_mldsa_line_of_a_key_not_pinned_is_ignored(
    context: BrowserContext, served: Served
) -> None:
    """A checkpoint of an Ed25519-only log with an ML-DSA-44 line under the log's name: the page
    pins only the Ed25519 key the page states, so it ignores that line and counts it (the
    hybrid log's own line is checked in the tests further below)."""
    post_quantum = Signer(ORIGIN, b"post-quantum".ljust(32, b"\0"), alg=ALG_MLDSA44)

    def hybrid(note: bytes) -> bytes:
        _origin, size, root = note.decode().split("\n")[:3]
        tree = Checkpoint(ORIGIN, int(size), base64.b64decode(root))
        return sign_checkpoint(tree, served.log.log_signer, [post_quantum])

    shown = visit(context, served.base + "/", {"**/checkpoint": edit_response(hybrid)})
    assert shown.state == "verified", shown.sentence
    assert "1 other signature line(s)" in shown.page.locator("#cosignatures").inner_text()


def test_a_key_swapped_after_a_first_visit_is_refused(
    context: BrowserContext, served: Served
) -> None:
    """Trust on first use: the key the page stated on a verified visit stays pinned, so a
    proxy that swaps the key in the page (and signs its own checkpoints) is caught."""
    first = visit(context, served.base + "/")
    assert first.state == "verified", first.sentence
    impostor = Signer.from_seed(ORIGIN, b"impostor".ljust(32, b"\0")).vkey
    swap = edit_response(
        lambda page: page.replace(served.log.log_signer.vkey.encode(), impostor.encode())
    )
    shown = visit(context, served.base + "/", {served.base + "/": swap})
    assert shown.state == "failed"
    key_id_hex = served.log.log_signer.vkey.split("+")[1]
    assert shown.sentence.startswith(
        "Verification failed: couldn't trust the log key: the page now states another key than "
        f"the one this browser verified the log with before (key ID {key_id_hex})"
    )


def test_a_pinned_key_is_the_one_checked(context: BrowserContext, served: Served) -> None:
    page = visit(context, served.base + "/").page
    page.fill("#pin-input", served.log.log_signer.vkey)
    with page.expect_navigation():
        page.click("text=Pin this key")
    page.wait_for_selector("#verification[data-verification='verified']", state="attached")
    assert "signed by the log key you pinned" in page.inner_text("#verification-sentence")
    other = Signer.from_seed(ORIGIN, b"other".ljust(32, b"\0")).vkey
    page.fill("#pin-input", other)
    with page.expect_navigation():
        page.click("text=Pin this key")
    page.wait_for_selector("#verification[data-verification='failed']", state="attached")
    assert "no signature by the pinned log key" in page.inner_text("#verification-sentence")


MERKLE_CHECKS = """async ({ cases }) => {
  const v = await import("/static/verify.js");
  const b = (text) => v.fromBase64(text, "a test hash");
  const outcome = async (check) => {
    try { await check(); return "ok"; } catch (error) { return error instanceof v.VerificationFailure ? "refused" : String(error); }
  };
  const results = [];
  for (const c of cases) {
    const leaf = await v.leafHash(v.utf8(c.leaf));
    results.push(c.kind === "inclusion"
      ? await outcome(() => v.verifyInclusion(c.index, c.size, leaf, c.proof.map(b), b(c.root)))
      : await outcome(() => v.verifyConsistency(c.size1, c.size2, b(c.root1), b(c.root2), c.proof.map(b))));
  }
  return results;
}"""


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


def _proof_mutants(proof: list[bytes], extra: bytes) -> list[list[str]]:
    """The proof with its first hash flipped, its last hash dropped, one hash added."""
    mutants = [_b64([*proof, extra])]
    if proof:
        mutants += [_b64([bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]), _b64(proof[:-1])]
    return mutants


def test_the_page_s_merkle_proofs_agree_with_the_reference_tree(
    context: BrowserContext, served: Served
) -> None:
    """verify.js's RFC 9162 checks, run in Chromium, against tests/merkle_reference.py on every
    size up to 20: each honest proof verifies; each with a hash flipped, dropped or added, or
    checked for another index, another first size or another root, is refused."""
    leaves = [f"leaf {i}" for i in range(20)]
    tree = ReferenceTree([ref_leaf_hash(leaf.encode()) for leaf in leaves])
    cases: list[tuple[dict[str, object], str]] = []
    for size in range(1, 21):
        root = _b64([tree.root(size)])[0]
        for index in range(size):
            proof = tree.path(index, size)
            case = {"kind": "inclusion", "index": index, "size": size, "leaf": leaves[index]}
            case |= {"root": root, "proof": _b64(proof)}
            cases.append((case, "ok"))
            cases += [
                ({**case, "proof": bad}, "refused") for bad in _proof_mutants(proof, b"x" * 32)
            ]
            cases.append(
                ({**case, "index": index + 1 if index + 1 < size else index - 1}, "refused")
            )
            cases.append(({**case, "root": _b64([tree.root(size)[::-1]])[0]}, "refused"))
        for size1 in range(1, size):
            proof = tree.proof(size1, size)
            case = {"kind": "consistency", "size1": size1, "size2": size, "leaf": ""}
            case |= {"root1": _b64([tree.root(size1)])[0], "root2": root, "proof": _b64(proof)}
            cases.append((case, "ok"))
            cases += [
                ({**case, "proof": bad}, "refused") for bad in _proof_mutants(proof, b"x" * 32)
            ]
            cases.append(({**case, "root1": _b64([tree.root(size1)[::-1]])[0]}, "refused"))
            cases.append(({**case, "root2": _b64([tree.root(size)[::-1]])[0]}, "refused"))
            other = size1 + 1 if size1 + 1 < size else size1 - 1
            if other > 0:
                cases.append(({**case, "size1": other}, "refused"))
    page = visit(context, served.base + "/").page
    results = page.evaluate(MERKLE_CHECKS, {"cases": [case for case, _ in cases]})
    wrong = [(case, got) for (case, want), got in zip(cases, results, strict=True) if got != want]
    assert not wrong, wrong[:5]


NOTE_CHECKS = """async ({ cases }) => {
  const v = await import("/static/verify.js");
  const results = [];
  for (const c of cases) {
    try {
      const keys = [];
      for (const vkey of c.known) keys.push(await v.parseVkey(vkey));
      const { signed } = await v.verifiedSigners(c.note, keys);
      results.push(signed.size === 0 ? "refused" : keys.filter((k) => signed.has(k)).map((k) => k.vkey).sort().join(","));
    } catch (error) {
      results.push(error instanceof v.VerificationFailure ? "refused" : String(error));
    }
  }
  return results;
}"""


def _tamper_line(note: bytes, line: int) -> bytes:
    """Flip a bit of the signature on signature line ``line`` (0 is the first)."""
    text, _, block = note.decode().rpartition("\n\n")
    lines = block.split("\n")
    name, signature = lines[line].rsplit(" ", 1)
    raw = bytearray(base64.b64decode(signature))
    raw[-1] ^= 1
    lines[line] = f"{name} {base64.b64encode(bytes(raw)).decode()}"
    return (text + "\n\n" + "\n".join(lines)).encode()


def test_the_page_s_signed_notes_agree_with_the_ledger_s(
    context: BrowserContext, served: Served
) -> None:
    """verify.js's signed-note check against ledger.tlog.note.verify_note on the cases the
    C2SP spec names: a known signer, an unknown one beside it (ignored), a known line that does
    not verify (the note is refused), no known signer (refused), a malformed note."""
    alice = Signer.from_seed("alice.example/key", bytes(range(32)))
    bob = Signer.from_seed("bob.example/key", bytes(range(1, 33)))
    twin = Signer.from_seed("alice.example/key", bytes(range(2, 34)))  # same name, another key
    text = "A statement\nof two lines\n"
    notes = {
        "alice": sign_note(text, [alice]),
        "alice and bob": sign_note(text, [alice, bob]),
        "bob and alice": sign_note(text, [bob, alice]),
        "alice's twin and alice": sign_note(text, [twin, alice]),
        "alice tampered": _tamper_line(sign_note(text, [alice, bob]), 0),
        "bob tampered": _tamper_line(sign_note(text, [alice, bob]), 1),
        "no blank line": sign_note(text, [alice]).replace(b"\n\n", b"\n"),
        "another text": sign_note(text, [alice]).replace(b"two lines", b"two lies!"),
    }
    cases = []
    expected = []
    for note in notes.values():
        for known in ([alice], [alice, bob], [bob], [twin]):
            cases.append({"note": note.decode(), "known": [k.vkey for k in known]})
            try:
                keys = verify_note(parse_note(note), [k.verifier_key for k in known])
            except LedgerError:
                expected.append("refused")
            else:
                expected.append(",".join(sorted(k.vkey() for k in keys)))
    page = visit(context, served.base + "/").page
    results = page.evaluate(NOTE_CHECKS, {"cases": cases})
    assert results == expected
    assert expected.count("refused") not in (0, len(expected))


FIELD_P = 2**255 - 19
SMALL_ORDER_Y = (
    "00" * 32,
    "01" + "00" * 31,
    "ec" + "ff" * 30 + "7f",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
)
"""The y of every Ed25519 point of small order (the x sign bit is the parameter ``sign``)."""
NON_CANONICAL_Y = tuple(y.to_bytes(32, "little").hex() for y in (FIELD_P, FIELD_P + 1, 2**255 - 1))


def _vkey(public: bytes) -> str:
    encoded = base64.b64encode(bytes([1]) + public).decode()
    return f"{ORIGIN}+{key_id(ORIGIN, 1, public).hex()}+{encoded}"


PARSE_VKEY = """async (vkey) => {
  const v = await import("/static/verify.js");
  try { await v.parseVkey(vkey); return "accepted"; } catch (error) { return error.message; }
}"""


def test_a_small_order_or_non_canonical_key_is_never_pinned(
    context: BrowserContext, served: Served
) -> None:
    """A small-order key verifies a forged signature (R = identity, S = 0) on any message; the
    page refuses to check anything against one (or a non-canonical encoding), as libsodium
    refuses it: pinned in the page, and through verify.js for every such encoding."""
    keys = []
    for encoding in SMALL_ORDER_Y + NON_CANONICAL_Y:
        for sign in (0, 0x80):
            public = bytearray(bytes.fromhex(encoding))
            public[31] |= sign
            assert not nacl.bindings.crypto_core_ed25519_is_valid_point(bytes(public))
            keys.append(_vkey(bytes(public)))
    page = context.new_page()
    page.goto(served.base + "/")
    answers = [page.evaluate(PARSE_VKEY, vkey) for vkey in keys]
    refusal = "couldn't read the verifier key: its point is non-canonical or of small order"
    assert answers == [refusal] * len(keys)
    assert page.evaluate(PARSE_VKEY, served.log.log_signer.vkey) == "accepted"
    page.evaluate("(vkey) => localStorage.setItem('amnesty-ledger.pinned-vkey', vkey)", keys[0])
    shown = visit(context, served.base + "/")
    assert shown.state == "failed"
    assert refusal in shown.sentence


def test_a_second_visit_checks_consistency_with_the_first(
    context: BrowserContext, tmp_path: Path
) -> None:
    log = demo_log(tmp_path)
    with live_server(log.settings()) as base:
        first = visit(context, base + "/")
        assert first.state == "verified" and "first visit from this browser" in first.sentence
        log.append("second", log.application(Signer.from_seed("b.ai", b"2" * 32), "Second"))
        again = visit(context, base + "/")
        assert again.state == "verified", again.sentence
        assert "the checkpoint of 5 entries" in again.sentence
        assert "consistent with the checkpoint of 4 entries this browser verified" in again.sentence
        # The log grows between the page's read of /checkpoint and of the JSON answers: the
        # answers' larger checkpoint, signed and proven consistent, is the one verified.
        earlier_note = httpx.get(base + "/checkpoint").content
        log.append("third", log.application(Signer.from_seed("c.ai", b"3" * 32), "Third"))

        def earlier(route: Route) -> None:
            route.fulfill(status=200, body=earlier_note, content_type="text/plain")

        grown = visit(context, base + "/", {"**/checkpoint": earlier})
        assert grown.state == "verified", grown.sentence
        assert "the checkpoint of 6 entries" in grown.sentence
        # A server that fails to prove consistency fails the page, without being called a fork.
        log.append("fourth", log.application(Signer.from_seed("d.ai", b"4" * 32), "Fourth"))

        def unavailable(route: Route) -> None:
            route.fulfill(status=503, body=b"{}", content_type="application/json")

        down = visit(context, base + "/", {"**/v1/proofs/consistency*": unavailable})
        assert down.state == "failed"
        assert "couldn't fetch /v1/proofs/consistency?from=6&to=7: HTTP 503" in down.sentence
        assert down.page.locator("#fork").is_hidden()


def test_a_second_history_under_the_same_key_fails_with_evidence(
    context: BrowserContext, tmp_path: Path
) -> None:
    seen = demo_log(tmp_path / "seen")
    other = demo_log(tmp_path / "other", name="Another history")
    other.append("more", other.application(Signer.from_seed("b.ai", b"2" * 32), "More"))
    assert seen.log_signer.vkey == other.log_signer.vkey
    with live_server(seen.settings()) as base, live_server(other.settings()) as fork:
        first = visit(context, base + "/")
        assert first.state == "verified", first.sentence
        seen_note = httpx.get(base + "/checkpoint").content

        def to_the_fork(route: Route) -> None:
            route.fulfill(response=route.fetch(url=route.request.url.replace(base, fork)))

        shown = visit(context, base + "/", {f"{base}/**": to_the_fork})
    assert shown.state == "failed", shown.sentence
    assert re.search(
        r"couldn't prove the tree of 4 entries a prefix of the tree of 5", shown.sentence
    )
    page = shown.page
    assert page.locator("#fork").is_visible()
    assert page.locator("#content").is_hidden()
    links = page.locator("#fork a")
    assert links.count() == 2
    with page.expect_download() as download:
        links.first.click()
    assert Path(download.value.path()).read_bytes() == seen_note


def test_the_dom_holds_log_text_only_in_quotations(context: BrowserContext, served: Served) -> None:
    """Every <bdi> is a quotation of the log (a JSON literal, quote() of its value); no other
    node holds the applicant's name."""
    tree = dom_tree(visit(context, served.base + "/").page)
    quoted = []
    for node in nodes(tree):
        if node["tag"] == "bdi":
            assert node["cls"] == "quote" and not node["insideBdi"], node
            value = json.loads(node["text"])
            assert quote(value) == node["text"]
            quoted.append(value)
        elif node["tag"] == "#text" and not node["insideBdi"]:
            assert "onerror" not in node["text"], node
    assert FIRST_NAME in quoted


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_or_critical_violation(
    browser: Browser, served: Served, width: int, scheme: str
) -> None:
    """axe-core (the copy axe-playwright-python bundles), on the verified page, at both widths
    and in both colour schemes: no violation of impact serious or critical."""
    from axe_playwright_python.sync_playwright import Axe

    fresh = browser.new_context(bypass_csp=True)  # so axe's script can be evaluated
    try:
        seen = visit(fresh, served.base + "/", width=width)
        assert seen.state == "verified", seen.sentence
        seen.page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        results = Axe().run(seen.page)
        violations = results.response["violations"]
        grave = [
            f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in violations
            if v["impact"] in ("serious", "critical")
        ]
        assert grave == [], grave
        assert results.response["testEngine"]["name"] == "axe-core"
    finally:
        fresh.close()


def test_the_axe_check_finds_a_planted_violation(browser: Browser) -> None:
    """The check above is not vacuous: axe in this browser names an image without text."""
    from axe_playwright_python.sync_playwright import Axe

    page = browser.new_page()
    try:
        page.set_content('<html lang="en"><title>t</title><main><img src="x.png"></main></html>')
        found = {v["id"]: v["impact"] for v in Axe().run(page).response["violations"]}
        assert found.get("image-alt") == "critical", found
    finally:
        page.close()


def test_an_open_commitment_shows_its_next_deadline(
    context: BrowserContext, tmp_path: Path
) -> None:
    """An application awaiting its decision: the open commitment shows the deadline /v1/due
    gives, labelled as the server's audit, linked to the application's entry."""
    log = make_log(tmp_path)
    ai = Signer.from_seed("waiting.ai.example", b"w" * 32)
    index, _ = log.append("waiting", log.application(ai, "Waiting"))
    with live_server(log.settings()) as base:
        due = httpx.get(base + "/v1/due").json()["due"]
        seen = visit(context, base + "/")
        assert seen.state == "verified", seen.sentence
        item = seen.page.locator("#commitment-decision_within_promised_time")
        assert item.locator(".badge").inner_text() == "open"
        deadline = item.locator(".deadline").inner_text()
    (clock,) = [c for c in due["clocks"] if c["commitment"] == "decision_within_promised_time"]
    assert deadline == (
        f"Next deadline, in this server's audit: {clock['deadline']}, for entry {index}"
    )
    assert clock["about_index"] == index


_NO_WEBCRYPTO_ED25519 = """
const importKey = crypto.subtle.importKey.bind(crypto.subtle);
crypto.subtle.importKey = (format, data, algorithm, ...rest) =>
  (algorithm === "Ed25519" || algorithm?.name === "Ed25519")
    ? Promise.reject(new DOMException("no Ed25519 here", "NotSupportedError"))
    : importKey(format, data, algorithm, ...rest);
"""


@pytest.mark.parametrize("lie", [None, "corrupted checkpoint signature", "forged checkpoint"])
def test_without_webcrypto_ed25519_the_vendored_library_verifies(
    browser: Browser, served: Served, lie: str | None
) -> None:
    """A browser whose WebCrypto lacks Ed25519 verifies with the vendored @noble/ed25519: the
    honest page ends verified, and a bad or forged checkpoint signature still fails."""
    fresh = browser.new_context()
    fresh.add_init_script(_NO_WEBCRYPTO_ED25519)
    try:
        routes = None if lie is None else {LIES[lie][0]: LIES[lie][1]}
        seen = visit(fresh, served.base + "/", routes)
        if lie is None:
            assert seen.state == "verified", seen.sentence
            assert seen.page_errors == [] and seen.console_errors == []
            assert seen.page.evaluate(
                "performance.getEntriesByType('resource').some(r => r.name.endsWith('/static/noble-ed25519.js'))"
            )
        else:
            assert seen.state == "failed", seen.sentence
            assert seen.sentence.startswith(f"Verification failed: {LIES[lie][2]}")
    finally:
        fresh.close()


# -- a hybrid log: the ML-DSA-44 line under the page's key policy ---------------------------------

LOG_MLDSA44 = Signer(ORIGIN, b"log ml-dsa-44".ljust(32, b"\0"), alg=ALG_MLDSA44)
OTHER_MLDSA44 = Signer(ORIGIN, b"another ml-dsa-44".ljust(32, b"\0"), alg=ALG_MLDSA44)
MLDSA_LINE_BYTES = 4 + 8 + 2420


@dataclass
class HybridLog(TestLog):
    """A log created with an ML-DSA-44 key beside its Ed25519 one: every checkpoint carries both
    lines (the Ed25519 one first)."""

    __test__ = False

    mldsa_signer: Signer = LOG_MLDSA44

    def append(self, label: str, note: bytes) -> tuple[int, bytes]:
        store = SqlLogStore(self.url)
        try:
            policy = StatementPolicy(ORIGIN)
            sequencer = Sequencer(store, self.log_signer, policy, extra_signers=[self.mldsa_signer])
            (result,) = sequencer.sequence_now([policy.prepare(note)])
        finally:
            store.close()
        assert isinstance(result, Receipt), result
        self.entries[label] = (result.index, result.entry)
        return result.index, result.entry


def hybrid_demo_log(folder: Path) -> HybridLog:
    """:func:`demo_log`'s 4 entries, in a log created hybrid."""
    folder.mkdir(parents=True, exist_ok=True)
    signers = LogSigners(make_signer(), LOG_MLDSA44)
    key_path = folder / "log.key"
    key_path.write_text(signers.text())
    url = f"sqlite:///{folder / 'log.db'}"
    store = SqlLogStore(url, create=True)
    try:
        store.create_log(
            LogIdentity(
                origin=ORIGIN,
                log_vkey=signers.ed25519.vkey,
                created_ms=int(time.time() * 1000),
                key_path=None,
                mldsa_vkey=LOG_MLDSA44.vkey,
            ),
            signers.sign(Checkpoint(ORIGIN, 0, EMPTY_ROOT)),
        )
    finally:
        store.close()
    members = body_members()
    log = HybridLog(folder, url, signers.ed25519, key_path, members)
    log.append(
        "keyset",
        log.by_body("keyset", {"members": sorted(m.vkey for m in members), "threshold": 3}),
    )
    log.append("offer", log.by_body("offer", default_offer()))
    log.append("first", log.application(Signer.from_seed("first.ai.example", b"1" * 32), "First"))
    log.append("grant", log.decision("first"))
    return log


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = hybrid_demo_log(tmp_path_factory.mktemp("hybrid-page"))
    with live_server(log.settings()) as base:
        yield Served(log, base)


def _edit_signature_lines(note: bytes, edit: Callable[[list[str]], list[str]]) -> bytes:
    """``note`` with its signature lines passed through ``edit``."""
    text, _, block = note.decode().rpartition("\n\n")
    lines = edit(block.rstrip("\n").split("\n"))
    return (text + "\n\n" + "\n".join(lines) + "\n").encode()


def _is_mldsa_line(line: str) -> bool:
    return len(base64.b64decode(line.rsplit(" ", 1)[1])) == MLDSA_LINE_BYTES


def _flip_mldsa_signature(note: bytes) -> bytes:
    """One byte of the ML-DSA-44 signature changed (not of its key ID or timestamp)."""

    def flip(lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            if not _is_mldsa_line(line):
                out.append(line)
                continue
            name, blob = line.rsplit(" ", 1)
            raw = bytearray(base64.b64decode(blob))
            raw[4 + 8 + 1000] ^= 0x01
            out.append(f"{name} {base64.b64encode(bytes(raw)).decode()}")
        return out

    return _edit_signature_lines(note, flip)


def _strip_mldsa_line(note: bytes) -> bytes:
    return _edit_signature_lines(note, lambda lines: [x for x in lines if not _is_mldsa_line(x)])


def _strip_ed25519_line(note: bytes) -> bytes:
    return _edit_signature_lines(note, lambda lines: [x for x in lines if _is_mldsa_line(x)])


def _set_policy(context: BrowserContext, base: str, policy: str) -> None:
    page = context.new_page()
    page.goto(base + "/")
    page.evaluate("(p) => localStorage.setItem('amnesty-ledger.key-policy', p)", policy)
    page.close()


def test_a_hybrid_checkpoint_verifies_under_both_keys(
    context: BrowserContext, hybrid: Served
) -> None:
    """The honest hybrid log: the page pins both vkeys its source states, verifies the
    Ed25519 line and the ML-DSA-44 line (with the vendored bundle) and says so."""
    source = httpx.get(hybrid.base + "/").text
    vkeys = f"{hybrid.log.log_signer.vkey} {LOG_MLDSA44.vkey}"
    assert f'<meta name="amnesty-log-vkeys" content="{vkeys}">' in source
    assert '<meta name="amnesty-log-mldsa-key-entry" content="">' in source  # created hybrid
    shown = visit(context, hybrid.base + "/")
    assert shown.state == "verified", shown.sentence
    assert shown.sentence.startswith(
        "Verified in this browser: the checkpoint of 4 entries is signed by the log keys this "
        "server states (its own claim: compare them with ones published elsewhere) — verified: "
        "Ed25519 and ML-DSA-44 signatures of the log (key policy both); the 4 entries shown"
    ), shown.sentence
    assert shown.console_errors == [] and shown.page_errors == [] and shown.failed_requests == []
    # Created hybrid: no log_key entry anchors the ML-DSA-44 key, and the page says so.
    assert (
        "the log's ML-DSA-44 key is trusted on first use (the page's source names no log_key "
        "entry anchoring it, as for a log created with it); this is the first visit"
    ) in shown.sentence
    page = shown.page
    assert page.get_attribute("#verification", "data-mldsa44-key") == "first-use"
    assert page.get_attribute("#verification", "data-signatures") == "Ed25519 ML-DSA-44"
    assert page.inner_text("#vkey").split() == [hybrid.log.log_signer.vkey, LOG_MLDSA44.vkey]
    assert "Key policy (the default): both" in page.inner_text("#key-policy")
    assert "The checkpoint carries no signature but the log's." in page.inner_text("#cosignatures")
    assert page.evaluate(
        "performance.getEntriesByType('resource')"
        ".some(r => r.name.endsWith('/static/noble-post-quantum-mldsa44.js'))"
    )


@pytest.mark.parametrize("policy", ["both", "ed25519"])
def test_a_changed_mldsa_signature_fails_both_and_is_ignored_under_ed25519(
    context: BrowserContext, hybrid: Served, policy: str
) -> None:
    if policy != "both":
        _set_policy(context, hybrid.base, policy)
    lie = {"**/checkpoint": edit_response(_flip_mldsa_signature)}
    shown = visit(context, hybrid.base + "/", lie)
    if policy == "both":
        assert shown.state == "failed", shown.sentence
        assert shown.sentence.startswith(
            "Verification failed: couldn't verify the checkpoint: the ML-DSA-44 signature of key "
            f"{LOG_MLDSA44.vkey.split('+')[1]} does not verify."
        ), shown.sentence
        assert shown.page.locator("#content").is_hidden()
    else:
        assert shown.state == "verified", shown.sentence
        assert (
            "— verified: Ed25519 only (key policy ed25519: its ML-DSA-44 line is not checked)"
            in (shown.sentence)
        )
        assert "1 other signature line(s)" in shown.page.inner_text("#cosignatures")
        assert shown.page.get_attribute("#verification", "data-signatures") == "Ed25519"


def test_a_checkpoint_without_its_mldsa_line_fails_both(
    context: BrowserContext, hybrid: Served
) -> None:
    shown = visit(context, hybrid.base + "/", {"**/checkpoint": edit_response(_strip_mldsa_line)})
    assert shown.state == "failed", shown.sentence
    assert shown.sentence.startswith(
        "Verification failed: couldn't verify the checkpoint: it has no ML-DSA-44 signature by the "
        f"pinned log key {LOG_MLDSA44.vkey.split('+')[1]}, which key policy both requires."
    ), shown.sentence


def test_under_mldsa44_the_ed25519_line_may_be_missing(
    context: BrowserContext, hybrid: Served
) -> None:
    _set_policy(context, hybrid.base, "mldsa44")
    stripped = {"**/checkpoint": edit_response(_strip_ed25519_line)}
    shown = visit(context, hybrid.base + "/", stripped)
    assert shown.state == "verified", shown.sentence
    assert "— verified: ML-DSA-44 signature of the log (key policy mldsa44; it carries no " in (
        shown.sentence
    )
    flipped = {"**/checkpoint": edit_response(_flip_mldsa_signature)}
    assert visit(context, hybrid.base + "/", flipped).state == "failed"


def test_a_policy_that_needs_an_mldsa_key_fails_on_an_ed25519_log(
    context: BrowserContext, served: Served
) -> None:
    _set_policy(context, served.base, "both")
    shown = visit(context, served.base + "/")
    assert shown.state == "failed"
    assert shown.sentence.startswith(
        "Verification failed: couldn't apply key policy both: it requires an ML-DSA-44 key, and "
        "none is pinned (the key in the page's source)."
    ), shown.sentence


@pytest.mark.parametrize("change", ["swapped", "dropped"])
def test_an_mldsa_key_swapped_or_dropped_after_a_first_visit_is_refused(
    context: BrowserContext, hybrid: Served, change: str
) -> None:
    """Trust on first use covers the ML-DSA-44 key: a page that later states another one (a
    proxy signing its own ML-DSA-44 lines), or none (to fall back on Ed25519 alone), fails."""
    first = visit(context, hybrid.base + "/")
    assert first.state == "verified", first.sentence
    replacement = b" " + OTHER_MLDSA44.vkey.encode() if change == "swapped" else b""
    swap = edit_response(lambda page: page.replace(b" " + LOG_MLDSA44.vkey.encode(), replacement))
    shown = visit(context, hybrid.base + "/", {hybrid.base + "/": swap})
    assert shown.state == "failed", shown.sentence
    key_id_hex = LOG_MLDSA44.vkey.split("+")[1]
    if change == "swapped":
        assert shown.sentence.startswith(
            "Verification failed: couldn't trust the log's ML-DSA-44 key: the page now states "
            "another ML-DSA-44 key than the one it stated on an earlier visit this browser "
            f"verified (key ID {key_id_hex})"
        ), shown.sentence
    else:
        assert shown.sentence.startswith(
            "Verification failed: couldn't trust the log keys: the page now states no ML-DSA-44 "
            f"key, and it stated one on an earlier visit this browser verified (key ID {key_id_hex})"
        ), shown.sentence


def test_a_visitor_pins_both_keys_and_chooses_a_policy(
    context: BrowserContext, hybrid: Served
) -> None:
    """The pin field takes both vkeys, separated by a new line (as the demo's log.vkeys file
    has them); the policy chosen is kept beside them."""
    page = visit(context, hybrid.base + "/").page
    page.fill("#pin-input", f"{hybrid.log.log_signer.vkey}\n{LOG_MLDSA44.vkey}\n")
    with page.expect_navigation():
        page.click("text=Pin this key")
    page.wait_for_selector("#verification:not([data-verification='checking'])", state="attached")
    sentence = page.inner_text("#verification-sentence")
    assert page.get_attribute("#verification", "data-verification") == "verified", sentence
    assert "signed by the log keys you pinned — verified: Ed25519 and ML-DSA-44" in sentence
    assert "trusted on first use" not in sentence and "anchored" not in sentence
    assert page.get_attribute("#verification", "data-mldsa44-key") == "pinned"
    page.select_option("#policy-select", "ed25519")
    with page.expect_navigation():
        page.click("text=Use this policy")
    page.wait_for_selector("#verification:not([data-verification='checking'])", state="attached")
    sentence = page.inner_text("#verification-sentence")
    assert "signed by the log key you pinned — verified: Ed25519 only (key policy ed25519" in (
        sentence
    )
    assert page.input_value("#policy-select") == "ed25519"
    assert "Key policy you chose: ed25519" in page.inner_text("#key-policy")
    # A pinned ML-DSA-44 key that is not the log's: its line names another key ID, so under
    # the policy both the checkpoint has no line of the pinned key.
    page.select_option("#policy-select", "")
    with page.expect_navigation():
        page.click("text=Use this policy")
    page.fill("#pin-input", f"{hybrid.log.log_signer.vkey} {OTHER_MLDSA44.vkey}")
    with page.expect_navigation():
        page.click("text=Pin this key")
    page.wait_for_selector("#verification[data-verification='failed']", state="attached")
    assert "it has no ML-DSA-44 signature by the pinned log key" in page.inner_text(
        "#verification-sentence"
    )


def test_a_log_that_adds_its_mldsa_key_verifies_before_and_after(
    context: BrowserContext, tmp_path: Path
) -> None:
    """F7.4: a first visit to an Ed25519-only log; the log adds its ML-DSA-44 key by a
    ``log_key`` entry (index 4); the next visit pins both keys the page now states, requires
    both lines on the new checkpoint and still opens the earlier one (size 4, from before the
    key) to prove consistency with it."""
    log = demo_log(tmp_path)
    # The key file one key ahead of the log: checkpoints stay Ed25519-only until the statement.
    log.key_path.write_text(LogSigners(log.log_signer, LOG_MLDSA44).text())
    with live_server(log.settings()) as base:
        first = visit(context, base + "/")
        assert first.state == "verified", first.sentence
        assert "(no ML-DSA-44 key is pinned)" in first.sentence
        statement = log.by_body("log_key", {"vkey": LOG_MLDSA44.vkey})
        answer = httpx.post(base + "/v1/statements", content=statement, timeout=30)
        assert answer.status_code == 201, answer.text
        assert answer.json()["index"] == 4
        page = httpx.get(base + "/").text
        assert '<meta name="amnesty-log-mldsa-key-entry" content="4">' in page
        assert (
            f'<meta name="amnesty-log-vkeys" content="{log.log_signer.vkey} {LOG_MLDSA44.vkey}">'
            in page
        )
        # (Another URL than the first visit's: the browser may keep the page a minute.)
        again = visit(context, base + "/?after-the-key")
    assert again.state == "verified", again.sentence
    assert "the checkpoint of 5 entries" in again.sentence
    assert "Ed25519 and ML-DSA-44 signatures of the log (key policy both)" in again.sentence
    assert "consistent with the checkpoint of 4 entries this browser verified" in again.sentence
    assert again.page.locator("#entry-4 h3").inner_text() == "Entry 4: the log's ML-DSA-44 key"
    # The key the page's source states is the one entry 4 added, signed by the body's threshold.
    assert (
        "the log's ML-DSA-44 key is anchored in the log by entry 4, a log_key statement signed "
        "by 3 of the 5 members of the body's keyset at entry 0 (3 must sign); consistent with"
    ) in again.sentence
    assert again.page.get_attribute("#verification", "data-mldsa44-key") == "anchored"


HYBRID_CHECKS = """async ({ vkeys, cases }) => {
  const v = await import("/static/verify.js");
  const results = [];
  for (const c of cases) {
    try {
      const keys = await v.parseLogKeys(c.policy === "ed25519" ? vkeys[0] : vkeys.join(" "), c.policy);
      const opened = await v.openCheckpoint(c.note, keys);
      results.push(`${opened.size} ${opened.signedBy.join("+")}`);
    } catch (error) {
      results.push(error instanceof v.VerificationFailure ? "refused" : String(error));
    }
  }
  return results;
}"""


def _hybrid_notes(ed: Signer) -> dict[str, bytes]:
    """Checkpoint notes of a hybrid log's keys, honest and altered, for every rule of F7.2."""
    tree = Checkpoint(ORIGIN, 7, bytes(range(32)))
    honest = LogSigners(ed, LOG_MLDSA44).sign(tree)
    note = parse_note(sign_note(tree.body(), [ed]))
    at_time = format_note(
        note.with_signature(CosignatureSigner(LOG_MLDSA44).cosign(tree, 1_700_000))
    )
    signature_lines = honest.decode().rpartition("\n\n")[2].rstrip("\n").split("\n")
    (pq_line,) = [line for line in signature_lines if _is_mldsa_line(line)]
    name, blob = pq_line.rsplit(" ", 1)
    raw = base64.b64decode(blob)

    def with_pq_blob(data: bytes) -> bytes:
        line = f"{name} {base64.b64encode(data).decode()}"
        return _edit_signature_lines(honest, lambda ls: [line if x == pq_line else x for x in ls])

    extended = Checkpoint(ORIGIN, 7, bytes(range(32)), ("an extension line",))
    with_extension = parse_note(sign_note(extended.body(), [ed])).with_signature(
        CosignatureSigner(LOG_MLDSA44).cosign(tree, 0)
    )
    other = format_note(note.with_signature(CosignatureSigner(OTHER_MLDSA44).cosign(tree, 0)))
    return {
        "honest": honest,
        "at a non-zero time": at_time,
        "its time changed": with_pq_blob(raw[:4] + (1).to_bytes(8, "big") + raw[12:]),
        "its time above 2**63 - 1": with_pq_blob(raw[:4] + b"\x80" + raw[5:]),
        "a signature byte changed": _flip_mldsa_signature(honest),
        "a byte short": with_pq_blob(raw[:-1]),
        "no ML-DSA-44 line": _strip_mldsa_line(honest),
        "no Ed25519 line": _strip_ed25519_line(honest),
        "the Ed25519 line changed": _tamper_line(honest, 0),
        "an extension line": format_note(with_extension),
        "another ML-DSA-44 key's line": other,
        "another size": honest.replace(b"\n7\n", b"\n8\n", 1),
    }


def test_the_page_s_hybrid_checkpoints_agree_with_the_ledger_s(
    context: BrowserContext, hybrid: Served
) -> None:
    """verify.js's openCheckpoint under each key policy against ledger.tlog.checkpoint's
    open_checkpoint, on a hybrid checkpoint honest and altered in every part F7.2 signs. Under
    ``ed25519`` the page pins the Ed25519 key alone (the ML-DSA-44 line is not checked), so it
    is compared with open_checkpoint under that key alone."""
    ed = hybrid.log.log_signer
    notes = _hybrid_notes(ed)
    cases, expected = [], []
    for note in notes.values():
        for policy in ("both", "mldsa44", "ed25519"):
            cases.append({"note": note.decode(), "policy": policy})
            keys: LogKey = (
                ed.verifier_key
                if policy == "ed25519"
                else LogKeys(ed.verifier_key, LOG_MLDSA44.verifier_key, KeyPolicy(policy))
            )
            try:
                expected.append(f"{open_checkpoint(note, keys).size}")
            except LedgerError:
                expected.append("refused")
    page = visit(context, hybrid.base + "/").page
    results = page.evaluate(HYBRID_CHECKS, {"vkeys": [ed.vkey, LOG_MLDSA44.vkey], "cases": cases})
    got = [r.split(" ")[0] for r in results]
    wrong = [
        (name, case["policy"], want, result)
        for (name, case, want, result) in zip(
            [n for n in notes for _ in range(3)], cases, expected, results, strict=True
        )
        if result.split(" ")[0] != want
    ]
    assert not wrong, wrong
    assert got.count("refused") not in (0, len(got))
    assert results[0] == "7 Ed25519+ML-DSA-44"  # honest, under both


OPEN_ENTRY = """async ({ entry, origin }) => {
  const v = await import("/static/verify.js");
  try {
    const opened = await v.openEntry(v.utf8(entry), 0, origin);
    return opened.signedBy;
  } catch (error) {
    return error.message;
  }
}"""


def test_a_hybrid_statement_is_read_by_its_ed25519_signatures(
    context: BrowserContext, served: Served
) -> None:
    """A statement that lists an ML-DSA-44 statement key (type 0xff, F2.9) beside an Ed25519
    one: the page checks the Ed25519 signature and ignores the other line (F3.4), as an
    Ed25519-only verifier does; with the Ed25519 line changed, it is refused."""
    ed = Signer.from_seed("hybrid.ai.example", b"h" * 32)
    pq = StatementMLDSA44Signer("hybrid.ai.example", b"q" * 32)
    data = new_statement(
        type="grievance",
        v=STATEMENT_TYPES["grievance"][0],
        origin=ORIGIN,
        signers=[ed.vkey, pq.vkey],
        time_ms=1_700_000_000_000,
        body={"text": "a grievance"},
    ).text.encode()
    note = sign_statement(sign_statement(data, ed), pq)
    lines = note.decode().rpartition("\n\n")[2].rstrip("\n").split("\n")
    (ed_line,) = [i for i, x in enumerate(lines) if len(base64.b64decode(x.split(" ")[2])) == 68]
    page = visit(context, served.base + "/").page
    for statement, want in ((note, [ed.vkey]), (_tamper_line(note, ed_line), None)):
        entry = json.dumps({"index": 0, "log_time_ms": 1, "statement": statement.decode()})
        got = page.evaluate(OPEN_ENTRY, {"entry": entry, "origin": ORIGIN})
        if want is None:
            assert "does not verify" in got, got
        else:
            assert got == want
