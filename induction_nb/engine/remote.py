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

The key is a secret: ``RemoteConfig``'s repr masks it and every message built from a remote failure has
it replaced by ``***`` (``_scrub``), because configs and errors end up in notebook outputs and logs that
get committed. Plain ``http://`` is refused except for a loopback host, so the key never crosses a
network unencrypted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlparse

from ..errors import InputError, RemoteExecutionError

__all__ = ["RemoteConfig", "resolve", "remote_trace", "session_backend", "translate_error", "local_folder"]


@dataclass(frozen=True)
class RemoteConfig:
    """Where and how to run remotely. Fields left ``None`` come from the environment / nnsight config.
    ``env``: per-request settings the server applies (e.g. a PEFT adapter). ``model_key``: override the
    key nnsight derives from the model (needed for a local folder served under another name).

    Pass it as ``remote=`` to ``capture_attention``, ``detect_induction_heads`` and the other tools
    (``remote=True`` is ``RemoteConfig()``). The model must be an nnsight model naming a served model, e.g.
    ``load_model("openai-community/gpt2", remote=True)``; it never leaves the server, and only per-layer
    reductions come back. A scan's chunks are bundled into as few jobs as fit the job budgets
    (``max_job_seconds``, ``max_job_bytes``, or a fixed ``chunks_per_job``), and with ``resume`` each
    finished chunk is kept on disk, so a rerun after a failure sends only what is missing. The key is a
    secret: the repr shows it as ``***``, and every error message has it replaced by ``***``. Plain
    ``http://`` is refused except for a loopback host (localhost, 127.0.0.0/8, ::1).

    Args:
        host: the NDIF server URL (``https://...``); ``None`` (default): nnsight's ``CONFIG.API.HOST`` (the
            public NDIF service).
        api_key: the NDIF API key; ``None`` (default): the ``NDIF_API_KEY`` environment variable, else
            nnsight's ``CONFIG.API.APIKEY`` (keys: https://login.ndif.us).
        model_key: the model key to request, overriding the one nnsight derives from the model (needed for
            a local folder served under another name); ``None`` (default): derived.
        env: per-request settings the server applies (e.g. a PEFT adapter); empty by default.
        blocking: must stay ``True`` (default): ``False`` (submit and poll later) is refused with
            ``InputError``, because scoring needs each result.
        resume: keep each finished chunk's result on disk so that a rerun sends only what is missing
            (default ``True``); ``False`` sends everything again (e.g. when a key without a revision now
            serves new weights).
        cache_dir: the folder of the resume cache; ``None`` (default): ``$INDUCTION_NB_REMOTE_CACHE``, else
            ``$INDUCTION_NB_CACHE/remote``, else ``~/.cache/induction_nb/remote``.
        max_job_seconds: estimated server time per job, in seconds (default 1800: half NDIF's 3600 s
            execution limit); must be positive.
        max_job_bytes: estimated bytes per job, tokens sent plus results returned (default 64 MiB); must be
            positive.
        chunks_per_job: a fixed number of chunks per job instead of the estimate (a positive int);
            ``None`` (default): as many as fit both budgets.

    Examples:
        >>> from induction_nb import RemoteConfig
        >>> config = RemoteConfig(host="https://ndif.example.org", api_key="my-secret-key", chunks_per_job=4)
        >>> config  # the key is masked wherever the config is shown
        RemoteConfig(host='https://ndif.example.org', api_key='***', model_key=None, env={}, blocking=True,
                     resume=True, cache_dir=None, max_job_seconds=1800.0, max_job_bytes=67108864, chunks_per_job=4)
        >>> config.api_key == "my-secret-key"  # the field itself keeps it
        True

        Running on NDIF needs network access and a key:

        >>> from induction_nb import capture_attention, load_model  # doctest: +SKIP
        >>> model = load_model("openai-community/gpt2", remote=True)  # doctest: +SKIP
        >>> patterns = capture_attention(model, "The cat sat. The cat", remote=config)  # doctest: +SKIP
    """

    host: str | None = None
    api_key: str | None = None
    model_key: str | None = None
    env: dict = field(default_factory=dict)
    blocking: bool = True  # False (submit and poll later) is refused: scoring needs each result
    # remote jobs (``engine.remote_jobs``): a scan's chunks are bundled into as few jobs as fit these budgets
    resume: bool = True  # keep each chunk's result on disk: a rerun sends only what is missing
    cache_dir: str | None = None  # default $INDUCTION_NB_CACHE/remote, else ~/.cache/induction_nb/remote
    max_job_seconds: float = 1800.0  # estimated server time per job: half NDIF's 3600 s execution limit
    max_job_bytes: int = 64 * 2**20  # estimated bytes per job (tokens sent + results returned)
    chunks_per_job: int | None = None  # a fixed number of chunks per job instead of the estimate

    def __repr__(self) -> str:
        """The dataclass repr with the key masked: a displayed config must not put the key in a notebook."""
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        if shown.get("api_key") is not None:
            shown["api_key"] = _MASK
        return "RemoteConfig(" + ", ".join(f"{name}={value!r}" for name, value in shown.items()) + ")"


_MASK = "***"


_PLAIN = (str, int, float, bool, type(None))


def _scrub(text: str | None, key: str | None) -> str | None:
    """``text`` with every occurrence of ``key`` replaced by ``***``: a server or an exception may echo the
    key, and our messages end up in notebook outputs, logs and saved files. A key under 8 characters is
    replaced only as a whole token, not inside a word nor as a URL's scheme (key ``http`` leaves ``http://`` alone)."""
    if not text or not key:
        return text
    if len(key) >= 8:
        return text.replace(key, _MASK)
    return re.sub(rf"(?<![A-Za-z0-9_-]){re.escape(key)}(?![A-Za-z0-9_-]|://)", _MASK, text)  # not a URL scheme


def _scrub_chain(e: BaseException | None, key: str | None) -> None:
    """Scrub ``e`` and its causes in place: a notebook shows the whole chain of a ``RemoteExecutionError``
    (``raise ... from e``), not only our message. Their string args and attributes are scrubbed; an
    attribute or arg that is not a plain value (an httpx request or response holding the key header)
    becomes its scrubbed ``repr``; their traceback frames are cleared, so a traceback shown with local
    variables (``%xmode Verbose``, ``pytest --showlocals``) has none that hold the key."""
    seen: set[int] = set()
    while e is not None and key and id(e) not in seen:
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)  # a frame still executing is left (it cannot be cleared)
        with contextlib.suppress(AttributeError, TypeError):  # an exception class that guards its args
            e.args = tuple(_scrub(a, key) if isinstance(a, str) else _plain(a, key) for a in e.args)
        for name, value in list(getattr(e, "__dict__", {}).items()):
            if not isinstance(value, _PLAIN) and not name.startswith("__"):
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(e, name, _scrub(_safe_repr(value), key))
        # what str() reads besides args: OSError's strerror and filenames, an exception's own attributes
        names = {"strerror", "filename", "filename2", "msg", "message", "reason", *getattr(e, "__dict__", {})}
        for name in names:
            value = getattr(e, name, None)
            if isinstance(value, str) and _scrub(value, key) != value:
                with contextlib.suppress(AttributeError, TypeError):  # read-only: its text comes from args
                    setattr(e, name, _scrub(value, key))
        if getattr(e, "__notes__", None):
            e.__notes__ = [_scrub(n, key) if isinstance(n, str) else n for n in e.__notes__]
        e = e.__cause__ or e.__context__


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _plain(value: Any, key: str) -> Any:
    """``value`` if it is a plain value, else its scrubbed repr."""
    return value if isinstance(value, _PLAIN) else _scrub(_safe_repr(value), key)


def resolve(model: Any, remote: Any) -> RemoteConfig:
    """Validate ``remote`` for ``model`` and fill in host, key and model key; registers induction_nb for
    shipping by value."""
    if remote is True:
        config = RemoteConfig()
    elif isinstance(remote, RemoteConfig):
        config = remote
    else:
        # the type only: a dict of settings passed by mistake may hold the key
        raise InputError(f"remote must be True, False or an induction_nb.RemoteConfig, got {type(remote).__name__}")
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
    if host.startswith("http://") and not _is_loopback(host):
        raise InputError(
            f"refusing plain http for {host!r}: the NDIF API key would travel unencrypted; use "
            f"https://{host[len('http://') :]} ; plain http is allowed only for a loopback host "
            "(localhost, 127.0.0.0/8, ::1)"
        )
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
    repo = getattr(model, "repo_id", None)
    if isinstance(repo, str) and os.path.isdir(os.path.expanduser(repo)):
        _FOLDERS[model_key] = os.path.expanduser(repo)
    _register_once()
    return replace(config, host=host, api_key=api_key, model_key=model_key)


_FOLDERS: dict[str, str] = {}  # model key -> the local folder it was resolved from (for the resume cache)


def local_folder(model_key: str | None) -> str | None:
    """The local folder ``model_key`` was resolved from in this process (``resolve``), else ``None``."""
    return _FOLDERS.get(model_key) if model_key else None


def _is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL) names this machine: the only place plain http may carry the key."""
    name = (urlparse(host).hostname or "").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


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
    """Our one clear error for whatever the remote client raised; ``e`` itself if it is not remote-related.
    The API key is scrubbed from ``e`` and its causes first, then from the message and ``server_message``
    built here: a server or client error may echo it, and these texts are displayed and saved."""
    key = config.api_key
    _scrub_chain(e, key)
    err = _translate(e, config)
    if isinstance(err, RemoteExecutionError):
        err.args = tuple(_scrub(a, key) if isinstance(a, str) else a for a in err.args)
        err.server_message = _scrub(err.server_message, key)
    return err


def _translate(e: BaseException, config: RemoteConfig) -> BaseException:
    """``translate_error`` before scrubbing: the kind of failure, from the exception nnsight raised."""
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


def session_backend(config: RemoteConfig, on_status: Callable[[str, str], None] | None = None) -> Any:
    """A blocking ``RemoteBackend`` for ``model.session(backend=...)``: the session's whole body, every trace
    in it, runs on ``config.host`` as ONE request (one queue wait). ``on_status(status, description)`` gets
    each status the server sends (``"QUEUED"``, ``"RUNNING"``, ``"LOG"`` lines the body prints,
    ``"COMPLETED"``, ``"ERROR"``), and nnsight's own status line is then off. The backend counts what
    travelled: ``payload_bytes`` (sent) and ``result_bytes`` (returned)."""
    backend = _status_backend_class()(
        config.model_key, host=config.host, api_key=config.api_key, env=dict(config.env), blocking=True
    )
    backend.on_status = on_status
    if on_status is not None:
        backend.display.enabled = False
    return backend


_STATUS_BACKEND: type | None = None


def _status_backend_class() -> type:
    """nnsight's ``RemoteBackend`` with a status hook (``note`` sees every status, whichever way it came)
    and byte counters; defined on first use, so that importing induction_nb does not import the client."""
    global _STATUS_BACKEND
    if _STATUS_BACKEND is None:
        from nnsight.intervention.backends.remote import RemoteBackend

        class StatusBackend(RemoteBackend):
            on_status = None
            payload_bytes = result_bytes = 0

            def note(self, response: Any) -> bool:
                if self.on_status is not None:
                    self.on_status(getattr(response.status, "value", str(response.status)), response.description or "")
                return super().note(response)

            def _serialize(self, tracer: Any) -> bytes:
                blob = super()._serialize(tracer)
                self.payload_bytes += len(blob)
                return blob

            def finalize(self, content: bytes) -> Any:
                self.result_bytes += len(content)
                return super().finalize(content)

        _STATUS_BACKEND = StatusBackend
    return _STATUS_BACKEND
