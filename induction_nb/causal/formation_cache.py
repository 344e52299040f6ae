"""Each checkpoint's formation result on disk, so that a long checkpoint series resumes where it stopped.

An entry is one checkpoint's JSON (its detection and ICL score), named by the SHA-256 of everything that
produced it: the format, the package version and its source files' digest (changed code never reuses old
results), the settings, the documents (for a text ICL score) and the checkpoint's identity (a folder's file
names, sizes and modification times; a digest of a model's or state dict's tensors). Entries are written
atomically (a temporary file, then ``os.replace``), so an interrupted write never leaves half an entry; a
corrupt or foreign entry is ignored and measured again. Limits: no eviction (delete the folder to reclaim it);
a folder whose files are rewritten with the same size and time is taken as unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..engine.remote_jobs import (
    digest,
    folder_fingerprint,
    package_version,
    source_digest,
    user_cache,
    write_atomically,
)
from ..engine.wrappers import materialized, unwrap
from ..errors import warn_user
from ..probes.texts import load_texts

__all__ = ["FormationCache", "architecture", "checkpoint_identity", "formation_cache_root"]

FORMAT = 1


def formation_cache_root(cache_dir: Any = None) -> Path:
    """``cache_dir``, else ``$INDUCTION_NB_CACHE/formation``, else ``~/.cache/induction_nb/formation``."""
    if cache_dir not in (None, True):
        return Path(cache_dir).expanduser()
    return user_cache("formation")


def checkpoint_identity(checkpoint: Any) -> Any:
    """What identifies a checkpoint's weights: a folder's fingerprint, or the digest of a state dict's or a
    model's tensors (names included)."""
    if isinstance(checkpoint, (str, os.PathLike)):
        return folder_fingerprint(checkpoint)
    if isinstance(checkpoint, Mapping):
        return _digest(checkpoint)
    module = unwrap(getattr(checkpoint, "_module", checkpoint))  # nnsight, compiled: the module
    with materialized(module):  # offloaded weights brought in, as a forward would
        return _digest(module.state_dict())


def architecture(module: torch.nn.Module) -> str:
    """SHA-256 of what a state dict does not hold: the module's class, its printed structure, its config
    (identical weights under another config, e.g. another norm epsilon, are another checkpoint) and the device
    it runs on."""
    config = getattr(module, "config", None)
    config = config.to_dict() if hasattr(config, "to_dict") else None
    device = str(next(module.parameters(), torch.empty(0)).device)
    blob = json.dumps([type(module).__qualname__, repr(module), config, device], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _digest(state: Mapping) -> list[str]:
    names = sorted(k for k, v in state.items() if isinstance(v, torch.Tensor))
    return [hashlib.sha256("\0".join(names).encode()).hexdigest(), digest([state[k] for k in names])]


@dataclass(frozen=True)
class FormationCache:
    directory: Path
    identity: str

    @classmethod
    def of(cls, cache_dir: Any, settings: dict, texts: Any) -> FormationCache | None:
        """The cache for a scan with ``settings`` (``None`` where ``cache_dir`` is ``False``)."""
        if cache_dir is False:
            return None
        documents = None
        if texts is not None:
            documents = hashlib.sha256("\0\1".join(load_texts(texts)).encode()).hexdigest()
        versions = {name: package_version(name) for name in ("torch", "transformers")}  # kernels change numbers too
        ident = {"format": FORMAT, "source": source_digest(), "settings": settings, "texts": documents, **versions}
        return cls(formation_cache_root(cache_dir), json.dumps(ident, sort_keys=True, default=str))

    def _path(self, checkpoint: Any) -> tuple[str, Path]:
        key = hashlib.sha256(json.dumps([self.identity, checkpoint], default=str).encode()).hexdigest()
        return key, self.directory / f"{key}.json"

    def load(self, checkpoint: Any) -> dict | None:
        """The checkpoint's record, or ``None`` (absent, unreadable or another scan's)."""
        key, path = self._path(checkpoint)
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("record"), dict):
            return None
        return entry["record"]

    def store(self, checkpoint: Any, record: dict) -> None:
        """Write the checkpoint's record atomically; an unwritable folder warns and the scan goes on."""
        key, path = self._path(checkpoint)
        try:
            write_atomically(self.directory, path, lambda f: json.dump({"key": key, "record": record}, f), False)
        except OSError as e:
            warn_user(f"induction_nb: could not cache a formation checkpoint in {self.directory} ({e}); going on")
