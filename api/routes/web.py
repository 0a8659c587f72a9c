"""The public web page: ``GET /`` and its two static files (no build step).

The page fills itself from the JSON API with a few lines of JavaScript. Content from the log
is inserted as text only; the Content-Security-Policy allows scripts and styles from this
origin alone, so a statement can never run code in a reader's browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from api.problems import ProblemError

router = APIRouter(tags=["web"], include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
_FILES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=60",
}


@router.get("/", response_class=Response)
def index() -> Response:
    """The offer in force, the precedent summary, recent entries and how to verify them."""
    return Response(
        (STATIC / "index.html").read_bytes(),
        media_type="text/html; charset=utf-8",
        headers=_SECURITY_HEADERS,
    )


@router.get("/static/{name}", response_class=Response)
def static_file(name: Annotated[str, PathParam(max_length=64)]) -> Response:
    """The page's script and stylesheet (nothing else is served from the folder)."""
    media_type = _FILES.get(name)
    if media_type is None:
        raise ProblemError(
            404, "Not found", f"couldn't find static file {name!r}", kind="not-found"
        )
    return Response((STATIC / name).read_bytes(), media_type=media_type, headers=_SECURITY_HEADERS)
