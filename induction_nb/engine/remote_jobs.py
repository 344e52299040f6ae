"""Remote work that waits in NDIF's queue once per scan, stays under a job budget, and resumes after a failure.

A scan's chunks travel together: ``run_chunks`` bundles as many chunks into one job as fit the job budget
(``RemoteConfig.max_job_seconds`` and ``max_job_bytes``, or a fixed ``chunks_per_job``), and each job is ONE
request: an nnsight ``model.session`` holding one trace per chunk (the bodies are in ``remote_sessions``).
NDIF's queue is waited in once per job, not once per chunk. Every finished chunk's result goes into a
``ResultCache`` on disk, so a rerun after a failure, a timeout or a closed notebook sends only the chunks
that are missing, and gives the same result as a run that never stopped (``torch.save`` keeps tensors
exactly). The caller's tqdm bar says where the work is: ``cached 6/10``, ``job 1/2 queued``, ``chunk 7/10``.

Budget: a chunk's server time is estimated as 2 x parameters x tokens / ``ASSUMED_FLOPS`` until a job of
the same tool on the same model and host has run in this process; from then on it is that job's measured
running time per chunk. A chunk's bytes: the caller's estimate until a job has returned, then what it
returned per chunk. A chunk that alone exceeds the budget runs alone (warned).

Cache: one file per chunk under ``cache_root(config)``, named by the SHA-256 of its identity: format, package
version, a digest of induction_nb's source, host, model key (which holds the revision) and, for a local
folder, its files' names, sizes and times, the request's env, the tool, the settings that change the result
(the caller's: seed, lengths, batch and chunk sizes, metrics and their code...), the chunk index and a
digest of the chunk's input tokens. The API key is never part of it; the file holds only the identity's
hash (never the host or env in clear). An entry that does not load, or whose stored hash differs, is
ignored and recomputed. Limits: the cache trusts that a model
key names fixed weights (a key without a revision that the server re-deploys with new weights keeps
returning the old results: pass ``RemoteConfig(resume=False)`` or clear the folder); nothing is evicted.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, RemoteExecutionError, warn_user
from .engine import Engine
from .remote import RemoteConfig, local_folder

__all__ = [
    "ResultCache",
    "Budget",
    "JobProgress",
    "run_chunks",
    "chunk_seconds",
    "cache_root",
    "digest",
    "code_digest",
    "MARK",
]

# 2: detect chunks hold per-head sums and counts for the metrics the bootstrap does not resample
# 3: the identity holds induction_nb's source digest and a local folder's fingerprint; entries store its hash
FORMAT = 3
CACHE_ENV = "INDUCTION_NB_CACHE"
REMOTE_CACHE_ENV = "INDUCTION_NB_REMOTE_CACHE"  # this cache alone (the model cache stays where it is)
ASSUMED_FLOPS = 2e13  # 20 TFLOP/s: a conservative effective rate for a served model at small batches
MARK = "induction_nb chunk "  # a LOG line the session body prints as each chunk starts on the server
_MEASURED: dict[tuple, float] = {}  # (host, model key, tool, chunk numel) -> measured server seconds per chunk
_MARK_RE = re.compile(re.escape(MARK) + r"(\d+)")


def cache_root(config: RemoteConfig) -> Path:
    """Where chunk results are kept: ``config.cache_dir``, else ``$INDUCTION_NB_REMOTE_CACHE``, else
    ``$INDUCTION_NB_CACHE/remote``, else ``$XDG_CACHE_HOME/induction_nb/remote`` (``~/.cache/induction_nb/remote``)."""
    if config.cache_dir:
        return Path(config.cache_dir).expanduser()
    if os.environ.get(REMOTE_CACHE_ENV):
        return Path(os.environ[REMOTE_CACHE_ENV]).expanduser()
    return user_cache("remote")


def user_cache(kind: str) -> Path:
    """``$INDUCTION_NB_CACHE/<kind>``, else ``$XDG_CACHE_HOME/induction_nb/<kind>`` (``~/.cache/...``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser() / kind
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "induction_nb" / kind


def package_version(name: str = "induction_nb") -> str:
    """The installed version of ``name`` (``"unknown"`` where it is not installed): part of cache identities."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def write_atomically(directory: Path, path: Path, write: Any, binary: bool = True) -> None:
    """``write(file)`` into a temporary file in ``directory``, synced, then renamed to ``path``: a reader never
    sees half an entry, and an interrupted write leaves none."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".part-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def digest(tensors: Sequence[torch.Tensor]) -> str:
    """SHA-256 of tensors' dtypes, shapes and values (what a chunk sends)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


@functools.cache
def source_digest() -> str:
    """SHA-256 of induction_nb's own ``.py`` files (relative paths and contents, sorted by path), once per
    process: a changed package never reuses results computed by the old code."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def code_digest(obj: Any) -> str:
    """SHA-256 of the code of ``obj``'s class (``obj`` itself when it is a class): its source, else its
    cloudpickle (by value for a class defined in a notebook), else its qualified name. A metric redefined in a
    notebook cell under the same name gets a new digest, so it never reuses the old definition's results."""
    cls = obj if isinstance(obj, type) else type(obj)
    try:
        blob = inspect.getsource(cls).encode()
    except Exception:  # no source: a class from exec, a notebook without a file, a builtin
        try:
            import cloudpickle

            blob = cloudpickle.dumps(cls)
        except Exception:
            blob = f"{cls.__module__}.{cls.__qualname__}".encode()
    return hashlib.sha256(blob).hexdigest()


def folder_fingerprint(folder: str | os.PathLike | None) -> list | None:
    """Names, sizes and modification times of the files of a local model ``folder`` (``None`` for none, e.g. a
    served model): new weights written into the folder change a cache identity."""
    if folder is None:
        return None
    try:
        with os.scandir(folder) as entries:
            files = [e for e in entries if e.is_file()]
            return sorted([e.name, e.stat().st_size, e.stat().st_mtime_ns] for e in files)
    except OSError:
        return None


def _json_value(value: Any) -> Any:
    """``json.dumps``' fallback for the identity: a tensor is its full digest (a repr truncates, so two large
    tensors would collide); anything else that JSON cannot hold is refused."""
    if isinstance(value, torch.Tensor):
        return {"tensor": digest([value])}
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:  # a numpy scalar: its value
        return value.item()
    raise TypeError(f"the resume cache cannot key on a {type(value).__name__}: {value!r}")


@dataclass(frozen=True)
class ResultCache:
    """Per-chunk results of one remote job kind on disk (see the module docstring). ``identity``: the JSON of
    everything but the chunk (host, model key, env, tool, settings); never the API key."""

    directory: Path
    identity: str

    @classmethod
    def of(cls, config: RemoteConfig | None, tool: str, settings: dict) -> ResultCache | None:
        """The cache for ``tool`` with ``settings`` on ``config``; ``None`` for a local run or ``resume=False``."""
        if config is None or not config.resume:
            return None
        ident = {
            "format": FORMAT,
            "package": package_version(),
            "source": source_digest(),
            "folder": folder_fingerprint(local_folder(config.model_key)),
            "host": config.host,
            "model_key": config.model_key,
            "env": config.env,
            "tool": tool,
            "settings": settings,
        }
        return cls(cache_root(config), json.dumps(ident, sort_keys=True, default=_json_value))

    def _entry(self, index: int, inputs: str) -> tuple[str, Path]:
        """The SHA-256 of the chunk's identity (what the entry stores: the identity's JSON may hold the host's
        user:password@ or tokens in ``env``, so it never goes to disk) and the entry's path."""
        ident = json.dumps({"job": self.identity, "chunk": index, "inputs": inputs}, sort_keys=True)
        hashed = hashlib.sha256(ident.encode()).hexdigest()
        return hashed, self.directory / f"{hashed}.pt"

    def load(self, index: int, inputs: str) -> Any | None:
        """Chunk ``index``'s result (``inputs``: the digest of its inputs), or ``None`` (absent or unusable)."""
        ident, path = self._entry(index, inputs)
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # absent, truncated, from another torch: recomputed
            return None
        if not isinstance(entry, dict) or entry.get("identity") != ident or "value" not in entry:
            return None
        return entry["value"]

    def store(self, index: int, inputs: str, value: Any) -> None:
        """Write chunk ``index``'s result atomically (a temporary file, then ``os.replace``)."""
        ident, path = self._entry(index, inputs)
        write_atomically(self.directory, path, lambda f: torch.save({"identity": ident, "value": value}, f))


@dataclass(frozen=True)
class Budget:
    """What one job may take: ``seconds`` of estimated server time, ``bytes`` sent and returned, or a fixed
    number of chunks (``fixed``)."""

    seconds: float
    bytes: float
    fixed: int | None = None

    @classmethod
    def of(cls, config: RemoteConfig) -> Budget:
        fixed = config.chunks_per_job
        if fixed is not None and (isinstance(fixed, bool) or not isinstance(fixed, int) or fixed < 1):
            raise InputError(f"RemoteConfig(chunks_per_job=...) must be a positive int or None, got {fixed!r}")
        for name in ("max_job_seconds", "max_job_bytes"):
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InputError(f"RemoteConfig({name}=...) must be a positive number, got {value!r}")
        return cls(float(config.max_job_seconds), float(config.max_job_bytes), fixed)

    def chunks(self, seconds_each: float, bytes_each: float) -> int:
        """Chunks per job: as many as fit both budgets, at least one."""
        if self.fixed is not None:
            return self.fixed
        fit = min(self.seconds / max(seconds_each, 1e-9), self.bytes / max(bytes_each, 1.0))
        if fit < 1:
            warn_user(
                f"induction_nb: one chunk is estimated at {seconds_each:.0f} s and {bytes_each / 2**20:.1f} MiB, over "
                f"the job budget ({self.seconds:.0f} s, {self.bytes / 2**20:.0f} MiB): it runs alone and may hit the "
                "server's execution limit; use a smaller chunk_size"
            )
        return max(1, math.floor(min(fit, 2.0**31)))  # a non-finite budget: no limit


class JobProgress:
    """Tells the caller's tqdm bar (or nobody) where the remote work is, in its postfix, and advances it by
    chunks as they complete or are found in the cache."""

    def __init__(self, bar: Any, n: int):
        self.bar, self.n, self.done = bar, n, 0

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=True)

    def advance(self, k: int, text: str | None = None) -> None:
        self.done += k
        if self.bar is not None and k:
            self.bar.update(k)
        if text:
            self.say(text)


class _JobClock:
    """The status hook of one job: states for the bar, and the measured running time."""

    def __init__(self, progress: JobProgress, label: str):
        self.progress, self.label = progress, label
        self.running_since: float | None = None
        self.seconds: float | None = None

    def __call__(self, status: str, description: str) -> None:
        if status == "LOG":
            try:  # a malformed line is ignored: the hook runs inside nnsight's client, a raise aborts the job
                marks = _MARK_RE.findall(description or "")
                if marks:
                    self.progress.say(f"{self.label} running: chunk {int(marks[-1]) + 1}/{self.progress.n}")
            except Exception:
                pass
            return
        if status == "RUNNING" and self.running_since is None:
            self.running_since = time.monotonic()
        if status == "COMPLETED" and self.running_since is not None:
            self.seconds = time.monotonic() - self.running_since
        self.progress.say(f"{self.label} {status.lower()}")


def run_chunks(
    inputs: Sequence[Sequence[torch.Tensor]],
    job: Callable[[list[int], Callable], tuple[list, Any]],
    *,
    config: RemoteConfig,
    cache: ResultCache | None,
    progress: JobProgress,
    tool: str,
    seconds_each: float,
    bytes_each: float,
) -> list:
    """Every chunk's result, in order: the cached ones loaded, the missing ones run by ``job(indices,
    on_status) -> (results, backend)`` in as few jobs as the budget allows, each result cached as soon as
    its job returns. ``inputs[i]``: the tensors chunk ``i`` sends (their digest is part of its cache key)."""
    n, budget = len(inputs), Budget.of(config)
    keys = [digest(x) for x in inputs]
    results: list = [None] * n
    if cache is not None:
        results = [cache.load(i, keys[i]) for i in range(n)]
    pending = [i for i, r in enumerate(results) if r is None]
    if n - len(pending):
        progress.advance(n - len(pending), f"cached {n - len(pending)}/{n}")
    # a measured rate holds for chunks of the same size only: a later scan with bigger chunks must not reuse it
    rate = (config.host, config.model_key, tool, max(sum(t.numel() for t in x) for x in inputs) if n else 0)
    seconds_each = _MEASURED.get(rate, seconds_each)
    number = 0
    while pending:
        k = budget.chunks(seconds_each, bytes_each)
        take, pending, number = pending[:k], pending[k:], number + 1
        clock = _JobClock(progress, f"job {number}/{number + math.ceil(len(pending) / k)}")
        try:
            outs, backend = job(take, clock)
        except RemoteExecutionError as e:
            kept = f"; {progress.done} of {n} chunks are in the cache: run it again to send only the rest"
            raise RemoteExecutionError(str(e) + (kept if cache is not None else ""), e.kind, e.server_message) from e
        if len(outs) != len(take):
            raise RemoteExecutionError(
                f"{clock.label} returned {len(outs)} results for {len(take)} chunks ({take}); nothing of it was "
                "kept: run it again",
                kind="job",
            )
        for i, out in zip(take, outs):
            results[i] = out
            if cache is not None:
                cache = _store(cache, i, keys[i], out)
        progress.advance(len(take), f"{clock.label} done")
        if clock.seconds is not None:
            seconds_each = _MEASURED[rate] = clock.seconds / len(take)
        if getattr(backend, "result_bytes", 0):
            bytes_each = backend.result_bytes / len(take) + sum(t.nbytes for t in inputs[take[0]])
    return results


def _store(cache: ResultCache, index: int, inputs: str, value: Any) -> ResultCache | None:
    """``cache.store``; where the folder cannot be written, a warning and no cache for the rest of the run
    (the results are still returned)."""
    try:
        cache.store(index, inputs, value)
        return cache
    except OSError as e:
        warn_user(
            f"induction_nb: cannot write the resume cache in {cache.directory} ({type(e).__name__}: {e}); this run's "
            "chunks are not kept for a rerun: pass RemoteConfig(cache_dir=...) a writable folder, or resume=False"
        )
        return None


def chunk_seconds(engine: Engine, tokens: torch.Tensor, forwards: int = 1) -> float:
    """First guess of a chunk's server time: 2 x parameters x tokens x ``forwards`` / ``ASSUMED_FLOPS``."""
    params = sum(p.numel() for p in engine.module.parameters())
    return 2.0 * params * tokens.numel() * forwards / ASSUMED_FLOPS
