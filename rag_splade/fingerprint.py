"""Fingerprints of models: a hash of a model's configuration and weights.

An index is only meaningful with the sparse model that built it: a fine-tuned model keeps
the same name (a folder) and vocabulary, but its vectors no longer match the stored ones.
The fingerprint tells them apart where the name cannot.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from rag_splade.encoders.protocols import SparseEncoderProtocol

# Config keys that say where or with what a model was saved, not what it computes.
VOLATILE_KEYS = ("_name_or_path", "transformers_version", "torch_dtype", "dtype", "_commit_hash")


def config_dict(model: torch.nn.Module) -> dict[str, Any]:
    """The model's `config` as a dict, without the keys that do not change its outputs."""
    config = getattr(model, "config", None)
    if config is None:
        return {}
    return {k: v for k, v in config.to_dict().items() if k not in VOLATILE_KEYS}


def model_fingerprint(model: torch.nn.Module) -> str:
    """`sha256:<hex>` over the model's config and every parameter and buffer.

    Floating-point weights are hashed rounded to bfloat16, so the same model gives the same
    fingerprint whether it runs in float32 (CPU) or bfloat16 (CUDA); a fine-tuning step
    changes far more than that rounding hides.

    Example:
        >>> model_fingerprint(AutoModelForMaskedLM.from_pretrained("./my-model"))  # doctest: +SKIP
        'sha256:3f1c...'
    """
    import torch

    digest = hashlib.sha256()
    digest.update(json.dumps(config_dict(model), sort_keys=True, default=str).encode("utf-8"))
    state = model.state_dict()
    seen: dict[tuple[int, tuple[int, ...]], str] = {}
    for name in sorted(state):
        tensor = state[name]
        digest.update(name.encode("utf-8") + b"\x00")
        # Tied weights (the MLM decoder and the word embeddings) are hashed once.
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if key in seen and tensor.numel():
            digest.update(b"tied:" + seen[key].encode("utf-8"))
            continue
        seen[key] = name
        data = tensor.detach().to("cpu")
        if data.is_floating_point():
            data = data.to(torch.bfloat16).view(torch.int16)
        digest.update(f"{tuple(data.shape)}{data.dtype}".encode("ascii"))
        digest.update(data.contiguous().numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def sparse_fingerprint(encoder: SparseEncoderProtocol) -> str | None:
    """The fingerprint an index records for its sparse encoder: `encoder.fingerprint`."""
    return encoder.fingerprint


__all__ = ["model_fingerprint", "sparse_fingerprint"]
