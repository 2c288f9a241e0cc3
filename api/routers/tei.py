"""The TEI-compatible encoding endpoints: `/embed_sparse`, `/embed`, `/rerank`,
`/tokenize` and `/info`, in the shape of Text Embeddings Inference's API.

TEI serves SPLADE only for models with a fast tokenizer, which the Japanese SPLADE models
(MeCab + WordPiece) do not have; here they tokenize as `BertJapaneseTokenizer` does, and
token ids are accepted too. The calls go through the same micro-batcher as search: a
search query and an `/embed_sparse` query row share one forward pass. Every error has
TEI's body (`error`, `error_type`) and TEI's status for its type.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rag_splade import __version__
from rag_splade.encoders.protocols import (
    RawScorer,
    Side,
    TextEmbedder,
    TokenIdsEncoder,
    Truncation,
)

from ..auth import ReadAny
from ..batching import QueryEncoder
from ..deps import RuntimeDep, SettingsDep
from ..errors import ApiError, EmptyInput, Overloaded, TokenizerFailure, error_responses
from ..tei_schemas import (
    EmbedRequest,
    EmbedSparseRequest,
    Info,
    Rank,
    RerankRequest,
    SimpleToken,
    SparseValue,
    TokenizeRequest,
)

router = APIRouter(tags=["TEI-compatible encoding"])
ERRORS = error_responses(400, 401, 413, 422, 424, 429, 503)


class TeiValidation(ApiError):
    """A call TEI's validation refuses: too many inputs, too long, an unknown prompt. TEI
    answers these 413 (`Validation`), and so does this service."""

    status, error = 413, "validation"


class BackendMissing(ApiError):
    """What the call needs is not served here (no reranker, an encoder without ids)."""

    status, error = 424, "backend"


@contextmanager
def _slot(request: Request, limit: int) -> Iterator[None]:
    """Count the call in flight; over `limit` it is refused at once (TEI's 429)."""
    state = request.app.state
    if getattr(state, "tei_in_flight", 0) >= limit:
        raise Overloaded(f"{limit} encoding calls are in flight, the most this server takes")
    state.tei_in_flight = getattr(state, "tei_in_flight", 0) + 1
    try:
        yield
    finally:
        state.tei_in_flight -= 1


def _inputs(value: str | list[Any], limit: int) -> list[str | list[int]]:
    """The inputs as a list: a text or one row of ids is a batch of one."""
    if isinstance(value, str):
        batch: list[Any] = [value]
    elif value and all(isinstance(v, int) for v in value):
        batch = [value]
    else:
        batch = list(value)
    if not batch:
        raise EmptyInput("`inputs` cannot be empty")
    if len(batch) > limit:
        raise TeiValidation(f"batch size {len(batch)} > maximum allowed batch size {limit}")
    for i, item in enumerate(batch):
        if isinstance(item, list) and not item:
            raise EmptyInput(f"`inputs[{i}]` holds no token ids")
    return batch


def _too_long(i: int, tokens: int, limit: int) -> TeiValidation:
    return TeiValidation(
        f"`inputs[{i}]` has {tokens} tokens; this model reads at most {limit} (send "
        '"truncate": true to cut it)'
    )


def _sparse_side(prompt_name: str | None) -> Side:
    if prompt_name in (None, "document"):
        return "document"
    if prompt_name == "query":
        return "query"
    raise TeiValidation(
        f'prompt_name {prompt_name!r} is not a SPLADE side: "query", "document" or null'
    )


def _cut(row: np.ndarray, limit: int, truncation: Truncation, i: int) -> np.ndarray:
    """A row of ids cut as a text is: its first and last ids (`[CLS]`, `[SEP]`) stay."""
    if row.size <= limit:
        return row
    if truncation is None:
        raise _too_long(i, row.size, limit)
    keep = max(0, limit - 2)
    middle = row[1 : 1 + keep] if truncation == "right" else row[-1 - keep : -1]
    return np.concatenate([row[:1], middle, row[-1:]])


def _check_ids(row: np.ndarray, vocab: int, i: int) -> np.ndarray:
    if row.min() < 0 or row.max() >= vocab:
        bad = int(row[(row < 0) | (row >= vocab)][0])
        raise TokenizerFailure(
            f"`inputs[{i}]` holds token id {bad}, outside the vocabulary (0..{vocab - 1})"
        )
    return row


@router.post(
    "/embed_sparse",
    response_model=list[list[SparseValue]],
    responses=ERRORS,
    summary="SPLADE vectors (TEI's /embed_sparse)",
)
async def embed_sparse(
    body: EmbedSparseRequest, runtime: RuntimeDep, s: SettingsDep, request: Request, _: ReadAny
) -> JSONResponse:
    """The SPLADE vector of each input: its non-zero `{index, value}` pairs, by index."""
    with _slot(request, s.tei_max_concurrent_requests):
        encoder = runtime.encoding()
        sparse = encoder.sparse
        if not isinstance(sparse, TokenIdsEncoder):
            raise BackendMissing(f"the sparse encoder {type(sparse).__name__} takes no token ids")
        side = _sparse_side(body.prompt_name)
        batch = _inputs(body.inputs, s.tei_max_client_batch_size)
        truncation: Truncation = body.truncation_direction if body.truncate else None
        rows = await _sparse_rows(sparse, batch, side, truncation)
        vectors = await encoder.embed_sparse(rows, side)
        return JSONResponse(
            [
                [
                    {"index": int(i), "value": float(v)}
                    for i, v in zip(vec.indices.tolist(), vec.values.tolist(), strict=True)
                ]
                for vec in vectors  # a SparseVector's indices are sorted
            ]
        )


async def _sparse_rows(
    sparse: TokenIdsEncoder, batch: list[str | list[int]], side: Side, truncation: Truncation
) -> list[np.ndarray]:
    """Token ids of every input, texts tokenized as the model reads them; each checked
    against the side's length and the vocabulary."""
    limit = sparse.max_length(side)
    vocab = int(getattr(sparse, "vocab_size", 2**31))
    texts = [item for item in batch if isinstance(item, str)]
    tokenized = iter(await asyncio.to_thread(sparse.tokenize, texts, side, truncation))
    rows = []
    for i, item in enumerate(batch):
        if isinstance(item, str):
            row = next(tokenized)
        else:
            row = _check_ids(np.asarray(item, dtype=np.int64), vocab, i)
        rows.append(_cut(row, limit, truncation, i))
    return rows


@router.post(
    "/embed",
    response_model=list[list[float]],
    responses=ERRORS,
    summary="Dense embeddings (TEI's /embed)",
)
async def embed(
    body: EmbedRequest, runtime: RuntimeDep, s: SettingsDep, request: Request, _: ReadAny
) -> JSONResponse:
    """The dense embedding of each text, with the query or document prefix or none."""
    with _slot(request, s.tei_max_concurrent_requests):
        encoder = runtime.encoding()
        dense = encoder.dense
        if not isinstance(dense, TextEmbedder):
            raise BackendMissing(f"the dense encoder {type(dense).__name__} cannot embed here")
        batch = _inputs(body.inputs, s.tei_max_client_batch_size)
        if any(not isinstance(item, str) for item in batch):
            raise TokenizerFailure("/embed takes texts; token ids are read by /embed_sparse only")
        texts = [str(item) for item in batch]
        prompt = _dense_prompt(body.prompt_name)
        prefix = {"query": dense.query_prefix, "document": dense.document_prefix}.get(
            prompt or "", ""
        )
        await _check_lengths(dense, texts, prefix, body.truncate, body.truncation_direction)
        rows = np.stack(await encoder.embed_dense(texts, prompt, body.normalize))
        if body.dimensions is not None:
            rows = _first_dimensions(rows, body.dimensions, body.normalize)
        return JSONResponse(rows.tolist())


def _dense_prompt(prompt_name: str | None) -> Side | None:
    if prompt_name is None or prompt_name in ("query", "document"):
        return prompt_name  # type: ignore[return-value]  # checked just above
    raise TeiValidation(
        f'prompt_name {prompt_name!r} is not available: "query", "document" or null'
    )


async def _check_lengths(
    dense: TextEmbedder, texts: list[str], prefix: str, truncate: bool | None, direction: str
) -> None:
    if truncate:
        if direction == "left":
            raise TeiValidation("/embed cuts a long text at its end only: send Right")
        return
    counts = await asyncio.to_thread(dense.token_counts, texts, prefix)
    for i, n in enumerate(counts):
        if n > dense.max_length:
            raise _too_long(i, n, dense.max_length)


def _first_dimensions(rows: np.ndarray, dimensions: int, normalize: bool) -> np.ndarray:
    if dimensions > rows.shape[1]:
        raise TeiValidation(
            f"dimensions {dimensions} > the model's {rows.shape[1]} (ask 1 to {rows.shape[1]})"
        )
    rows = rows[:, :dimensions]
    if normalize:
        rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return rows.astype(np.float32, copy=False)


@router.post(
    "/rerank",
    response_model=list[Rank],
    responses=ERRORS,
    summary="Cross-encoder ranks (TEI's /rerank)",
)
async def rerank(
    body: RerankRequest, runtime: RuntimeDep, s: SettingsDep, request: Request, _: ReadAny
) -> JSONResponse:
    """Each text's score for the query, best first (`index`: its place in `texts`)."""
    with _slot(request, s.tei_max_concurrent_requests):
        runtime.encoding()
        scorer = runtime.scorer
        if scorer is None:
            raise BackendMissing("no reranker is served here: set RAG_SPLADE_RERANK_MODEL")
        if not body.texts:
            raise EmptyInput("`texts` cannot be empty")
        limit = s.tei_max_client_batch_size
        if len(body.texts) > limit:
            raise TeiValidation(
                f"batch size {len(body.texts)} > maximum allowed batch size {limit}"
            )
        pairs = [(body.query, text) for text in body.texts]
        await _check_pairs(scorer.reranker, pairs, body.truncate, body.truncation_direction)
        [scores] = await scorer.score([pairs], raw=body.raw_scores)
        order = sorted(range(len(pairs)), key=lambda i: (-float(scores[i]), i))
        return JSONResponse(
            [
                {"index": i, "score": float(scores[i])}
                | ({"text": body.texts[i]} if body.return_text else {})
                for i in order
            ]
        )


async def _check_pairs(
    reranker: object, pairs: list[tuple[str, str]], truncate: bool | None, direction: str
) -> None:
    if not isinstance(reranker, RawScorer):
        raise BackendMissing(f"the reranker {type(reranker).__name__} gives no raw scores")
    if truncate:
        if direction == "left":
            raise TeiValidation("/rerank cuts a long pair at its end only: send Right")
        return
    lengths = await asyncio.to_thread(reranker.pair_lengths, pairs)
    for i, n in enumerate(lengths):
        if n > reranker.max_length:
            raise TeiValidation(
                f"`texts[{i}]` with the query has {n} tokens; this model reads at most "
                f'{reranker.max_length} (send "truncate": true to cut it)'
            )


@router.post(
    "/tokenize",
    response_model=list[list[SimpleToken]],
    responses=ERRORS,
    summary="The SPLADE tokenizer's tokens (TEI's /tokenize)",
)
async def tokenize(
    body: TokenizeRequest, runtime: RuntimeDep, s: SettingsDep, request: Request, _: ReadAny
) -> JSONResponse:
    """Each text's tokens as the SPLADE model reads them, untruncated, with character
    offsets into the text (`start`/`stop`; null for `[CLS]`/`[SEP]` added around it)."""
    with _slot(request, s.tei_max_concurrent_requests):
        sparse = runtime.encoding().sparse
        if body.prompt_name is not None:
            raise TeiValidation("prompt_name must be null: the SPLADE model has no prompts")
        texts = [body.inputs] if isinstance(body.inputs, str) else list(body.inputs)
        if not texts:
            raise EmptyInput("`inputs` cannot be empty")
        limit = s.tei_max_client_batch_size
        if len(texts) > limit:
            raise TeiValidation(f"batch size {len(texts)} > maximum allowed batch size {limit}")
        out = await asyncio.to_thread(_tokens, sparse, texts, body.add_special_tokens)
        return JSONResponse(out)


def _tokens(sparse: Any, texts: Sequence[str], add_special: bool) -> list[list[dict[str, Any]]]:
    # what the tokenizer puts around a text: the ids of an empty one
    wrap = [int(i) for i in sparse.tokenize([""], "query")[0]] if add_special else []
    out = []
    for text in texts:
        spans = sparse.token_spans(text)
        names = sparse.terms([i for i, *_ in spans] + wrap)
        tokens = [
            {
                "id": i,
                "text": text[a:b] if a is not None and b is not None else names[k],
                "special": special,
                "start": a,
                "stop": b,
            }
            for k, (i, a, b, special) in enumerate(spans)
        ]
        if wrap:
            first, last = names[len(spans)], names[len(spans) + 1]
            tokens = [
                {"id": wrap[0], "text": first, "special": True, "start": None, "stop": None},
                *tokens,
                {"id": wrap[-1], "text": last, "special": True, "start": None, "stop": None},
            ]
        out.append(tokens)
    return out


@router.get("/info", response_model=Info, responses=ERRORS, summary="Served models (TEI's /info)")
async def info(runtime: RuntimeDep, s: SettingsDep, _: ReadAny) -> Info:
    """TEI's description of the SPLADE model, plus `rag_splade`: every model served, with
    what a remote encoder checks (model id, vocabulary size, fingerprint, prefixes)."""
    encoder = runtime.encoding()
    models = await asyncio.to_thread(served_models, encoder, runtime.scorer)
    sparse = encoder.sparse
    return Info(
        model_id=sparse.model_name,
        model_dtype=str(getattr(sparse, "dtype", "float32")).removeprefix("torch."),
        model_type={"embedding": {"pooling": "splade"}},  # type: ignore[arg-type]
        served_model_name=sparse.model_name,
        max_concurrent_requests=s.tei_max_concurrent_requests,
        max_input_length=sparse.document_max_length,
        max_batch_tokens=int(getattr(sparse, "max_batch_tokens", 0)),
        max_batch_requests=s.batch_max_size if s.microbatch else None,
        max_client_batch_size=s.tei_max_client_batch_size,
        auto_truncate=False,
        tokenization_workers=int(getattr(sparse, "tokenizer_workers", 0)),
        version=__version__,
        rag_splade=models,
    )


def served_models(encoder: QueryEncoder, scorer: Any) -> dict[str, Any]:
    """What this server encodes with, for a remote encoder's start-up check."""
    sparse, dense = encoder.sparse, encoder.dense
    out: dict[str, Any] = {
        "sparse": {
            "model_id": sparse.model_name,
            "vocab_size": sparse.vocab_size,
            "fingerprint": sparse.fingerprint,
            "query_max_length": _max_length(sparse, "query"),
            "document_max_length": sparse.document_max_length,
            "document_top_k": getattr(sparse, "document_top_k", None),
            "document_min_weight": getattr(sparse, "document_min_weight", None),
            "special_tokens": sparse.special_tokens,
        },
        "dense": {
            "model_id": dense.model_name,
            "dimension": dense.dimension,
            "fingerprint": getattr(dense, "fingerprint", None),
            "max_input_length": getattr(dense, "max_length", None),
            "query_prefix": getattr(dense, "query_prefix", None),
            "document_prefix": getattr(dense, "document_prefix", None),
        },
        "reranker": None,
    }
    if scorer is not None:
        reranker = scorer.reranker
        activation = getattr(getattr(reranker, "model", None), "activation_fn", None)
        out["reranker"] = {
            "model_id": reranker.model_name,
            "max_input_length": getattr(reranker, "max_length", None),
            "activation": type(activation).__name__ if activation is not None else None,
        }
    return out


def _max_length(sparse: Any, side: Side) -> int | None:
    return int(sparse.max_length(side)) if isinstance(sparse, TokenIdsEncoder) else None
