"""Remote execution on NDIF through nnsight: ``capture_attention(..., remote=True)``,
``detect_induction_heads(model, remote=True)``, ``induction-nb scan MODEL --remote``.

What travels: the trace body and everything it calls from induction_nb (registered with
``nnsight.register`` so the server rebuilds our functions by value: it needs nothing of ours
installed), the token ids, and per-layer reductions back. The detector's reducer runs on the server,
so only ``[batch, head]`` numbers per layer come home, not patterns. The model is named by its nnsight
model key and never leaves the server; the served model may run any attention backend (patterns are
recomputed from query and key where its kernel returns none).

Configuration: ``RemoteConfig(host=..., api_key=...)``, else ``NDIF_API_KEY`` / nnsight's
``CONFIG.API.APIKEY`` and nnsight's ``CONFIG.API.HOST`` (the public NDIF service by default).
Every failure becomes one ``RemoteExecutionError`` whose ``kind`` says which: ``"key"``,
``"unreachable"``, ``"not_served"``, ``"job"`` (the server's message included) or ``"lost"``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlparse

from ..errors import InputError, RemoteExecutionError

__all__ = ["RemoteConfig", "resolve", "remote_trace", "translate_error"]


@dataclass(frozen=True)
class RemoteConfig:
    """Where and how to run remotely. Fields left ``None`` come from the environment / nnsight config.
    ``env``: per-request settings the server applies (e.g. a PEFT adapter). ``model_key``: override the
    key nnsight derives from the model (needed for a local folder served under another name)."""

    host: str | None = None
    api_key: str | None = None
    model_key: str | None = None
    env: dict = field(default_factory=dict)
    blocking: bool = True  # False (submit and poll later) is refused: scoring needs each result


def resolve(model: Any, remote: Any) -> RemoteConfig:
    """Validate ``remote`` for ``model`` and fill in host, key and model key; registers induction_nb for
    shipping by value."""
    if remote is True:
        config = RemoteConfig()
    elif isinstance(remote, RemoteConfig):
        config = remote
    else:
        raise InputError(f"remote must be True, False or an induction_nb.RemoteConfig, got {remote!r}")
    if not config.blocking:
        raise InputError(
            "RemoteConfig(blocking=False) is not supported: induction_nb needs every chunk's result before it "
            "can score; use blocking=True (the default)"
        )
    if not callable(getattr(model, "to_model_key", None)):
        raise InputError(
            f"remote execution needs an nnsight model that names a served model, e.g. "
            f"nnsight.LanguageModel('openai-community/gpt2'); got {type(model).__name__}"
        )
    from nnsight import CONFIG

    host = (config.host or CONFIG.API.HOST or "").rstrip("/")
    if not host.startswith(("http://", "https://")):
        raise InputError(f"the remote host must be an http(s) URL, got {host!r}")
    api_key = config.api_key or os.environ.get("NDIF_API_KEY") or CONFIG.API.APIKEY
    if not api_key:
        raise RemoteExecutionError(
            "no NDIF API key: set the NDIF_API_KEY environment variable, call "
            "nnsight.CONFIG.set_default_api_key(KEY), or pass RemoteConfig(api_key=KEY) (keys: https://login.ndif.us)",
            kind="key",
        )
    model_key = config.model_key
    if model_key is None:
        try:
            model_key = _model_key(model)
        except Exception as e:  # resolving a repo id asks the Hub
            raise RemoteExecutionError(
                f"cannot name the model for the remote server ({type(e).__name__}: {e}); pass "
                "RemoteConfig(model_key=...)",
                kind="not_served",
            ) from e
    _register_once()
    return replace(config, host=host, api_key=api_key, model_key=model_key)


_REGISTERED = False


def _register_once() -> None:
    """Ship induction_nb by value with every remote request: registered once per process."""
    global _REGISTERED
    if not _REGISTERED:
        import nnsight

        import induction_nb

        nnsight.register(induction_nb)
        _REGISTERED = True


def _model_key(model: Any) -> str:
    """nnsight's key for ``model``. A local folder is its own canonical id: nnsight would ask the Hub to
    canonicalise it, so its cache holds the folder for the duration of the call only (restored after)."""
    repo = getattr(model, "repo_id", None)
    if not (isinstance(repo, str) and os.path.isdir(os.path.expanduser(repo))):
        return model.to_model_key()
    from nnsight.modeling import huggingface

    cache = getattr(huggingface, "_ID_CACHE", None)
    if not isinstance(cache, dict) or repo in cache:
        return model.to_model_key()
    cache[repo] = repo
    try:
        return model.to_model_key()
    finally:
        cache.pop(repo, None)


def remote_trace(model: Any, tokens: Any, config: RemoteConfig, **kwargs: Any) -> Any:
    """``model.trace(tokens, **kwargs)`` executed on ``config.host``."""
    from nnsight.intervention.backends.remote import RemoteBackend

    backend = RemoteBackend(
        config.model_key, host=config.host, api_key=config.api_key, env=dict(config.env), blocking=config.blocking
    )
    return model.trace(tokens, backend=backend, **kwargs)


_NOT_SERVED = ("not served", "not deployed", "not found", "no model", "unknown model", "not running", "not available")


def translate_error(e: BaseException, config: RemoteConfig) -> BaseException:
    """Our one clear error for whatever the remote client raised; ``e`` itself if it is not remote-related."""
    if isinstance(e, RemoteExecutionError):
        return e
    from nnsight.intervention.backends.remote import RemoteError

    host, key = config.host, config.model_key
    if isinstance(e, RemoteError):
        message = str(e).strip()
        last = message.splitlines()[-1] if message else "(no message)"
        if any(phrase in message.lower() for phrase in _NOT_SERVED) and "Traceback" not in message:
            return RemoteExecutionError(f"{host} does not serve model {key!r}: {last}", kind="not_served")
        return RemoteExecutionError(f"the job failed on {host}: {last}", kind="job", server_message=message)
    name = type(e).__name__
    # websocket-client reports a name that does not resolve as its own exception, not as an OSError
    if name == "WebSocketAddressException" or isinstance(e, socket.gaierror):
        return RemoteExecutionError(
            f"cannot reach {host}: its host name {urlparse(host).hostname!r} does not resolve ({name}: {e}); "
            "check the host (RemoteConfig(host=...) or nnsight.CONFIG.API.HOST) and your network",
            kind="unreachable",
        )
    if name in ("WebSocketConnectionClosedException", "WebSocketBadStatusException") or isinstance(
        e, (ConnectionResetError, BrokenPipeError)
    ):
        return RemoteExecutionError(
            f"the connection to {host} was lost during the job ({name}); nothing was returned, run it again",
            kind="lost",
        )
    if isinstance(e, (ConnectionError, TimeoutError, OSError)) or "ConnectError" in name or "Timeout" in name:
        return RemoteExecutionError(
            f"cannot reach {host} ({name}: {e}); check the host (RemoteConfig(host=...) or nnsight.CONFIG.API.HOST) "
            "and your network",
            kind="unreachable",
        )
    return e
