"""The SPLADE-max forward pass, batched by tokens and pooled without a full logits tensor.

`SpladeEncoder` calls `encode_sparse`; nothing else in the library needs it. What it does
that a plain `model(**batch).logits` + pooling does not:

- **Token-budget batches.** Texts are tokenised once, sorted by token length (longest
  first, so the peak shows at once) and cut into batches whose *padded* size
  (`rows x longest row`) stays under `max_batch_tokens`: short texts ride in large batches,
  long ones in small batches, with little padding either way. Vectors come back in input
  order and do not depend on the batching.
- **Chunked MLM head + max-pool.** A BERT MLM head turns each token into a
  vocabulary-sized logit row (32,768 floats for japanese-splade-v2): a batch of 32 x 512
  tokens would be a 2 GiB float32 tensor, which the usual pooling then copies. Here the
  encoder's hidden states go through the head `head_chunk_tokens` tokens at a time and each
  chunk is folded into a running `[batch, vocab]` maximum at once. Since
  `log(1 + relu(x))` is monotonic, `max_t log(1 + relu(l_t)) = log(1 + relu(max_t l_t))`:
  the activation runs on the pooled row only, and the result is the same vector.
- `torch.inference_mode()` throughout (no autograd bookkeeping).
- **Tokenizing off the critical path** (optional). With a `TokenizerPool`, worker processes
  tokenize the texts a wave at a time, one wave ahead of the model; batches are then cut
  within each wave.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from rag_splade.encoders.onnx_backend import OnnxSplade
from rag_splade.encoders.tokenizer_pool import TokenIds, TokenizerPool, tokenize_in_process
from rag_splade.types import SparseVector

# Defaults per device kind: (max_batch_tokens, head_chunk_tokens). On CPU a head chunk of
# 2,048 tokens is a 256 MiB float32 logits block; on CUDA larger blocks keep the GPU busy.
DEFAULT_BUDGETS = {"cpu": (2_048, 2_048), "cuda": (65_536, 16_384), "mps": (16_384, 4_096)}


def default_budgets(device: str) -> tuple[int, int]:
    """`(max_batch_tokens, head_chunk_tokens)` defaults for a device string."""
    return DEFAULT_BUDGETS.get(device.split(":")[0], DEFAULT_BUDGETS["cpu"])


def token_budget_batches(
    lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int | None = None
) -> list[list[int]]:
    """Group positions into batches, longest first, each with `rows x longest <= budget`.

    A row longer than the budget gets a batch of its own.

    Example:
        >>> token_budget_batches([5, 100, 7, 90], max_batch_tokens=200)
        [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        full = max_batch_size is not None and len(current) >= max_batch_size
        if current and (full or (len(current) + 1) * longest > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def mlm_parts(model: Any) -> tuple[Any, Any] | None:
    """`(encoder, head)` of a masked LM whose head maps hidden states to logits token by token
    (BERT's `cls`, RoBERTa/XLM-R's `lm_head`); None for other layouts."""
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return None
    for name in ("cls", "lm_head"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module):
            return base, head
    return None


def pool_max_logits(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, head_chunk_tokens: int
) -> torch.Tensor:
    """`[batch, vocab]` max over unmasked tokens of the MLM logits (before the activation)."""
    parts = mlm_parts(model)
    if parts is None:  # unknown head layout: whole logits tensor, pooled the same way
        logits: torch.Tensor = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits.masked_fill_(~attention_mask.bool()[:, :, None], float("-inf")).amax(1)
    encoder, head = parts
    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
    batch, length = input_ids.shape
    step = max(1, head_chunk_tokens // batch)
    pad = ~attention_mask.bool()
    pooled: torch.Tensor | None = None
    for start in range(0, length, step):
        logits = head(hidden[:, start : start + step])  # [batch, step, vocab]
        logits.masked_fill_(pad[:, start : start + step, None], float("-inf"))
        chunk_max = logits.amax(1)
        del logits
        pooled = chunk_max if pooled is None else torch.maximum(pooled, chunk_max, out=pooled)
    assert pooled is not None  # length >= 1: every row has at least [CLS]
    return pooled


def encode_sparse(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    device: str,
    max_batch_tokens: int,
    head_chunk_tokens: int,
    max_batch_size: int | None = None,
    top_k: int | None = None,
    min_weight: float | None = None,
    pool: TokenizerPool | None = None,
) -> list[SparseVector]:
    """SPLADE-max vectors `max_t log(1 + relu(logits_t)) * mask_t` of `texts`, input order,
    without the weights under `min_weight` and keeping only the `top_k` largest, if given.
    `model` is a PyTorch masked LM or an `OnnxSplade` graph. With a `pool`, worker
    processes tokenize the texts (see `TokenizerPool.waves`)."""
    if not texts:
        return []
    if pool is None:
        waves = iter([(0, tokenize_in_process(tokenizer, texts, max_length))])
    else:
        waves = pool.waves(texts, max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return _encode_waves(
        model,
        waves,
        len(texts),
        pad_id,
        device=device,
        max_batch_tokens=max_batch_tokens,
        head_chunk_tokens=head_chunk_tokens,
        max_batch_size=max_batch_size,
        top_k=top_k,
        min_weight=min_weight,
    )


def encode_token_ids(
    model: Any,
    ids: TokenIds,
    *,
    pad_id: int,
    device: str,
    max_batch_tokens: int,
    head_chunk_tokens: int,
    max_batch_size: int | None = None,
    top_k: int | None = None,
    min_weight: float | None = None,
) -> list[SparseVector]:
    """`encode_sparse` of rows that are already token ids (special tokens included, as the
    model reads them): the same batching, pooling and pruning."""
    if not ids:
        return []
    return _encode_waves(
        model,
        iter([(0, ids)]),
        len(ids),
        pad_id,
        device=device,
        max_batch_tokens=max_batch_tokens,
        head_chunk_tokens=head_chunk_tokens,
        max_batch_size=max_batch_size,
        top_k=top_k,
        min_weight=min_weight,
    )


def _encode_waves(
    model: Any,
    waves: Iterator[tuple[int, TokenIds]],
    count: int,
    pad_id: int,
    *,
    device: str,
    max_batch_tokens: int,
    head_chunk_tokens: int,
    max_batch_size: int | None,
    top_k: int | None,
    min_weight: float | None,
) -> list[SparseVector]:
    out: list[SparseVector | None] = [None] * count
    with torch.inference_mode():
        for offset, ids in waves:
            vectors = _encode_wave(
                model, ids, pad_id, device, max_batch_tokens, head_chunk_tokens, max_batch_size
            )
            for positions, weights in vectors:
                if min_weight is not None:
                    weights = weights.masked_fill_(weights < min_weight, 0.0)
                if top_k is not None and top_k < weights.shape[1]:
                    top = torch.topk(weights, top_k, dim=1)
                    weights = torch.zeros_like(weights).scatter_(1, top.indices, top.values)
                for position, vector in zip(positions, _rows(weights), strict=True):
                    out[offset + position] = vector
    return out  # type: ignore[return-value]  # every position was filled


def _encode_wave(
    model: Any,
    ids: TokenIds,
    pad_id: int,
    device: str,
    max_batch_tokens: int,
    head_chunk_tokens: int,
    max_batch_size: int | None,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """`(positions in the wave, [rows, vocab] SPLADE weights)` batch by batch."""
    lengths = [len(row) for row in ids]
    for batch in token_budget_batches(lengths, max_batch_tokens, max_batch_size):
        longest = lengths[batch[0]]
        input_ids = np.full((len(batch), longest), pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, i in enumerate(batch):
            input_ids[row, : lengths[i]] = ids[i]
            mask[row, : lengths[i]] = 1
        if isinstance(model, OnnxSplade):  # pooling and activation are in the graph
            yield batch, model(input_ids, mask)
            continue
        pooled = pool_max_logits(
            model,
            torch.from_numpy(input_ids).to(device),
            torch.from_numpy(mask).to(device),
            head_chunk_tokens,
        )
        yield batch, torch.log1p(torch.relu(pooled.float()))


def _rows(weights: torch.Tensor) -> list[SparseVector]:
    """Split a dense `[n, vocab]` weight matrix into per-row `SparseVector`s (non-zeros)."""
    nz = weights.nonzero()
    values = weights[nz[:, 0], nz[:, 1]].cpu().numpy()
    rows, cols = nz.cpu().numpy().T
    bounds = np.searchsorted(rows, np.arange(weights.shape[0] + 1))  # nonzero() is row-major
    return [
        SparseVector(cols[a:b].astype(np.int32), values[a:b].astype(np.float32))
        for a, b in itertools.pairwise(bounds)
    ]
