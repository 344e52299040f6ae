"""What a built site was made from: one digest of its sources and of the packages that render them.

``make docs`` builds into ``site.partial/``, writes this digest there (``python docs/stamp.py site.partial``)
and only then moves it to ``site/``: a build that failed (strict mode aborts after writing its pages) never
replaces the site or carries a stamp. ``tests/test_docs_site.py`` uses ``site/`` only when its stamp equals
the digest of the sources as they are now; otherwise it builds its own.
"""

from __future__ import annotations

import hashlib
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# what the site is made from (not what a test run writes, such as notebooks/figures/)
SOURCES = ("mkdocs.yml", "docs/**/*", "induction_nb/**/*.py", "notebooks/[0-9][0-9]_*.ipynb")
RENDERERS = ("mkdocs", "mkdocs-material", "mkdocstrings", "mkdocstrings-python", "griffelib", "mkdocs-jupyter")
STAMP = ".build-stamp"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def digest(root: Path = ROOT) -> str:
    """sha256 of every source file's path and bytes (a deleted file changes it too) and the renderers' versions."""
    h = hashlib.sha256()
    files = sorted(
        {p for pattern in SOURCES for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts}
    )
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for package in RENDERERS:
        h.update(f"{package}=={_version(package)}\n".encode())
    return h.hexdigest()


if __name__ == "__main__":
    (Path(sys.argv[1]) / STAMP).write_text(digest() + "\n")
