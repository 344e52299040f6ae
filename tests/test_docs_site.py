"""The documentation site, opened from disk in a real browser (Debian's Chromium through Playwright) with
every request that would leave the machine aborted and listed: the search finds ``detect_induction_heads``,
a tutorial page shows its figures, an API page has its sections, and no request tried to leave.

The site is the one ``make docs`` built (``site/``, as CI does before ``make test``) when it is newer than
every source it is made from; otherwise it is built here (strict, into a temporary folder).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser_lab import OfflinePage, chromium, require_browser

from docs import stamp

ROOT = Path(__file__).resolve().parents[1]

sync_playwright = require_browser("the docs' browser tests")
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    built = ROOT / "site"
    made_from = built / stamp.STAMP
    if made_from.is_file() and made_from.read_text().strip() == stamp.digest():
        return built
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def browser():
    with chromium(sync_playwright) as b:
        yield b


@pytest.fixture
def page(browser):
    p = OfflinePage(browser, 1280)
    yield p
    p.page.close()
    assert not p.blocked, f"requests tried to leave the machine: {p.blocked[:10]}"
    assert not p.failed, f"local files the page could not load: {p.failed[:10]}"


def test_search_finds_detect_induction_heads(site, page):
    page.page.goto((site / "index.html").as_uri())
    page.page.fill("input.md-search__input", "detect_induction_heads")
    page.wait(
        "() => [...document.querySelectorAll('.md-search-result__item a')]"
        ".some(a => a.href.includes('api/detect_induction_heads.html'))",
        timeout_s=30,
    )
    page.page.click(".md-search-result__item a[href*='api/detect_induction_heads.html']")
    page.wait("() => location.pathname.endsWith('api/detect_induction_heads.html')", timeout_s=15)
    text = page.page.inner_text("article")
    for section in ("threshold", "Returns", "Raises", "Examples", "arXiv"):
        assert section in text, section


def test_tutorial_page_shows_its_figures(site, page):
    page.page.goto((site / "notebooks" / "04_paper_figures.html").as_uri())
    page.wait("() => document.images.length > 0 && [...document.images].every(i => i.complete)", timeout_s=30)
    sizes = page.page.evaluate(
        "() => [...document.querySelectorAll('.jupyter-wrapper img')].map(i => [i.naturalWidth, i.naturalHeight])"
    )
    assert len(sizes) >= 3 and all(w > 100 and h > 100 for w, h in sizes), sizes
    assert "plot_score_heatmap" in page.page.inner_text("article")


def test_no_tutorial_page_reaches_out_or_misses_a_file(site, page):
    """Every rendered notebook (widget outputs included) loads with nothing from the network."""
    for name in NOTEBOOKS:
        page.page.goto((site / "notebooks" / f"{name}.html").as_uri())
        page.wait("() => [...document.images].every(i => i.complete)", timeout_s=30)
        assert page.page.inner_text("article").strip(), name


def test_every_public_name_has_a_page(site):
    import induction_nb

    missing = [n for n in induction_nb.__all__ if not (site / "api" / f"{n}.html").is_file()]
    assert not missing, missing
    for page in ("guide.html", "metrics.html", "coverage.html", "errors.html", "api/index.html"):
        assert (site / page).is_file(), page
    metrics = (site / "metrics.html").read_text()
    from induction_nb.metrics.registry import REGISTRY

    assert all(f"<code>{name}</code>" in metrics for name in REGISTRY), "a metric is missing from metrics.html"
