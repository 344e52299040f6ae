"""The engine room: the only place that touches a model or nnsight.

``Engine.of(model, remote)`` resolves a model once (wrapper, torch module, facts, attention sites, output
projections); below it sit the model facts, loading, tracing (local or NDIF), padded batches, the readers
that turn an attention call into a pattern, row blocks, site discovery and the remote client; above it
capture, documents, the intervention machine (``Ablator``), attribution patching and greedy decoding.
Everything a trace body calls lives at module level, so a remote request ships it by value.
"""

from .ablator import ABLATION_METHODS, Ablator
from .capture import AttentionPatterns, capture_attention, capture_head, stream_attention
from .engine import Engine
from .models import default_model_path, embedded_model_folder, load_model
from .remote import RemoteConfig
from .sites import CustomSites, Site

__all__ = [
    "ABLATION_METHODS",
    "Ablator",
    "AttentionPatterns",
    "CustomSites",
    "Engine",
    "RemoteConfig",
    "Site",
    "capture_attention",
    "capture_head",
    "default_model_path",
    "embedded_model_folder",
    "load_model",
    "stream_attention",
]
