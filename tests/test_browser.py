"""HeadExplorer and the HTML export as a person sees them: JupyterLab 4 on 127.0.0.1 driven by Debian's
Chromium through Playwright (tests/browser_lab.py), every non-loopback request aborted and counted.

* the explorer on a hand-built model: a click on the grid canvas, the pattern dropdown and the head box
  change the heatmap and the labels;
* a fake 80 x 64 result (a 70B model's grid) at 1400 px and 800 px windows: render time after the cell
  runs (< 2 s), kernel-side construction (< 1 s), a click on a head with kept patterns (< 0.5 s until
  the heatmap is redrawn), geometry (every head column inside the viewport, the heatmap's cells square
  and unscaled, the two panels side by side at 1400 px and stacked at 800 px, never overlapping);
* the exported HTML of a real SmolLM2 scan opened from disk with the network blocked: the grid draws,
  every embedded heatmap loads, a click on a head shows its panel.
Screenshots go to test-artifacts/ (kept on success too: they are what the closing notes describe).

Needs the `chromium` Debian package and the `playwright` PyPI package (never `playwright install`);
skipped without them outside CI, a failure in CI (.ci/run installs Chromium).
"""

import contextlib
import re
from pathlib import Path

import pytest
from browser_lab import OfflinePage, chromium, jupyterlab, require_browser, write_notebook

TESTS = Path(__file__).resolve().parent
ARTIFACTS = TESTS.parent / "test-artifacts"

sync_playwright = require_browser("browser tests")

SETUP = f"import sys, time\nsys.path.insert(0, {str(TESTS)!r})"
HANDBUILT = [
    SETUP,
    "from handbuilt import HandBuiltInduction\nfrom induction_nb import HeadExplorer\n"
    "explorer = HeadExplorer(HandBuiltInduction(period=16), sequence_length=32)\nexplorer",
]
# the second cell prints the kernel's clock when it starts, so render time counts from the cell's run
FAKE = [
    SETUP
    + "\nfrom fake_results import fake_result\nfrom induction_nb import HeadExplorer\nresult = fake_result(80, 64)",
    "t0 = time.time()\nexplorer = HeadExplorer(result)\n"
    "print(f'start {t0 * 1000:.0f} construction {time.time() - t0:.3f}')\nexplorer",
]
WIDE = [
    SETUP + "\nfrom fake_results import fake_result\nfrom induction_nb import HeadExplorer\n"
    "HeadExplorer(fake_result(1, 200, kept=((0, 150),)))"
]
DRAWN = "(sel) => { const e = document.querySelector(sel); return e && e.dataset.drawnAt; }"
TITLE_HAS = "(text) => { const t = document.querySelector('.inb-title'); return t && t.innerText.includes(text); }"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    write_notebook(root / "handbuilt.ipynb", HANDBUILT)
    write_notebook(root / "fake.ipynb", FAKE)
    write_notebook(root / "wide.ipynb", WIDE)
    with jupyterlab(root) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    with chromium(sync_playwright) as b:
        yield b


def _shot(page: OfflinePage, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.page.screenshot(path=str(path))
    return path


@contextlib.contextmanager
def _page(browser, width: int, name: str):
    """An offline page ``width`` px wide; on failure its screenshot (``{name}-failure.png``) and the
    requests it had aborted are reported; closed either way."""
    page = OfflinePage(browser, width)
    try:
        yield page
    except Exception:
        print(f"screenshot: {_shot(page, f'{name}-failure.png')}; aborted requests: {page.blocked[:10]}")
        raise
    finally:
        page.page.close()


def _click_cell(page: OfflinePage, layer: int, head: int) -> float:
    """Click the grid canvas at ``(layer, head)`` inside the page; returns the click's performance.now()."""
    return page.page.evaluate(
        """([l, h]) => {
        const g = document.querySelector('.inb-grid'), c = g.querySelector('canvas'), r = c.getBoundingClientRect();
        const x = r.left + Number(g.dataset.x0) + (h + 0.5) * Number(g.dataset.cellW);
        const y = r.top + Number(g.dataset.y0) + (l + 0.5) * Number(g.dataset.cellH);
        const t = performance.now();
        c.dispatchEvent(new MouseEvent('click', {clientX: x, clientY: y, bubbles: true}));
        return t; }""",
        [layer, head],
    )


def _box(page: OfflinePage, selector: str) -> dict:
    return page.page.locator(selector).first.bounding_box()


def test_explorer_in_jupyterlab(lab, browser):
    url, token = lab
    with _page(browser, 1400, "explorer-handbuilt") as page:
        page.open_notebook(url, token, "handbuilt.ipynb")
        page.wait(DRAWN, 180, ".inb-heatmap")
        page.wait(TITLE_HAS, 30, "L1H0 (induction head)")
        first = page.page.evaluate("() => document.querySelector('.inb-heatmap').dataset.drawnAt")
        _click_cell(page, 0, 0)
        page.wait(TITLE_HAS, 30, "L0H0 (not detected): attention on 'repeated'")
        page.wait("(t) => document.querySelector('.inb-heatmap').dataset.drawnAt !== t", 30, first)
        assert page.page.locator(".inb-layer input").first.input_value() == "0"
        assert "previous token" in page.page.locator(".inb-metrics").first.inner_text()
        page.page.locator(".inb-pattern select").first.select_option("copy")
        page.wait(TITLE_HAS, 30, "attention on 'copy'")
        page.page.locator(".inb-head input").first.fill("1")
        page.page.locator(".inb-head input").first.press("Enter")
        page.wait(TITLE_HAS, 30, "L0H1 (not detected): attention on 'copy'")
        assert page.page.locator(".inb-tokens .inb-tok").count() == 32
        assert any(u.startswith(url) for u in page.allowed), "the request filter saw the page's own requests"
        _shot(page, "explorer-handbuilt-1400.png")


@pytest.mark.parametrize("width", [1400, 800])
def test_80_by_64_heads_render_fast_and_fit(lab, browser, width):
    url, token = lab
    with _page(browser, width, f"explorer-80x64-{width}") as page:
        page.open_notebook(url, token, "fake.ipynb")
        page.wait(DRAWN, 180, ".inb-heatmap")
        page.wait(DRAWN, 30, ".inb-grid")
        printed = page.page.locator(".jp-OutputArea-output pre").filter(has_text="construction").first.inner_text()
        start, construction = re.search(r"start (\d+) construction ([\d.]+)", printed).groups()
        drawn = page.page.evaluate("() => Number(document.querySelector('.inb-grid').dataset.firstDrawnEpoch)")
        render = (drawn - int(start)) / 1000
        t_click = _click_cell(page, 41, 9)
        page.wait(TITLE_HAS, 10, "L41H9")
        page.wait("(t) => Number(document.querySelector('.inb-heatmap').dataset.drawnAt) > t", 10, t_click)
        click = (
            page.page.evaluate("(t) => Number(document.querySelector('.inb-heatmap').dataset.drawnAt) - t", t_click)
            / 1000
        )
        print(
            f"{width} px: rendered {render:.2f} s after the cell started (construction {construction} s); "
            f"click to redrawn heatmap {click:.3f} s"
        )
        assert render < 2.0 and float(construction) < 1.0 and click < 0.5

        grid, view = _box(page, ".inb-grid-panel"), _box(page, ".inb-view-panel")
        canvas = _box(page, ".inb-grid-canvas")
        cell_w = page.page.evaluate("() => Number(document.querySelector('.inb-grid').dataset.cellW)")
        assert canvas["x"] >= 0 and canvas["x"] + canvas["width"] <= width, "every head column inside the viewport"
        assert cell_w >= 3 and canvas["width"] >= 64 * cell_w
        assert canvas["x"] + canvas["width"] <= grid["x"] + grid["width"] + 1, "the grid is not clipped by its panel"
        if width >= 1400:
            assert view["x"] >= grid["x"] + grid["width"], "side by side at 1400 px"
        else:
            assert view["y"] >= grid["y"] + grid["height"], "stacked at 800 px"
        heat = page.page.evaluate("""() => {
            const e = document.querySelector('.inb-heatmap'), c = e.querySelector('canvas');
            return {css: c.getBoundingClientRect().width, px: c.width / window.devicePixelRatio,
                    side: Number(e.dataset.side), cells: Number(e.dataset.cells)}; }""")
        assert abs(heat["css"] - heat["px"]) < 1, "the heatmap is shown at its own size (no stretching)"
        assert heat["cells"] == 65 and heat["side"] >= 150
        _shot(page, f"explorer-80x64-{width}.png")
        page.page.locator(".inb-heatmap").first.scroll_into_view_if_needed()
        _shot(page, f"explorer-80x64-{width}-heatmap.png")
        assert any(u.startswith(url) for u in page.allowed)


def test_200_heads_in_a_row_fit_and_a_click_hits_its_head(lab, browser):
    """Below 3 px a head the cells become fractional: every column inside the panel, no CSS squeeze, and
    a click lands on the head drawn under the pointer."""
    url, token = lab
    with _page(browser, 800, "explorer-wide") as page:
        page.open_notebook(url, token, "wide.ipynb")
        page.wait(DRAWN, 180, ".inb-heatmap")
        page.wait(TITLE_HAS, 30, "L0H150")
        _click_cell(page, 0, 37)
        page.wait(TITLE_HAS, 10, "L0H37 ")
        grid, canvas = _box(page, ".inb-grid-panel"), _box(page, ".inb-grid-canvas")
        size = page.page.evaluate(
            "() => { const c = document.querySelector('.inb-grid-canvas');"
            " return [c.getBoundingClientRect().width, c.width / window.devicePixelRatio]; }"
        )
        assert canvas["x"] + canvas["width"] <= grid["x"] + grid["width"] + 1 and canvas["x"] + canvas["width"] <= 800
        assert abs(size[0] - size[1]) < 1, "drawn at its own size, not squeezed by CSS"


@pytest.mark.slow
def test_exported_html_of_a_smollm2_scan_opens_offline(browser, tmp_path):
    """``result.to_html`` of a real scan, opened from disk in Chromium with every request but the file
    itself aborted: the grid is drawn, every heatmap image decodes, a click shows that head's panel."""
    from induction_nb import InductionHeadDetector, load_model

    model = load_model()
    detector = InductionHeadDetector(model, batch_size=4)
    top = [(s.layer, s.head) for s in detector.detect(sequence_length=32).get_top_heads(3)]
    result = detector.detect(sequence_length=32, keep_patterns=top)
    path = result.to_html(tmp_path / "smollm2.html", model)
    with _page(browser, 1400, "export-smollm2") as page:
        page.page.goto(path.as_uri())
        page.wait(DRAWN, 30, ".inb-grid")
        images = page.page.evaluate("() => [...document.images].map(i => i.complete && i.naturalWidth > 0)")
        assert len(images) == 3 and all(images), images
        l, h = top[1]
        _click_cell(page, l, h)
        page.wait(f"() => !document.getElementById('inb-panel-L{l}-H{h}').hidden", 10)
        assert page.page.locator(".inb-panel:not([hidden])").count() == 1
        _click_cell(page, 0, 0)  # not exported: the page says so instead of showing a stale panel
        page.wait("() => !document.getElementById('inb-no-panel').hidden", 10)
        assert page.blocked == [], f"the page asked for {page.blocked[:5]}"
        _shot(page, "export-smollm2.png")
