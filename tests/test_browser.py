"""HeadExplorer in a real browser: JupyterLab 4 on 127.0.0.1 driven by Debian's Chromium through
Playwright. Opens a notebook holding the explorer, runs all cells, clicks a grid cell and changes a
control, and checks that the heatmap image changed and the labels name the chosen head. Every
request that is not to the loopback server is aborted (and counted): the page works offline.
On failure a screenshot is saved in test-artifacts/.

Needs the `chromium` Debian package and the `playwright` PyPI package (never `playwright install`);
skipped without them outside CI, a failure in CI (.ci/run installs Chromium).
"""

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

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TESTS = Path(__file__).resolve().parent
ARTIFACTS = TESTS.parent / "test-artifacts"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

if sync_playwright is None or not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("browser tests need Debian's chromium and the playwright package (.ci/run installs them)")
    pytest.skip("browser tests need Debian's chromium and the playwright package", allow_module_level=True)

NOTEBOOK_CELLS = [
    f"import sys\nsys.path.insert(0, {str(TESTS)!r})",
    "from handbuilt import HandBuiltInduction\nfrom induction_nb.widgets import HeadExplorer\n"
    "explorer = HeadExplorer(HandBuiltInduction(period=16), sequence_length=32)\nexplorer",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    notebook = {
        "cells": [{"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
                  for src in NOTEBOOK_CELLS],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    (root / "explorer.ipynb").write_text(json.dumps(notebook))
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ}
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_WORKSPACES_DIR", "JUPYTERLAB_SETTINGS_DIR"):
        (root / name.lower()).mkdir()
        env[name] = str(root / name.lower())
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", f"--ServerApp.root_dir={root}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                raise RuntimeError(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.3)
    yield url, token
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def _wait(page, js: str, what: str, timeout_s: float = 90) -> None:
    page.wait_for_function(js, timeout=timeout_s * 1000)


def test_explorer_in_jupyterlab(lab, tmp_path):
    url, token = lab
    blocked, allowed = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def route(r):
            host = r.request.url.split("/")[2] if "://" in r.request.url else ""
            if host.split(":")[0] in ("127.0.0.1", "localhost") or r.request.url.startswith(("data:", "blob:")):
                allowed.append(r.request.url)
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        try:
            page.goto(f"{url}/lab/workspaces/{uuid.uuid4().hex}/tree/explorer.ipynb?token={token}")
            _wait(page, "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                        " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                        " return k && k.connectionStatus === 'connected' && k.status === 'idle'; }", "kernel idle")
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            image = page.locator(".inb-image").first
            _wait(page, "() => { const i = document.querySelector('.inb-image');"
                        " return i && i.getAttribute('src') && i.naturalWidth > 0; }", "first heatmap", 180)
            title = page.locator(".inb-title").first
            assert "L1H0 (induction head)" in title.inner_text()
            first = image.get_attribute("src")

            page.locator(".inb-cell-L0-H0").first.click()
            _wait(page, "() => document.querySelector('.inb-title').innerText.includes('L0H0')", "title after click")
            assert image.get_attribute("src") != first
            assert "L0H0 (not detected) on 'repeated'" in title.inner_text()
            assert page.locator(".inb-layer input").first.input_value() == "0"
            assert "previous token" in page.locator(".inb-metrics").first.inner_text()
            after_click = image.get_attribute("src")

            page.locator(".inb-pattern select").first.select_option("copy")
            _wait(page, "() => document.querySelector('.inb-title').innerText.includes(\"on 'copy'\")",
                  "title after changing the pattern")
            after_pattern = image.get_attribute("src")
            assert after_pattern != after_click
            page.locator(".inb-head input").first.fill("1")
            page.locator(".inb-head input").first.press("Enter")
            _wait(page, "() => document.querySelector('.inb-title').innerText.includes('L0H1')", "title after head=1")
            assert "L0H1 (not detected) on 'copy'" in title.inner_text()
            assert image.get_attribute("src") != after_pattern
            assert page.locator(".inb-tokens .inb-tok").count() == 32
            # everything above worked with the filter active (it saw the page's own requests) and every
            # non-loopback request aborted (listed in `blocked`)
            assert any(u.startswith(url) for u in allowed)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "explorer.png"))
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "explorer-failure.png"
            page.screenshot(path=str(shot))
            print(f"screenshot: {shot}; aborted requests: {blocked[:10]}")
            raise
        finally:
            browser.close()
    print(f"aborted non-loopback requests: {len(blocked)}")
