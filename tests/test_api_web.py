"""The public page's HTTP side (``api/routes/web.py``): the page carries this log's keys in its
source, its files come from an allowlist (the vendored verifiers pinned by their SHA-256), its icon exists, and its Content-Security-Policy lets
nothing but this origin's own files run, style or load. What the page does in a browser is
tested in a real Chromium: tests/test_page_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api_support import TestLog, make_log

STATIC = Path(__file__).resolve().parents[1] / "api" / "static"


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> TestLog:
    return make_log(tmp_path_factory.mktemp("web"))


@pytest.fixture
def http(log: TestLog) -> Iterator[TestClient]:
    with TestClient(create_app(log.settings())) as client:
        yield client


def test_the_page_pins_this_log_s_key_in_its_source(http: TestClient, log: TestLog) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'<meta name="amnesty-log-vkey" content="{log.log_signer.vkey}">' in page.text
    # An Ed25519-only log: its one vkey, and no log_key entry (a hybrid log's page, and one that
    # added its ML-DSA-44 key, are in tests/test_page_browser.py).
    assert f'<meta name="amnesty-log-vkeys" content="{log.log_signer.vkey}">' in page.text
    assert '<meta name="amnesty-log-mldsa-key-entry" content="">' in page.text
    assert "{{" not in page.text


def test_the_page_loads_nothing_from_elsewhere_and_runs_no_inline_code(http: TestClient) -> None:
    page = http.get("/")
    policy = page.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "frame-ancestors 'none'",
    ):
        assert directive in policy
    assert "unsafe" not in policy
    # Every script, stylesheet and icon the page or its scripts name is one of its own files.
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assets = [s for s in sources if s.startswith("/static/") or s.startswith("/favicon")]
    assert {"/static/app.js", "/static/style.css", "/favicon.svg"} <= set(assets)
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # no inline script
    assert " style=" not in page.text
    for name in ("app.js", "verify.js", "quote.js"):
        script = (STATIC / name).read_text(encoding="utf-8")
        assert "innerHTML" not in script and "insertAdjacentHTML" not in script
        assert "http://" not in script and "https://" not in script
        imports = re.findall(r'from "([^"]+)"', script)
        assert all(module.startswith("./") for module in imports), imports


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("app.js", "text/javascript"),
        ("verify.js", "text/javascript"),
        ("quote.js", "text/javascript"),
        ("noble-ed25519.js", "text/javascript"),
        ("noble-post-quantum-mldsa44.js", "text/javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_the_page_s_files_are_served(http: TestClient, name: str, media_type: str) -> None:
    answer = http.get(f"/static/{name}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media_type)
    assert answer.content == (STATIC / name).read_bytes()
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_icon_is_where_browsers_ask_for_it(http: TestClient) -> None:
    for path in ("/favicon.ico", "/favicon.svg"):
        answer = http.get(path)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/svg+xml"


@pytest.mark.parametrize("name", ["index.html", "..%2Fapp.py", "nothing.js", "x" * 65])
def test_nothing_else_is_served_from_the_folder(http: TestClient, name: str) -> None:
    answer = http.get(f"/static/{name}")
    assert answer.status_code in (404, 422)
    assert answer.headers["content-type"].startswith("application/problem+json")


NOBLE_ED25519_SHA256 = "70cebecaaa6a126ced702198706c49d03f2d6f70317342b75e50e8d2d4951fe5"
"""SHA-256 of @noble/ed25519 2.3.0's ``index.js`` as npm ships it (``npm pack``), vendored byte
for byte as ``api/static/noble-ed25519.js`` beside its MIT licence."""


def test_the_vendored_ed25519_is_the_pinned_release() -> None:
    import hashlib

    data = (STATIC / "noble-ed25519.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == NOBLE_ED25519_SHA256
    licence = (STATIC / "noble-ed25519.LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Paul Miller" in licence


NOBLE_POST_QUANTUM_MLDSA44_SHA256 = (
    "15ab7a91c14b3e6acadad8db74949ef1330a2be4d847e7f535f27e4c9919b223"
)
"""SHA-256 of ``api/static/noble-post-quantum-mldsa44.js``: @noble/post-quantum 0.7.1's ML-DSA-44
verify, with @noble/hashes 2.4.0 and @noble/curves 2.4.0, bundled by esbuild 0.28.2 as
``scripts/vendor-mldsa44`` does (docs/API.md, "The web page"). Rebuilding needs the npm registry,
so the build is not run here; the recipe reproduces these bytes."""


def test_the_vendored_mldsa44_bundle_is_the_pinned_build() -> None:
    import hashlib

    data = (STATIC / "noble-post-quantum-mldsa44.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == NOBLE_POST_QUANTUM_MLDSA44_SHA256
    licence = (STATIC / "noble-post-quantum-mldsa44.LICENSE").read_text(encoding="utf-8")
    for package in ("@noble/post-quantum 0.7.1", "@noble/hashes 2.4.0", "@noble/curves 2.4.0"):
        assert f"== {package} (LICENSE as npm ships it) ==" in licence
    assert licence.count("The MIT License (MIT)") == 3 and "Paul Miller" in licence
    # One self-contained module: it imports nothing, fetches nothing, and exports verify only.
    text = data.decode("utf-8")
    for banned in ("import(", "fetch(", "XMLHttpRequest", "http://", "https://", "eval("):
        assert banned not in text, banned
    assert not re.search(r"^import ", text, re.MULTILINE)
    assert text.rstrip().endswith("*/") and "export {\n  verify\n};" in text
