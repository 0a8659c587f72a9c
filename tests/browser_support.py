"""The public page in a real browser: Playwright driving Debian's Chromium (``/usr/bin/chromium``,
installed by ``scripts/setup --test-tools``; Playwright's own browser downloads are never used).

A missing browser is a failure, never a skip: the page's only tests are these.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = Path(os.environ.get("AMNESTY_CHROMIUM", "/usr/bin/chromium"))
"""Debian's Chromium (``AMNESTY_CHROMIUM`` points elsewhere)."""
SETTLED = "#verification:not([data-verification='checking'])"

RouteHandler = Callable[[Route], None]


@contextmanager
def chromium(executable: Path = CHROMIUM) -> Iterator[Browser]:
    """A headless Chromium; fails the test when the system browser is missing."""
    if not executable.exists():
        pytest.fail(
            f"couldn't find Chromium at {executable}: run `bash scripts/setup --test-tools`"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Visit:
    """A page after its verification settled, with what the browser reported meanwhile."""

    page: Page
    state: str
    sentence: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)


def visit(
    context: BrowserContext,
    url: str,
    routes: dict[str, RouteHandler] | None = None,
    *,
    width: int = 1280,
) -> Visit:
    """Open ``url`` in a new page of ``context`` (so localStorage is shared across visits),
    with ``routes`` (a glob to a handler) answering in place of the server, and wait until
    ``#verification`` leaves ``checking``."""
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    result = Visit(page, "", "")
    page.on(
        "console",
        lambda message: (
            result.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: result.page_errors.append(str(error)))
    page.on(
        "response",
        lambda response: (
            result.failed_requests.append(f"{response.status} {response.url}")
            if response.status >= 400
            else None
        ),
    )
    for pattern, handler in (routes or {}).items():
        page.route(pattern, handler)
    page.goto(url)
    try:
        page.wait_for_selector(SETTLED, state="attached", timeout=30_000)
    except PlaywrightTimeout as error:
        raise AssertionError(
            f"the page's verification never settled: page errors {result.page_errors}, "
            f"console errors {result.console_errors}"
        ) from error
    box = page.locator("#verification")
    result.state = box.get_attribute("data-verification") or ""
    result.sentence = page.locator("#verification-sentence").inner_text()
    return result


def edit_response(edit: Callable[[bytes], bytes]) -> RouteHandler:
    """A lying proxy's handler: fetch the real answer, hand the page ``edit`` of its body."""

    def handler(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, body=edit(response.body()))

    return handler


DOM_TREE = """() => {
  const walk = (node, insideBdi) => {
    if (node.nodeType === Node.TEXT_NODE) return { tag: "#text", text: node.data, insideBdi };
    const tag = node.tagName.toLowerCase();
    return { tag, cls: node.className, id: node.id, hidden: node.closest("[hidden]") !== null,
             text: tag === "bdi" ? node.textContent : "", insideBdi,
             children: Array.from(node.childNodes).map((c) => walk(c, insideBdi || tag === "bdi")) };
  };
  return walk(document.body, false);
}"""


def dom_tree(page: Page) -> dict[str, Any]:
    """The page's body as nested dicts: each element's tag, class, id, whether it is hidden,
    and its children; each text node's text; a ``<bdi>``'s text."""
    tree: dict[str, Any] = page.evaluate(DOM_TREE)
    return tree


def nodes(tree: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a :func:`dom_tree`, depth first."""
    yield tree
    for child in tree.get("children", []):
        yield from nodes(child)
