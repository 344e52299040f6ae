"""Screenshots and render times of the HeadExplorer in a real JupyterLab + Chromium, for the notes:
SmolLM2 (30 x 9 heads, patterns captured from the model) and a fake 80 x 64 result (a 70B model's grid,
patterns kept for three heads), each at 1400 px and 800 px windows, plus the exported HTML page of the
SmolLM2 explorer opened from disk with the network blocked.

    python bench/explorer_screens.py [--out test-artifacts/screens]

Prints, per case: kernel-side construction (s), render after the cell started (s) and its part after
construction (display), a click on a head whose patterns are at hand until the heatmap is redrawn (s,
once every cell has run), and the panel geometry. Not a test (the
checked version is tests/test_browser.py); SmolLM2's construction includes its detection run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser_lab import ARGS, CHROMIUM, KERNEL_IDLE, OfflinePage, jupyterlab, write_notebook  # noqa: E402

SETUP = f"import sys, time\nsys.path.insert(0, {str(ROOT / 'tests')!r})\nfrom induction_nb import HeadExplorer"
CASES = {
    "smollm2": (
        [SETUP + "\nfrom induction_nb import load_model\nmodel = load_model()"],
        "HeadExplorer(model, sequence_length=64, n_examples=4)",
        (18, 7),
    ),  # same layer: cached
    "80x64": (
        [SETUP + "\nfrom fake_results import fake_result\nresult = fake_result(80, 64)"],
        "HeadExplorer(result)",
        (41, 9),
    ),
}


def _cells(setup: list[str], build: str, export: Path) -> list[str]:
    return setup + [
        f"t0 = time.time()\nexplorer = {build}\n"
        f"print(f'start {{t0 * 1000:.0f}} construction {{time.time() - t0:.3f}}')\nexplorer",
        f"explorer.save_html({str(export)!r})",
    ]


def _measure(page: OfflinePage, head: tuple[int, int]) -> dict:
    page.wait("() => { const e = document.querySelector('.inb-heatmap'); return e && e.dataset.drawnAt; }", 300)
    text = page.page.locator(".jp-OutputArea-output pre").filter(has_text="construction").first.inner_text()
    start, construction = re.search(r"start (\d+) construction ([\d.]+)", text).groups()
    drawn = page.page.evaluate("() => Number(document.querySelector('.inb-grid').dataset.firstDrawnEpoch)")
    # every cell run (the export cell renders PNGs: a click sent meanwhile would wait for the kernel)
    page.wait(
        "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].every("
        "p => /\\[\\d+\\]/.test(p.innerText))",
        300,
    )
    page.wait(KERNEL_IDLE, 60)
    t = page.page.evaluate(
        """([l, h]) => {
        const g = document.querySelector('.inb-grid'), c = g.querySelector('canvas'), r = c.getBoundingClientRect();
        const t = performance.now();
        c.dispatchEvent(new MouseEvent('click', {bubbles: true,
            clientX: r.left + Number(g.dataset.x0) + (h + 0.5) * Number(g.dataset.cellW),
            clientY: r.top + Number(g.dataset.y0) + (l + 0.5) * Number(g.dataset.cellH)}));
        return t; }""",
        list(head),
    )
    page.wait("(t) => Number(document.querySelector('.inb-heatmap').dataset.drawnAt) > t", 120, t)
    click = page.page.evaluate("(t) => Number(document.querySelector('.inb-heatmap').dataset.drawnAt) - t", t)
    boxes = {
        k: page.page.locator(s).first.bounding_box()
        for k, s in (("grid", ".inb-grid-canvas"), ("heatmap", ".inb-heatmap canvas"), ("view", ".inb-view-panel"))
    }
    render = (drawn - int(start)) / 1000
    return {
        "construction_s": float(construction),
        "render_s": render,
        "display_s": render - float(construction),
        "click_s": click / 1000,
        "boxes": {k: {a: round(v) for a, v in b.items()} for k, b in boxes.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "screens")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp())
    for name, (setup, build, _) in CASES.items():
        write_notebook(root / f"{name}.ipynb", _cells(setup, build, args.out / f"{name}.html"))
    with jupyterlab(root) as (url, token), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for name, (_, _, head) in CASES.items():
            for width in (1400, 800):
                page = OfflinePage(browser, width)
                page.open_notebook(url, token, f"{name}.ipynb")
                result = _measure(page, head)
                time.sleep(0.5)
                page.page.screenshot(path=str(args.out / f"{name}-{width}.png"))
                page.page.locator(".inb-heatmap").first.scroll_into_view_if_needed()
                page.page.screenshot(path=str(args.out / f"{name}-{width}-heatmap.png"))
                print(f"{name} at {width} px: {result}; aborted requests: {len(page.blocked)}")
                page.page.close()
            page = OfflinePage(browser, 1400)
            page.page.goto((args.out / f"{name}.html").as_uri())
            page.wait("() => { const g = document.querySelector('.inb-grid'); return g && g.dataset.drawnAt; }", 30)
            ok = page.page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
            page.page.screenshot(path=str(args.out / f"{name}-export.png"), full_page=True)
            print(
                f"{name} export: {len(page.page.query_selector_all('img'))} heatmaps, all decoded: {ok}; "
                f"requests aborted (network blocked): {len(page.blocked)}"
            )
            page.page.close()
        browser.close()
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
