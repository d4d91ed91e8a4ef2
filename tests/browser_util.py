"""Headless Chromium for the report tests: Debian's /usr/bin/chromium driven by Python Playwright.

Playwright's own browser downloads are never used. When either piece is missing the browser tests
skip with the reason (`.ci/run` installs both, so they run in CI).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("HAWKEYE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@contextmanager
def open_page(path: Path, width: int = 1280) -> Iterator[tuple[Any, list[tuple[str, str]], list[str]]]:
    """(page, console messages, requested URLs other than the file itself) for a local HTML file."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Python playwright is not installed (pip install playwright; .ci/run does)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install -y chromium; .ci/run does)")
    url = path.resolve().as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            console: list[tuple[str, str]] = []
            requests: list[str] = []
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: console.append(("error", str(e))))
            page.on("dialog", lambda d: (console.append(("dialog", d.message)), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url) if r.url != url else None)
            page.goto(url, wait_until="load")
            yield page, console, requests
        finally:
            browser.close()
