"""The page anchors the log's ML-DSA-44 key its source states in the log (docs/FORMAT.md F7.4,
docs/API.md "The web page", step 6), in a real Chromium against a real uvicorn server.

A log that added its ML-DSA-44 key by a ``log_key`` entry at index ``A``: when the page's source
states that key (the visitor pinned none), the page verifies entry ``A`` like any entry
(included in the signed tree, its envelope naming ``A``, its statement this log's), and checks
that it is a ``log_key`` statement of exactly that key signed by the threshold of the keyset
before it. A lying proxy on a first visit that states its own ML-DSA-44 key (re-signing every
checkpoint's ML-DSA-44 line with it), drops the anchor, or names another entry, ends at
``failed``; a log created with both keys is verified, its ML-DSA-44 key said to be trusted on
first use. The proxy is Chromium's request interception (``page.route``), as in
tests/test_page_browser.py, whose log and key helpers this module reuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Route

from ledger.tlog.checkpoint import Checkpoint, CosignatureSigner, LogSigners
from ledger.tlog.note import Signer
from tests.api_support import live_server
from tests.browser_support import chromium, edit_response, visit
from tests.support import ORIGIN, signed_statement
from tests.test_page_browser import (
    LOG_MLDSA44,
    OTHER_MLDSA44,
    Served,
    _edit_signature_lines,
    _is_mldsa_line,
    _set_policy,
    _strip_ed25519_line,
    demo_log,
    hybrid_demo_log,
)

LOG_ID = LOG_MLDSA44.vkey.split("+")[1]
OTHER_ID = OTHER_MLDSA44.vkey.split("+")[1]
ANCHOR = 5
FAILED_KEY = "Verification failed: couldn't verify the log's ML-DSA-44 key: "


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (its own localStorage): every visit here is a first visit."""
    fresh = browser.new_context()
    try:
        yield fresh
    finally:
        fresh.close()


@pytest.fixture(scope="module")
def anchored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """:func:`demo_log`'s 4 entries, a keyset rotation at 4 (the same 5 members, threshold 2),
    and the ``log_key`` entry at 5 that adds the log's ML-DSA-44 key, signed by 2 members."""
    log = demo_log(tmp_path_factory.mktemp("log-key-page"))
    members = log.members
    rotation = {"members": sorted(m.vkey for m in members), "threshold": 2}
    log.append("rotation", log.by_body("keyset", {**rotation, "previous": log.ref("keyset")}))
    # The key file one key ahead of the log, as `amnesty add-mldsa-key` leaves it.
    log.key_path.write_text(LogSigners(log.log_signer, LOG_MLDSA44).text())
    with live_server(log.settings()) as base:
        statement = signed_statement(
            members[:2], "log_key", {"vkey": LOG_MLDSA44.vkey}, listed=members
        )
        answer = httpx.post(base + "/v1/statements", content=statement, timeout=30)
        assert answer.status_code == 201, answer.text
        assert answer.json()["index"] == ANCHOR
        page = httpx.get(base + "/").text
        assert f'<meta name="amnesty-log-mldsa-key-entry" content="{ANCHOR}">' in page
        yield Served(log, base)


# -- a lying proxy in front of the log --------------------------------------------------------------


def _resign(note: str, signer: Signer) -> str:
    """The checkpoint ``note`` with its ML-DSA-44 line replaced by one of ``signer`` (a proxy
    holding its own ML-DSA-44 key named after the origin)."""
    text = note.rpartition("\n\n")[0] + "\n"
    line = CosignatureSigner(signer).cosign(Checkpoint.parse(text), 0).line().rstrip("\n")
    edited = _edit_signature_lines(
        note.encode(), lambda lines: [x for x in lines if not _is_mldsa_line(x)] + [line]
    )
    return edited.decode()


def _is_checkpoint(value: str) -> bool:
    return value.startswith(ORIGIN + "\n") and "\n\n\u2014 " in value


def key_proxy(
    base: str,
    *,
    own_key: bool = False,
    page: dict[str, str] | None = None,
    log_info: dict[str, Any] | None = None,
    edits: dict[str, Callable[[Any], Any]] | None = None,
    v1_log_too: bool = True,
) -> dict[str, Callable[[Route], None]]:
    """Routes of a proxy in front of ``base``. ``own_key``: it states its own ML-DSA-44 key
    (``OTHER_MLDSA44``) for the log's, in the page's source and (``v1_log_too``) in ``/v1/log``,
    and re-signs the ML-DSA-44 line of every checkpoint the page reads (``/checkpoint`` and
    those in JSON answers) with it. ``page``: the page's source with each meta tag's content
    replaced (by name). ``log_info``: fields of ``/v1/log`` set. ``edits``: a JSON answer (by
    path) passed through a function."""

    def swap(text: str) -> str:
        return text.replace(LOG_MLDSA44.vkey, OTHER_MLDSA44.vkey) if own_key else text

    def walk(value: Any, v1_log: bool) -> Any:
        if isinstance(value, str):
            if own_key and _is_checkpoint(value):
                return _resign(value, OTHER_MLDSA44)
            return swap(value) if v1_log_too or not v1_log else value
        if isinstance(value, list):
            return [walk(v, v1_log) for v in value]
        if isinstance(value, dict):
            return {k: walk(v, v1_log) for k, v in value.items()}
        return value

    def handler(route: Route) -> None:
        path = urlsplit(route.request.url).path
        if path == "/":
            response = route.fetch()
            source = swap(response.text())
            for name, content in (page or {}).items():
                source, found = _set_meta(source, name, content)
                assert found, name
            route.fulfill(response=response, body=source)
        elif path == "/checkpoint" and own_key:
            response = route.fetch()
            route.fulfill(response=response, body=_resign(response.text(), OTHER_MLDSA44))
        elif path.startswith("/v1/") and response_is_json(route):
            response = route.fetch()
            data = walk(response.json(), path == "/v1/log")
            if path == "/v1/log":
                data.update(log_info or {})
            if path in (edits or {}):
                data = (edits or {})[path](data)
            route.fulfill(response=response, body=json.dumps(data))
        else:
            route.fallback()

    return {base + "/": handler, base + "/**": handler}


def response_is_json(route: Route) -> bool:
    return "json" in (route.request.headers.get("accept") or "")


def _set_meta(source: str, name: str, content: str) -> tuple[str, bool]:
    prefix = f'<meta name="{name}" content="'
    at = source.find(prefix)
    if at < 0:
        return source, False
    end = source.index('">', at)
    return source[: at + len(prefix)] + content + source[end:], True


def _without_keyset(index: int) -> Callable[[Any], Any]:
    def edit(data: Any) -> Any:
        data["entries"] = [e for e in data["entries"] if e["index"] != index]
        return data

    return edit


# -- the tests --------------------------------------------------------------------------------------


def test_a_log_that_added_its_key_is_verified_with_the_key_anchored(
    context: BrowserContext, anchored: Served
) -> None:
    shown = visit(context, anchored.base + "/")
    assert shown.state == "verified", shown.sentence
    assert shown.sentence.startswith(
        "Verified in this browser: the checkpoint of 6 entries is signed by the log keys this "
        "server states (its own claim: compare them with ones published elsewhere) — verified: "
        "Ed25519 and ML-DSA-44 signatures of the log (key policy both); the "
    ), shown.sentence
    assert (
        "their statements' signatures verify; the log's ML-DSA-44 key is anchored in the log by "
        "entry 5, a log_key statement signed by 2 of the 5 members of the body's keyset at entry "
        "4 (2 must sign); this is the first visit from this browser"
    ) in shown.sentence
    page = shown.page
    assert page.get_attribute("#verification", "data-mldsa44-key") == "anchored"
    assert shown.console_errors == [] and shown.page_errors == [] and shown.failed_requests == []
    assert page.locator(f"#entry-{ANCHOR} h3").inner_text() == "Entry 5: the log's ML-DSA-44 key"
    # The offer is still checked against the keyset before it (entry 0), not the rotation.
    offer = page.locator("#offer").text_content() or ""
    assert "Signed by 3 of the 5 members of the body's keyset at entry 0 (3 must sign)" in offer
    # Verified: the keys it stated are the ones trust on first use keeps.
    assert page.evaluate("localStorage.getItem('amnesty-ledger.seen-mldsa-vkey')") == (
        LOG_MLDSA44.vkey
    )


LIES: dict[str, tuple[dict[str, Any], str]] = {
    "its own ML-DSA-44 key, every checkpoint re-signed": (
        {"own_key": True},
        f"entry 5, the log_key statement the page's source names, names another key (key ID "
        f"{LOG_ID}) than the one the page uses (key ID {OTHER_ID})",
    ),
    "its own ML-DSA-44 key, and no anchor": (
        {
            "own_key": True,
            "page": {"amnesty-log-mldsa-key-entry": ""},
            "log_info": {"mldsa_key_entry": None},
        },
        "entry 5 is a log_key statement, and the page's source names no log_key entry as the "
        "one that added it",
    ),
    "its own ML-DSA-44 key in the page's source, not in /v1/log": (
        {"own_key": True, "v1_log_too": False},
        "the page's source and /v1/log state different log keys",
    ),
    "the anchor at another entry": (
        {"page": {"amnesty-log-mldsa-key-entry": "1"}, "log_info": {"mldsa_key_entry": 1}},
        "entry 1, which the page's source names as the one that added it, is not a log_key "
        "statement (it is the offer)",
    ),
    "the anchor at another entry in the page's source, not in /v1/log": (
        {"page": {"amnesty-log-mldsa-key-entry": "1"}},
        "the page's source names entry 1 as the one that added it, and /v1/log names entry 5",
    ),
    "no anchor in the page's source": (
        {"page": {"amnesty-log-mldsa-key-entry": ""}},
        "the page's source names no log_key entry as the one that added it, and /v1/log names "
        "entry 5",
    ),
    "an anchor in the page's source, none in /v1/log": (
        {"log_info": {"mldsa_key_entry": None}},
        "the page's source names entry 5 as the one that added it, and /v1/log names no log_key "
        "entry",
    ),
    "the anchor beyond the signed tree": (
        {"page": {"amnesty-log-mldsa-key-entry": "99"}, "log_info": {"mldsa_key_entry": 99}},
        "the page's source names entry 99 as the one that added it, and the signed tree has 6 "
        "entries",
    ),
    "an unreadable anchor": (
        {"page": {"amnesty-log-mldsa-key-entry": "5 "}},
        "the page's source names its log_key entry by something that is not an entry index",
    ),
    "the keyset before the anchor said to be an older one": (
        {"edits": {"/v1/entries": _without_keyset(4)}},
        "entry 5 is signed by 2 of the 3 members the keyset at entry 0 requires",
    ),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_through_a_lying_proxy_the_log_s_key_is_not_anchored(
    context: BrowserContext, anchored: Served, lie: str
) -> None:
    """A first visit (nothing pinned, nothing seen): each lie ends at ``failed``, naming what
    differed, shows nothing from the log and leaves no key for trust on first use."""
    options, reason = LIES[lie]
    shown = visit(context, anchored.base + "/", key_proxy(anchored.base, **options))
    assert shown.state == "failed", (lie, shown.sentence)
    assert shown.sentence.startswith(FAILED_KEY + reason + "."), shown.sentence
    page = shown.page
    assert page.locator("#content").is_hidden()
    assert "Verified" not in page.inner_text("body")
    assert page.evaluate("localStorage.getItem('amnesty-ledger.seen-mldsa-vkey')") is None
    assert shown.page_errors == []


def test_a_source_naming_an_anchor_for_no_key_fails(
    context: BrowserContext, anchored: Served
) -> None:
    """A proxy that drops the ML-DSA-44 key from the page's source (to fall back on Ed25519
    alone) but leaves the entry that added it: the source contradicts itself."""
    ed_only = key_proxy(anchored.base, page={"amnesty-log-vkeys": anchored.log.log_signer.vkey})
    shown = visit(context, anchored.base + "/", ed_only)
    assert shown.state == "failed", shown.sentence
    assert shown.sentence.startswith(
        "Verification failed: couldn't trust the log keys: the page's source names entry 5 as "
        "the log_key entry that added the log's ML-DSA-44 key, and states no ML-DSA-44 key."
    ), shown.sentence


def test_the_proxy_s_own_key_verifies_its_re_signed_checkpoints(
    context: BrowserContext, anchored: Served
) -> None:
    """The lie above is a good one: under the keys it states, the checkpoints it re-signs
    verify in the page (only the log_key entry gives it away)."""
    proxy = key_proxy(anchored.base, own_key=True)
    shown = visit(context, anchored.base + "/", proxy)
    assert shown.state == "failed"
    checks = shown.page.evaluate(
        """async ({ note, vkeys }) => {
          const v = await import("/static/verify.js");
          const opened = await v.openCheckpoint(note, await v.parseLogKeys(vkeys));
          return opened.signedBy.join(" ");
        }""",
        {
            "note": _resign(httpx.get(anchored.base + "/checkpoint").text, OTHER_MLDSA44),
            "vkeys": f"{anchored.log.log_signer.vkey} {OTHER_MLDSA44.vkey}",
        },
    )
    assert checks == "Ed25519 ML-DSA-44"


def test_a_log_created_with_both_keys_stays_trusted_on_first_use(
    context: BrowserContext, tmp_path: Path
) -> None:
    """No log_key entry: the page verifies, and says the ML-DSA-44 key is trusted on first use
    (a proxy stating its own key there is indistinguishable, and the words say so)."""
    log = hybrid_demo_log(tmp_path)
    with live_server(log.settings()) as base:
        shown = visit(context, base + "/")
        assert shown.state == "verified", shown.sentence
        assert (
            "the log's ML-DSA-44 key is trusted on first use (the page's source names no log_key "
            "entry anchoring it, as for a log created with it)"
        ) in shown.sentence
        assert shown.page.get_attribute("#verification", "data-mldsa44-key") == "first-use"
        assert shown.console_errors == [] and shown.failed_requests == []
        # A source that names an anchor /v1/log does not: the server contradicts itself.
        lie = key_proxy(base, page={"amnesty-log-mldsa-key-entry": "2"})
        contradicted = visit(context, base + "/?again", lie)
    assert contradicted.state == "failed"
    assert contradicted.sentence.startswith(
        FAILED_KEY + "the page's source names entry 2 as the one that added it, and /v1/log "
        "names no log_key entry."
    ), contradicted.sentence


def test_without_an_ed25519_signature_the_anchor_does_not_count(
    context: BrowserContext, anchored: Served
) -> None:
    """Under the policy mldsa44 a checkpoint may lack its Ed25519 line: the log_key entry is
    still checked, but in a tree only the ML-DSA-44 key signed it vouches for nothing, so the
    page says the key is trusted on first use."""
    _set_policy(context, anchored.base, "mldsa44")
    stripped = {"**/checkpoint": edit_response(_strip_ed25519_line)}
    shown = visit(context, anchored.base + "/?mldsa44", stripped)
    assert shown.state == "verified", shown.sentence
    assert (
        "the log's ML-DSA-44 key is trusted on first use: it is named by entry 5, a log_key "
        "statement signed by 2 of the 5 members of the body's keyset at entry 4 (2 must sign), "
        "in a tree no Ed25519 signature of the log covers"
    ) in shown.sentence
    assert shown.page.get_attribute("#verification", "data-mldsa44-key") == "first-use"


def test_under_ed25519_the_mldsa_key_is_not_used_nor_anchored(
    context: BrowserContext, anchored: Served
) -> None:
    """The policy ed25519 does not use the ML-DSA-44 key: nothing to anchor, nothing said."""
    _set_policy(context, anchored.base, "ed25519")
    shown = visit(context, anchored.base + "/?ed25519")
    assert shown.state == "verified", shown.sentence
    assert "ML-DSA-44 key is" not in shown.sentence
    assert shown.page.get_attribute("#verification", "data-mldsa44-key") is None
