import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tiny_models
# the site's build code (docs/stamp.py, docs/public_names.py), which the documentation tests share
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))


def pytest_addoption(parser):
    parser.addoption(
        "--update-references",
        action="store_true",
        help="rewrite the ASCII snapshots and baseline images (make snapshots); never in a test run",
    )


def pytest_configure(config):
    import tempfile

    import references

    # remote runs keep a resume cache (engine.remote_jobs): tests and notebook kernels write it here, never
    # into the user's ~/.cache (the converted-model cache stays shared: converting SmolLM2 again costs)
    os.environ.setdefault("INDUCTION_NB_REMOTE_CACHE", tempfile.mkdtemp(prefix="induction_nb_remote_cache_"))

    references.UPDATE = bool(config.getoption("--update-references", default=False))


@pytest.fixture(scope="session")
def smollm2():
    """The real embedded SmolLM2-135M-Instruct (eager attention), loaded once per test session."""
    from induction_nb import ModelLoadError, load_model

    try:
        return load_model()
    except ModelLoadError as e:
        if os.environ.get("CI"):
            raise  # CI installs the embedded model: its absence is a failure there
        pytest.skip(str(e))
