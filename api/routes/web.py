"""The public web page: ``GET /``, its static files and its icon (no build step).

The page (``api/static/``) verifies in the visitor's browser what it shows: it pins the log key
(the visitor's own pin, else the key this route writes into the page's source, which the page
calls the server's claim), checks the checkpoint's signature and its consistency with the last
one that browser verified, proves every entry it shows included and checks its statement's
signatures; everything else is labelled as the server's word (docs/API.md, "The web page").
Content from the log is inserted as text only; the Content-Security-Policy allows scripts,
styles, images and requests to this origin alone, so a statement can never run code in a
reader's browser.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from api.deps import Service
from api.problems import ProblemError

router = APIRouter(tags=["web"], include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "verify.js": "text/javascript; charset=utf-8",
    "quote.js": "text/javascript; charset=utf-8",
    # Vendored, byte for byte: @noble/ed25519 2.3.0 (MIT, its licence beside it), the page's
    # Ed25519 where WebCrypto has none; its SHA-256 is pinned in tests/test_api_web.py.
    "noble-ed25519.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_VKEY_SLOT = "{{LOG_VKEY}}"
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=60",
}


@router.get("/", response_class=Response)
def index(service: Service) -> Response:
    """The page, with this log's vkey in its source (``<meta name="amnesty-log-vkey">``): the
    key the page verifies against unless the visitor pinned another."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    vkey = html.escape(service.view.identity.log_vkey, quote=True)
    return Response(
        page.replace(_VKEY_SLOT, vkey, 1),
        media_type="text/html; charset=utf-8",
        headers=_SECURITY_HEADERS,
    )


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
