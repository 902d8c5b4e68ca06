"""Shared by the browser tests: Debian's Chromium through Playwright, and the app served on loopback.

Never `playwright install` (it downloads a browser; no internet here): `make test` installs Debian's
chromium and fonts-noto-cjk, and the browser fixture asserts both, so Chinese renders rather than boxes.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from playwright.sync_api import Browser, sync_playwright
from werkzeug.serving import BaseWSGIServer, make_server

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@contextmanager
def chromium(artifacts: Path) -> Iterator[Browser]:
    """One headless Chromium; `artifacts` (screenshots) is emptied first."""
    assert Path(CHROMIUM).exists(), "install Debian's chromium (make chromium)"
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False).stdout
    assert "Noto Sans CJK" in fonts, "install fonts-noto-cjk (make fonts): Chinese would render as boxes"
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def serving(server: BaseWSGIServer) -> Iterator[None]:
    """Run a WSGI server in its own thread for the block's duration."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=10)


def loopback_server(app: Flask) -> BaseWSGIServer:
    """The app on a free loopback port, threaded (the page's requests overlap)."""
    return make_server("127.0.0.1", 0, app, threaded=True)
