"""Fingerprints of models: a hash of a model's configuration and weights.

An index is only meaningful with the models that built it: a fine-tuned model keeps the
same name (a folder) and vocabulary, and another dense model may have the same size, but
their vectors no longer match the stored ones. The fingerprint tells them apart where the
name and the sizes cannot.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from rag_splade.encoders.protocols import DenseEncoderProtocol, SparseEncoderProtocol
    from rag_splade.store.base import VectorSpec

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


def sentence_transformer_fingerprint(model: torch.nn.Module) -> str:
    """`model_fingerprint` of a sentence-transformers model, with each module's own
    configuration (pooling mode, normalisation): the same weights pooled otherwise give
    other vectors."""
    modules = [
        {"type": type(m).__name__, "config": m.get_config_dict()}
        for m in getattr(model, "_modules", {}).values()
        if hasattr(m, "get_config_dict")
    ]
    digest = hashlib.sha256(model_fingerprint(model).encode("ascii"))
    digest.update(json.dumps(modules, sort_keys=True, default=str).encode("utf-8"))
    return "sha256:" + digest.hexdigest()


def sparse_fingerprint(encoder: SparseEncoderProtocol) -> str | None:
    """The fingerprint an index records for its sparse encoder: `encoder.fingerprint`."""
    return encoder.fingerprint


def dense_fingerprint(encoder: DenseEncoderProtocol) -> str | None:
    """The fingerprint an index records for its dense encoder: its optional `fingerprint`
    (a property of `DenseEncoder` and the remote one; an encoder without it is not checked).

    Raises:
        TypeError: a `fingerprint` that is neither a string nor None.
    """
    found = getattr(encoder, "fingerprint", None)
    if found is not None and not isinstance(found, str):
        raise TypeError(
            f"{type(encoder).__name__}.fingerprint must be a str or None, got {found!r:.80}"
        )
    return found


def vector_spec(sparse: SparseEncoderProtocol, dense: DenseEncoderProtocol) -> VectorSpec:
    """What the encoders' vectors look like, fingerprints included: what an index built
    with them records, and what opening or restoring one checks."""
    from rag_splade.encoders.device import dtype_name
    from rag_splade.store.base import VectorSpec

    return VectorSpec(
        dense_size=dense.dimension,
        sparse_vocab_size=sparse.vocab_size,
        sparse_fingerprint=sparse_fingerprint(sparse),
        dense_fingerprint=dense_fingerprint(dense),
        sparse_dtype=dtype_name(getattr(sparse, "dtype", None)),
    )


__all__ = [
    "dense_fingerprint",
    "model_fingerprint",
    "sentence_transformer_fingerprint",
    "sparse_fingerprint",
    "vector_spec",
]
