"""``python -m induction_nb``: the main job prints the detection summary; bad input exits 2 in one line."""

import subprocess
import sys

from induction_nb.__main__ import main
from tiny_models import make_hf


def test_main_job_on_a_saved_model(tmp_path, capsys):
    make_hf("gpt2", "eager").save_pretrained(tmp_path)
    assert main([str(tmp_path), "--seq-len", "32", "--batch", "2", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "2 layers x 4 heads" in out and "induction heads (overall >= 0.40): 0" in out
    assert len([l for l in out.splitlines() if l.startswith((" L", "*L"))]) == 3


def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path):
    run = subprocess.run([sys.executable, "-m", "induction_nb", str(tmp_path / "missing"), "--threshold", "0.5"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "does not exist" in run.stderr
