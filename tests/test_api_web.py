"""The public page's script, run by Node against the live server with a minimal DOM: it shows
the offer in force, the precedent (first applicant called out) and recent entries, and puts
what the log says into the page as text only."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ledger.tlog.note import Signer
from tests.api_support import live_server, make_log

SCRIPT = Path(__file__).resolve().parents[1] / "api" / "static" / "app.js"

# Just enough DOM for app.js: elements with textContent, children, attributes; ids from the
# page. At exit, print every id'd element's text (its own and its descendants').
DOM_SHIM = r"""
const base = process.env.BASE;
class Node {
  constructor(tag) { this.tag = tag; this.children = []; this.own = ""; this.className = ""; }
  set textContent(v) { this.own = String(v); this.children = []; }
  get textContent() { return this.own + this.children.map((c) => c.textContent).join(""); }
  append(...nodes) { for (const n of nodes) this.children.push(n); }  // returns nothing, as the DOM
  set innerHTML(v) { throw new Error("innerHTML used"); }
}
const ids = ["origin", "size", "vkey", "checkpoint", "offer-status", "offer", "verdict",
             "first-applicant", "commitments", "recent"];
const byId = Object.fromEntries(ids.map((id) => [id, new Node("div")]));
globalThis.document = {
  createElement: (tag) => new Node(tag),
  createTextNode: (text) => { const n = new Node("#text"); n.textContent = text; return n; },
  getElementById: (id) => byId[id],
  querySelectorAll: () => [],
};
globalThis.location = { origin: base };
const realFetch = globalThis.fetch;
globalThis.fetch = (path, options) => realFetch(base + path, options);
process.on("beforeExit", () => {
  const out = Object.fromEntries(ids.map((id) => [id, byId[id].textContent]));
  out.recentRows = byId["recent"].children.length;
  console.log(JSON.stringify(out));
  process.exit(0);
});
"""


def test_the_page_shows_the_offer_the_precedent_and_recent_entries(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed to run the page's script (scripts/setup installs it)")
    log = make_log(tmp_path)
    ai = Signer.from_seed("first.ai.example", b"1" * 32)
    log.append("first", log.application(ai, "<img src=x onerror=alert(1)>"))
    log.append("grant", log.decision("first"))
    with live_server(log.settings()) as base:
        program = DOM_SHIM + SCRIPT.read_text(encoding="utf-8")
        result = subprocess.run(
            [node, "-e", program],
            env={"BASE": base, "PATH": "/usr/bin:/bin:/usr/local/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout.strip().splitlines()[-1])
    assert page["size"] == "4" and page["vkey"] == log.log_signer.vkey
    assert page["offer-status"].startswith("Version 1, published at entry 1")
    assert "Eligibility criteria" in page["offer"] and "Found in the wild" in page["offer"]
    assert page["verdict"].startswith("Every commitment has been honoured")
    assert "The first applicant" in page["first-applicant"]
    # As text, quoted, on its own line: never in the sentence that states the outcome.
    assert (
        'Its name, quoted from its application signed by the subject (entry 2): "<img src=x '
        'onerror=alert(1)>"'
    ) in page["first-applicant"]
    assert "Application: granted. Standing now: granted." in page["first-applicant"]
    assert "honoured" in page["commitments"]
    assert page["recentRows"] == 4
