"""MkDocs hooks: the pages the site makes from the code and the data, so that none is copied by hand.

- ``api/<name>.md``: one page per public name (``induction_nb.__all__``), rendered by mkdocstrings from its
  docstring; the original spec's names that are aliases get a page that points at the one they alias.
- ``api/index.md``: the public names by group, each with its docstring's first line.
- ``metrics.md``: every metric of the metric registry (name, label, description, source, sign and unit), with
  the definition its catalogue module gives: the registry is the one source.
- ``coverage.md``: the architecture coverage table, from the sweep's JSON (``docs/data/sweep.json``, written
  by ``make sweep``; the build fails if it is missing).
- ``errors.md``: what each error means and how to fix it, from the error classes' docstrings (the intro is
  ``docs/errors_intro.md``).
- ``notebooks/*.ipynb``: the committed notebooks, rendered with their outputs by mkdocs-jupyter (never
  executed here: ``make test`` checks those outputs with nbval).
- the navigation, with those pages in it.

The build fails (``BuildError``) when a public name has no docstring or cannot be found.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import sys
import tempfile
from html import escape
from pathlib import Path

from mkdocs.exceptions import BuildError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SWEEP = ROOT / "docs" / "data" / "sweep.json"
sys.path.insert(0, str(ROOT))

import induction_nb  # noqa: E402
from docs.public_names import identifier, own_doc  # noqa: E402
from induction_nb.metrics.registry import REGISTRY  # noqa: E402

GROUP_TITLES = {
    "engine": "Models and capture",
    "probes": "Probes and texts",
    "metrics": "Metrics",
    "analysis": "Detection and analysis",
    "causal": "Causal evidence",
    "draw": "Views: text and figures",
    "explorer": "The HeadExplorer",
    "errors": "Errors",
}
PUBLIC = set(induction_nb.__all__)
SECTIONS = ("Args", "Attributes", "Returns", "Raises", "Examples")
# a full stop that ends a sentence: a capital follows ("et al. 2024", "e.g. ``x``" and "1 .. 4" do not end one)
SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)\.\s+(?=[A-Z`])")
# inline code that is exactly a public name (optionally called: ``name()``), not already inside a link
CODE_NAME = re.compile(r"(?<!\">)<code>([A-Za-z_][A-Za-z0-9_]*)(?:\(\))?</code>(?!</a>)")
# the original spec's names, kept working as aliases of the current ones
ALIASES = {
    "plot_attention_pattern": "text_attention_pattern",
    "plot_head_scores": "text_head_scores",
    "plot_induction_stripe": "text_induction_stripe",
    "create_analysis_report": "text_report",
}


def _summary(name: str) -> str:
    """The first sentence of a public name's docstring (the API index's one line)."""
    first = inspect.cleandoc(own_doc(name)).split("\n\n")[0].replace("\n", " ")
    return SENTENCE_END.split(first)[0].rstrip(".") + "."


def _check_documented() -> None:
    missing = [name for name in induction_nb.__all__ if not own_doc(name).strip()]
    if missing:
        raise BuildError(f"public names without a docstring: {', '.join(sorted(missing))}")


def api_page(name: str) -> str:
    group = induction_nb._EXPORTS[name]
    if name in ALIASES:
        target = ALIASES[name]
        return (
            f"# {name}\n\n`from induction_nb import {name}` · the original spec's name\n\n"
            f"The same function as [`{target}`]({target}.md), kept under the original spec's name "
            f"(`induction_head_detector.{name}` too).\n"
        )
    ident = identifier(name)
    where = ident.rsplit(".", 1)[0] if "." in ident else ident
    page = (
        f"# {name}\n\n`from induction_nb import {name}` · group `{group}` ({GROUP_TITLES[group]}) · "
        f"defined in `{where}`\n\n::: {ident}\n    options:\n      show_root_heading: false\n"
    )
    if "module docstring" in own_doc(name):  # the text it points at, shown here (not rendered elsewhere)
        page += f"\n## The module docstring (`{where}`)\n\n" + _markdown(sys.modules[where].__doc__ or "") + "\n"
    return page


def api_index() -> str:
    lines = [
        "# API reference\n",
        "Every public name, importable from `induction_nb` (`from induction_nb import detect_induction_heads`);"
        " `import induction_nb` loads neither torch nor nnsight until a name is used. Terminal views are "
        "`text_*`, matplotlib figures `plot_*`. The original spec's module `induction_head_detector` "
        "exports the same objects under its names.\n",
    ]
    for group, names in induction_nb._GROUPS.items():
        lines += [f"\n## {GROUP_TITLES[group]}\n", "| name | what it is |", "|---|---|"]
        lines += [f"| [`{n}`]({n}.md) | {_summary(n)} |" for n in names]
    return "\n".join(lines) + "\n"


def metrics_page() -> str:
    lines = [
        "# Metrics\n",
        "Every score a head can carry, in display order, from the metric registry "
        "(`induction_nb.metrics.registry`): this page is made from it at build time. The name is the key "
        "everywhere (`HeadScore.values`, JSON, DataFrame columns, `get_top_heads(metric=...)`). "
        "A value is NaN where it is undefined (no scored query in any sequence, or a layer without "
        "attention) and shows as `-` in tables.\n",
    ]
    seen_modules: dict[str, str] = {}
    for name, metric in sorted(REGISTRY.items(), key=lambda kv: (kv[1].order, kv[0])):
        module = sys.modules[type(metric).__module__]
        kind = "signed" + (f", {metric.unit}" if metric.unit else "") if metric.signed else "a share in [0, 1]"
        lines += [
            f"\n## {metric.label} (`{name}`)\n",
            f"{metric.description[0].upper()}{metric.description[1:]}.\n",
            f"- **source**: {metric.source or '-'}",
            f"- **values**: {kind}; header `{metric.short}`; "
            + ("in per-head tables" if metric.table else "in JSON, DataFrames, the explorer and figures"),
        ]
        doc = inspect.cleandoc(module.__doc__ or "")
        if module.__name__ in seen_modules:
            lines.append(f"\nDefined with `{seen_modules[module.__name__]}` above.")
        elif doc:
            seen_modules[module.__name__] = name
            lines.append("\n" + doc)
    return "\n".join(lines) + "\n"


def coverage_page() -> str:
    if not SWEEP.is_file():
        raise BuildError(f"{SWEEP.relative_to(ROOT)} is missing: run `make sweep` to measure it")
    data = json.loads(SWEEP.read_text())
    head = ("parity", "refused", "mismatch", "crash", "no_reference", "unsupported")
    lines = [
        "# Architecture coverage\n",
        f"Measured by `make sweep` (`bench/arch_sweep.py`) with transformers {data['transformers']}"
        + (f" on {data['date']}" if data.get("date") else "")
        + ": every causal-LM, masked-LM and seq-to-seq architecture the installed transformers ships, a "
        "tiny random-config model each, attention captured by induction_nb against eager "
        "`output_attentions=True`. *parity*: equal; *refused*: a clear error, never a silent wrong "
        "pattern; *no_reference*: eager returns no attention weights to compare with; *unsupported*: "
        "the architecture cannot be built from a tiny config. Coverage = parity / (parity + refused + "
        "mismatch + crash). This page is generated from the sweep's JSON at build time.\n",
        "| family / backend | " + " | ".join(head) + " | coverage |",
        "|---" * (len(head) + 2) + "|",
    ]
    for key, c in data["table"].items():
        cov = "-" if c.get("coverage") is None else f"{c['coverage']:.1%}"
        lines.append(f"| {key} | " + " | ".join(str(c.get(k, 0)) for k in head) + f" | {cov} |")
    others = [r for r in data["rows"] if r["outcome"] != "parity"]
    if others:
        lines += [
            "\n## Not at parity, and why\n",
            "| architecture | family | backend | outcome | why |",
            "|---|---|---|---|---|",
        ]
        for r in sorted(others, key=lambda r: (r["outcome"], r["model_type"], r["backend"])):
            why = str(r.get("why", "")).replace("|", "\\|").replace("\n", " ")[:200]
            fam = r["family"] + (f" ({r['stack']})" if r.get("stack") else "")
            lines.append(f"| `{r['model_type']}` | {fam} | {r['backend']} | {r['outcome']} | {why} |")
    return "\n".join(lines) + "\n"


def _markdown(doc: str) -> str:
    """A docstring as page text (for pages not rendered by mkdocstrings): its Google sections as a bold title
    with a list (``Args:``, ``Attributes:``...) and its ``Examples:`` (doctests) as a code block."""
    out, section = [], None
    for line in inspect.cleandoc(doc).splitlines():
        title = line.strip().rstrip(":")
        if line.endswith(":") and not line.startswith(" ") and title in SECTIONS:
            section = title
            out += ["", f"**{title}**", ""] + (["```pycon"] if title == "Examples" else [])
        elif section == "Examples":
            out.append(line[4:] if line.startswith("    ") else line)
        elif section and line.startswith("    ") and not line.startswith("     "):
            out.append("- " + line.strip())  # an item: "name: what it is"
        else:
            out.append(("  " + line.strip()) if section and line.strip() else line)
    if section == "Examples":
        out.append("```")
    return "\n".join(out)


def errors_page() -> str:
    lines = [(ROOT / "docs" / "errors_intro.md").read_text()]
    for name in induction_nb._GROUPS["errors"]:
        cls = getattr(induction_nb, name)
        bases = ", ".join(f"`{b.__name__}`" for b in cls.__bases__)
        lines += [
            f"\n## {name}\n",
            f"*subclasses {bases}* · [API page](api/{name}.md)\n",
            _markdown(cls.__doc__),
        ]
    return "\n".join(lines) + "\n"


def _notebook_title(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    first = "".join(cells[0]["source"]).splitlines()[0] if cells else path.stem
    # up to the first ':' or '?', a '?' kept
    return re.match(r"[^:?]*\??", first.lstrip("# ")).group(0).strip() or path.stem


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def on_config(config):
    _check_documented()
    nav = list(config.nav or [])
    tutorials = [{f"{p.stem[:2]} · {_notebook_title(p)}": f"notebooks/{p.name}"} for p in _notebooks()]
    api = [{"Overview": "api/index.md"}]
    for group, names in induction_nb._GROUPS.items():
        api.append({GROUP_TITLES[group]: [{n: f"api/{n}.md"} for n in names]})
    for i, entry in enumerate(nav):
        key = next(iter(entry)) if isinstance(entry, dict) else None
        if key == "Tutorials":
            nav[i] = {"Tutorials": tutorials}
        elif key == "API reference":
            nav[i] = {"API reference": api}
    config.nav = nav
    return config


def on_page_content(html, page, config, files):
    """Link every inline ``<code>name</code>`` of a public name to its API page (docstrings write names in
    double backticks; mkdocstrings renders them as code, not links). Code blocks are left alone."""
    here = page.file.dest_uri
    depth = here.count("/")

    def link(match: re.Match) -> str:
        name = match.group(1)
        if name not in PUBLIC or here == f"api/{name}.html":
            return match.group(0)
        return f'<a href="{"../" * depth}api/{name}.html">{match.group(0)}</a>'

    # headings keep their text (a metric's key can also be a function's name: concept_induction)
    parts = re.split(r"(<h[1-6][^>]*>.*?</h[1-6]>)", html, flags=re.S)
    return "".join(p if p.startswith("<h") else CODE_NAME.sub(link, p) for p in parts)


# before the plugins' own on_files, so that mkdocs-jupyter sees the notebooks added here
@event_priority(100)
def on_files(files, config):
    generated = {f"api/{n}.md": api_page(n) for n in induction_nb.__all__}
    generated["api/index.md"] = api_index()
    generated["metrics.md"] = metrics_page()
    generated["coverage.md"] = coverage_page()
    generated["errors.md"] = errors_page()
    for path, content in generated.items():
        files.append(File.generated(config, path, content=content))
    static = Path(tempfile.mkdtemp(prefix="induction-nb-docs-"))
    _TEMPORARY.append(static)
    (static / "notebooks").mkdir()
    for nb in _notebooks():
        (static / "notebooks" / nb.name).write_text(json.dumps(static_notebook(nb)))
        # a plain File rather than a generated one, which mkdocs-jupyter cannot wrap
        path = f"notebooks/{nb.name}"
        files.append(File(path, src_dir=str(static), dest_dir=config.site_dir, use_directory_urls=False))
    return files


_TEMPORARY: list[Path] = []  # the static notebooks' folder of this build
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    "<p><em>The widget, live in Jupyter (this page is static): below, its text form; the HeadExplorer's "
    "<code>save_html(path)</code> writes an offline page of it.</em></p><pre>{}</pre>"
)


def static_notebook(path: Path) -> dict:
    """The committed notebook without its widget state: that state makes nbconvert load the widget manager
    from a CDN, and a static page cannot run a widget anyway. A widget's output keeps its text and, for the
    HeadExplorer, says how to get it offline; everything else is as committed."""
    nb = json.loads(path.read_text())
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if data.pop(WIDGET, None) is not None and "HeadExplorer" in "".join(cell["source"]):
                data["text/html"] = WIDGET_NOTE.format(escape("".join(data.get("text/plain", ""))))
    return nb


def on_post_build(config):
    """Every tutorial became a page (a notebook left as a plain file would be a silent gap in the site)."""
    while _TEMPORARY:
        shutil.rmtree(_TEMPORARY.pop(), ignore_errors=True)
    site = Path(config.site_dir)
    missing = [nb.name for nb in _notebooks() if not (site / "notebooks" / f"{nb.stem}.html").is_file()]
    if missing:
        raise BuildError(f"notebooks not rendered by mkdocs-jupyter: {', '.join(missing)}")
