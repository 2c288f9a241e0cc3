"""PyTorch dynamic int8 for the benchmark: measured against ONNX Runtime int8, not shipped.

`torch.ao.quantization.quantize_dynamic` swaps every `nn.Linear` of the masked LM (the
encoder's and the MLM head's) for an int8-weight version; the encoder's own tokenization,
batching and chunked pooling run around it (`encode_sparse`). The library keeps the faster
of the two int8 paths as `backend="onnx-int8"`; this one stays here so that the choice is
re-measured on every machine.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import torch

from rag_splade import SpladeEncoder
from rag_splade.encoders.splade_forward import encode_sparse
from rag_splade.types import SparseVector


def torch_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` with int8 dynamic quantisation on its Linear layers."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's notice that the API moves to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear}, torch.qint8)


def torch_int8_encode(
    encoder: SpladeEncoder, *, queries: bool = False
) -> Callable[[list[str]], list[SparseVector]]:
    """`encode_documents` (or `encode_queries`) of `encoder` (CPU, float32, no pruning)
    with its model quantised."""
    hf_model = encoder.model.transformers_model
    assert hf_model is not None  # SpladeEncoder refuses models without one
    model: Any = torch_int8(hf_model)
    tokenizer = encoder.fast_tokenizer or encoder.tokenizer
    max_length = encoder.query_max_length if queries else encoder.document_max_length

    def encode(texts: list[str]) -> list[SparseVector]:
        return encode_sparse(
            model,
            tokenizer,
            texts,
            max_length=max_length,
            device="cpu",
            max_batch_tokens=encoder.max_batch_tokens,
            head_chunk_tokens=encoder.head_chunk_tokens,
            max_batch_size=encoder.batch_size,
        )

    return encode
