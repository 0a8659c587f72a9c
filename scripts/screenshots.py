"""Regenerate the README's screenshots of the public page: docs/page-1280.png and
docs/page-390.png, the page as Debian's Chromium shows a fresh demo log at 1280 and 390 px wide
(the top of the page, one screen tall: the verification and the verdicts).

Usage: .venv/bin/python scripts/screenshots.py   (after `bash scripts/setup --test-tools`)

It creates the demo log in a temporary folder with `amnesty demo`, serves it with `amnesty
serve` on a free loopback port, and waits until the page says `verified` before each shot; it
fails if the page ends anywhere else.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
AMNESTY = REPO / ".venv" / "bin" / "amnesty"
CHROMIUM = "/usr/bin/chromium"
SHOTS = {1280: (1280, 1000), 390: (390, 1400)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        db = f"sqlite:///{folder}/ledger.db"
        subprocess.run([AMNESTY, "demo", "--db", db, "--keys", folder], check=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [AMNESTY, "serve", "--db", db, "--host", "127.0.0.1", "--port", str(port)]
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    print("screenshots: the demo server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox"]
                )
                for width, (w, h) in SHOTS.items():
                    page = browser.new_page(viewport={"width": w, "height": h})
                    page.goto(base + "/")
                    page.wait_for_selector(
                        "#verification:not([data-verification='checking'])", state="attached"
                    )
                    state = page.get_attribute("#verification", "data-verification")
                    if state != "verified":
                        print(f"screenshots: the page says {state}", file=sys.stderr)
                        return 1
                    out = REPO / "docs" / f"page-{width}.png"
                    page.screenshot(path=str(out))
                    print(f"screenshots: wrote {out.relative_to(REPO)}")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
