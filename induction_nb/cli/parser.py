"""The command line's parser: one sub-command each for ``scan``, ``show``, ``retrieval`` and ``report``, their
shared option groups (the model, the views, the exports), and errors as one line (exit status 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["COMMANDS", "Parser", "Usage", "build_parser"]


COMMANDS = ("scan", "show", "report", "retrieval")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints the usage too)
        raise Usage(f"{self.prog}: {message}")


class Usage(Exception):
    pass


def model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", nargs="?", default=None, help="model folder, .gguf file or hub id (default: embedded SmolLM2)"
    )
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument(
        "--attn",
        default=None,
        choices=["eager", "sdpa"],
        help="attention backend (default eager; sdpa beyond 2048 tokens, where eager holds every pattern)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the probe tokens and the bootstrap (default 0)")
    p.add_argument("--remote", action="store_true", help="run on NDIF (MODEL is then a served model's repo id)")
    p.add_argument("--host", help="remote host URL (default: nnsight's configured NDIF host)")


def view_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--width", type=int, default=80, help="maximum line width (default 80, minimum 40)")
    p.add_argument(
        "--charset", default="ascii", choices=["ascii", "unicode"], help="shading characters (default ascii)"
    )


def result_args(p: argparse.ArgumentParser) -> None:
    """Exports, report length, progress and view options of a command that produces a result."""
    p.add_argument("--json", type=Path, help="write the result as JSON")
    p.add_argument("--csv", type=Path, help="write one row per head as CSV")
    p.add_argument(
        "--html",
        type=Path,
        help="write one self-contained HTML page (grid, top heads' heatmaps, report) that opens offline in any browser",
    )
    p.add_argument("--brief", action="store_true", help="the short report (no metric table, map, settings)")
    p.add_argument("--top", type=int, default=10, help="heads listed in the report (default 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    view_args(p)


def build_parser() -> Parser:
    p = Parser(prog="induction-nb", description="Find and analyse induction heads.")
    sub = p.add_subparsers(dest="command", parser_class=Parser)
    _scan_parser(sub.add_parser("scan", help="detect induction heads and print the report"))
    _show_parser(sub.add_parser("show", help="one head's attention pattern and stripe"))
    _retrieval_parser(sub.add_parser("retrieval", help="find retrieval heads (needle in a haystack, Wu et al. 2024)"))
    _report_parser(sub.add_parser("report", help="print the report of a saved scan (JSON)"))
    return p


def _scan_parser(scan: argparse.ArgumentParser) -> None:
    model_args(scan)
    scan.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="on the overall score (default 0.4; with --text 0.1, on the prefix-matching score)",
    )
    scan.add_argument(
        "--effects",
        choices=["exact", "attribution", "atp*"],
        help="add every head's ablation effect to the report: exact, or attribution patching (one "
        "forward and backward, the top 10 verified exactly), plain or AtP* (query/key routes recomputed)",
    )
    scan.add_argument(
        "--text",
        type=Path,
        help="score natural repeats in your documents instead of probes: a .txt, "
        ".md or .jsonl file, or a folder of them",
    )
    scan.add_argument(
        "--seq-len",
        type=int,
        default=None,
        help="tokens per sequence, BOS not counted (default 128, or what the model's vocabulary and positions allow)",
    )
    scan.add_argument("--batch", type=int, default=8, help="sequences per pattern (default 8)")
    scan.add_argument("--patterns", default="repeated", help="comma-separated periodic patterns (default repeated)")
    scan.add_argument("--figures", type=Path, help="write paper figures (PDF + PNG) into this folder")
    result_args(scan)


def _show_parser(show: argparse.ArgumentParser) -> None:
    model_args(show)
    show.add_argument("--layer", type=int, required=True)
    show.add_argument("--head", type=int, required=True)
    show.add_argument("--pattern", default="repeated", help="probe pattern (default repeated)")
    show.add_argument("--seq-len", type=int, default=32, help="tokens, BOS not counted (default 32)")
    show.add_argument("--window", help="START:STOP positions to show (default: all, downsampled to the width)")
    view_args(show)


def _retrieval_parser(retrieval: argparse.ArgumentParser) -> None:
    model_args(retrieval)
    retrieval.add_argument(
        "--lengths", default="1024,2048", help="context lengths, comma-separated (default 1024,2048)"
    )
    retrieval.add_argument("--depths", default="0.1,0.5,0.9", help="needle depths in [0, 1] (default 0.1,0.5,0.9)")
    retrieval.add_argument("--needle-length", type=int, default=8, help="needle tokens to copy (default 8)")
    result_args(retrieval)


def _report_parser(report: argparse.ArgumentParser) -> None:
    report.add_argument("path", type=Path)
    report.add_argument("--brief", action="store_true")
    report.add_argument("--top", type=int, default=10)
    report.add_argument(
        "--html",
        type=Path,
        help="also write the scan as a self-contained HTML page (grid and report; "
        "no heatmaps: a saved scan holds no patterns)",
    )
    view_args(report)
