"""The repository's set-up promises: environment.yml in sync, no import side effects, the original
import path, the README's commands wired into CI."""

import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_environment_yml_matches_requirements():
    text = (ROOT / "environment.yml").read_text()
    pip_section = text.split("- pip:", 1)[1]
    listed = [m.group(1).strip() for m in re.finditer(r"^\s+- (\S.*)$", pip_section, re.M)]
    assert listed == _requirements()
    assert re.search(r"^\s+- python=3\.11$", text, re.M) and re.search(r"^\s+- pip$", text, re.M)


def test_pyproject_dependencies_are_in_requirements():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert set(deps) <= set(_requirements())
    assert "nnsight>=0.8.1,<0.9" in deps


def test_constraints_pin_the_cpu_torch():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().splitlines()


def test_import_has_no_heavy_side_effects():
    code = "import sys, induction_nb; print('torch' in sys.modules, 'nnsight' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_original_import_path():
    import induction_head_detector
    import induction_nb

    assert induction_head_detector.capture_attention is induction_nb.capture_attention
    assert set(induction_nb.__all__) <= set(dir(induction_head_detector))


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make scan" in readme and "make test" in readme
    assert "make scan" in ci and "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert "-m pytest notebooks/ tests/ -v -n 2" in makefile and "--nbval-lax" in makefile
    assert "torch==2.13.0" in makefile and "make sweep" in ci


def test_wheel_ships_the_explorer_es_modules(tmp_path):
    """The HeadExplorer's canvas widgets read _static/*.js and *.css at run time: an installed (not
    editable) package must contain them, or the explorer is blank."""
    import shutil
    import zipfile

    src = tmp_path / "src"  # a copy: setuptools writes build/ and *.egg-info next to the sources
    shutil.copytree(ROOT / "induction_nb", src / "induction_nb", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "induction_head_detector.py"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    names = zipfile.ZipFile(next(tmp_path.glob("induction_nb-*.whl"))).namelist()
    for name in ("canvas_common.js", "grid.js", "heatmap.js", "explorer.css"):
        assert f"induction_nb/draw/_static/{name}" in names
