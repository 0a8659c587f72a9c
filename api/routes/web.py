"""The public web page: ``GET /``, its static files (its own modules, not built, and two vendored
verifiers pinned by SHA-256) and its icon.

The page (``api/static/``) verifies in the visitor's browser what it shows: it pins the log's keys
(the visitor's own pin, else the keys this route writes into the page's source, which the page
calls the server's claim: the Ed25519 vkey and, for a hybrid log, the ML-DSA-44 vkey), checks the
checkpoint's signatures under its key policy (``ed25519``, ``mldsa44`` or ``both``, the default
when both keys are pinned) and its consistency with the last one that browser verified,
proves every entry it shows included and checks its statement's signatures; everything else
is labelled as the server's word (docs/API.md, "The web page"). Content from the log is
inserted as text only; the Content-Security-Policy allows scripts, styles, images and requests
to this origin alone, so a statement can never run code in a reader's browser.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from api.deps import Service
from api.problems import ProblemError
from api.service import LedgerService

router = APIRouter(tags=["web"], include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "verify.js": "text/javascript; charset=utf-8",
    "quote.js": "text/javascript; charset=utf-8",
    # Vendored, byte for byte: @noble/ed25519 2.3.0 (MIT, its licence beside it), the page's
    # Ed25519 where WebCrypto has none; its SHA-256 is pinned in tests/test_api_web.py.
    "noble-ed25519.js": "text/javascript; charset=utf-8",
    # Vendored: @noble/post-quantum 0.7.1's ML-DSA-44 verify with @noble/hashes and
    # @noble/curves 2.4.0 (MIT, licences beside it), bundled by esbuild 0.28.2
    # (scripts/vendor-mldsa44 rebuilds it byte for byte; SHA-256 pinned in tests/test_api_web.py).
    "noble-post-quantum-mldsa44.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_VKEY_SLOT = "{{LOG_VKEY}}"
_VKEYS_SLOT = "{{LOG_VKEYS}}"
_KEY_ENTRY_SLOT = "{{MLDSA_KEY_ENTRY}}"
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=60",
}


def _log_vkeys(service: LedgerService) -> tuple[list[str], int | None]:
    """The vkeys that sign this log's checkpoints, Ed25519 first (as ``/v1/log`` publishes
    them), and the index of the ``log_key`` entry that added the ML-DSA-44 key, if one did. A
    server still catching up on its state (503) states the keys the log was created with."""
    vkeys = service.view.log_keys.vkeys()
    try:
        with service.reader.latest() as (state, _head):
            anchored = state.log_key
    except ProblemError:
        return vkeys, None
    if anchored is None:
        return vkeys, None
    if anchored.vkey not in vkeys:
        vkeys.append(anchored.vkey)
    return vkeys, anchored.index


@router.get("/", response_class=Response)
def index(service: Service) -> Response:
    """The page, with this log's keys in its source: ``<meta name="amnesty-log-vkey">`` (the
    Ed25519 vkey), ``<meta name="amnesty-log-vkeys">`` (every vkey that signs its checkpoints,
    Ed25519 first, separated by a space) and ``<meta name="amnesty-log-mldsa-key-entry">``
    (the index of the ``log_key`` entry that added the ML-DSA-44 key, or empty): the keys the
    page verifies against unless the visitor pinned others."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    vkeys, key_entry = _log_vkeys(service)
    slots = {
        _VKEY_SLOT: service.view.identity.log_vkey,
        _VKEYS_SLOT: " ".join(vkeys),
        _KEY_ENTRY_SLOT: "" if key_entry is None else str(key_entry),
    }
    for slot, value in slots.items():
        page = page.replace(slot, html.escape(value, quote=True), 1)
    return Response(page, media_type="text/html; charset=utf-8", headers=_SECURITY_HEADERS)


def _file(name: str) -> Response:
    return Response(
        (STATIC / name).read_bytes(), media_type=_FILES[name], headers=_SECURITY_HEADERS
    )


@router.get("/favicon.ico", response_class=Response)
@router.get("/favicon.svg", response_class=Response)
def favicon() -> Response:
    """The page's icon (an SVG, also at the path browsers ask for by default)."""
    return _file("favicon.svg")


@router.get("/static/{name}", response_class=Response)
def static_file(name: Annotated[str, PathParam(max_length=64)]) -> Response:
    """The page's scripts, stylesheet and icon (nothing else is served from the folder)."""
    if name not in _FILES:
        raise ProblemError(
            404, "Not found", f"couldn't find static file {name!r}", kind="not-found"
        )
    return _file(name)
