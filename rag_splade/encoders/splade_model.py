"""The SPLADE model as sentence-transformers assembles it: a fill-mask `Transformer` with
query and document lengths, then `SpladePooling` (max over tokens of log(1 + relu)).

`SpladeEncoder` loads it to encode and the trainer builds it to fine-tune, so a trained
folder loads back as it was saved.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_splade_model"]


def build_splade_model(
    model_name_or_path: str,
    *,
    query_max_length: int,
    document_max_length: int,
    device: str,
    cache_folder: str | None = None,
    pooling_chunk_size: int | None = None,
) -> Any:
    """A sentence-transformers `SparseEncoder` of the masked LM `model_name_or_path`.

    Raises:
        ImportError: sentence-transformers is older than the sparse modules (6.2).
    """
    try:
        from sentence_transformers import SparseEncoder
        from sentence_transformers.base.modules import Transformer
        from sentence_transformers.sparse_encoder.modules import SpladePooling
    except ImportError as e:  # pragma: no cover - core dependency
        raise ImportError(
            "SPLADE needs sentence-transformers >= 6.2: pip install -U sentence-transformers"
        ) from e
    cache = {"cache_dir": cache_folder} if cache_folder else None
    transformer = Transformer(
        model_name_or_path,
        transformer_task="fill-mask",
        max_seq_length=document_max_length,
        query_length=query_max_length,
        document_length=document_max_length,
        model_kwargs=cache,
        processor_kwargs=cache,
    )
    pooling = SpladePooling(
        pooling_strategy="max", activation_function="relu", chunk_size=pooling_chunk_size
    )
    return SparseEncoder(modules=[transformer, pooling], device=device)
