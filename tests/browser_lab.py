"""JupyterLab 4 on 127.0.0.1 driven by Debian's Chromium through Playwright: the parts shared by
tests/test_browser.py and bench/explorer_screens.py (server start/stop, a notebook written from cell
sources, a page whose non-loopback requests are aborted and counted, bounded waits).

Needs the `chromium` Debian package and the `playwright` PyPI package (never `playwright install`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KERNEL_IDLE = (
    "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
    " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
    " return k && k.connectionStatus === 'connected' && k.status === 'idle'; }"
)


def require_browser(what: str):
    """Playwright's ``sync_playwright`` for a browser test module; without Debian's Chromium or the playwright
    package the module is skipped, and under CI it fails (a real part must not go missing silently)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the machine
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(CHROMIUM):
        import pytest

        if os.environ.get("CI"):
            raise RuntimeError(f"{what} need Debian's chromium and the playwright package (.ci/run installs them)")
        pytest.skip(f"{what} need Debian's chromium and the playwright package", allow_module_level=True)
    return sync_playwright


@contextlib.contextmanager
def chromium(sync_playwright):
    """Debian's headless Chromium, launched through Playwright and closed on exit."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def write_notebook(path: Path, cells: list[str]) -> None:
    notebook = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
            for src in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(root: Path):
    """A JupyterLab server serving ``root``; yields ``(url, token)``."""
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ}
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_WORKSPACES_DIR", "JUPYTERLAB_SETTINGS_DIR"):
        (root / name.lower()).mkdir(exist_ok=True)
        env[name] = str(root / name.lower())
    # no "get notified about Jupyter news?" toast over the page
    news = root / "jupyterlab_settings_dir" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True, exist_ok=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
            f"--ServerApp.root_dir={root}",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield url, token
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


class OfflinePage:
    """A page that lets through only loopback, ``file:``, ``data:`` and ``blob:`` requests (the rest
    aborted and listed in ``blocked``)."""

    def __init__(self, browser, width: int, height: int = 1000):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.blocked: list[str] = []
        self.allowed: list[str] = []
        self.failed: list[str] = []  # allowed requests that did not load (a missing local file)
        self.page.route("**/*", self._route)
        self.page.on("requestfailed", lambda r: None if r.url in self.blocked else self.failed.append(r.url))

    def _route(self, r) -> None:
        u = r.request.url
        host = u.split("/")[2].split(":")[0] if u.startswith("http") else ""
        if host in ("127.0.0.1", "localhost") or u.startswith(("data:", "blob:", "file:")):
            self.allowed.append(u)
            r.continue_()
        else:
            self.blocked.append(u)
            r.abort()

    def wait(self, js: str, timeout_s: float = 90, arg=None) -> None:
        self.page.wait_for_function(js, arg=arg, timeout=timeout_s * 1000)

    def open_notebook(self, url: str, token: str, name: str) -> None:
        """Open ``name`` in a fresh workspace, wait for an idle kernel, run all cells (not awaited)."""
        self.page.goto(f"{url}/lab/workspaces/{uuid.uuid4().hex}/tree/{name}?token={token}")
        self.wait(KERNEL_IDLE)
        self.page.evaluate(
            "() => { window.__runStart = performance.now();"
            " window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
        )
