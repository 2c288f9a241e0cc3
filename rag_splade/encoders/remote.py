"""Remote encoders: the SPLADE encoder, the dense encoder and the reranker on an encoder
server (`rag-splade serve --encoders-only`, or Text Embeddings Inference).

- `RemoteSpladeEncoder` tokenizes here (explanations need the tokenizer anyway) and sends
  token ids to `/embed_sparse`, so a TEI that only has a dummy fast tokenizer works too.
- `RemoteDenseEncoder` and `RemoteReranker` send text to `/embed` and `/rerank`.

Each reads the server's `/info` once, at start, and refuses another model than the one
this process names (`RemoteModelMismatchError`). A rag_splade server also reports its
lengths, pruning, prefixes and the SPLADE model's fingerprint, which the embedded index's
manifest then checks like a local model's. The process itself needs no GPU and no
weights, only the SPLADE tokenizer's files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rag_splade.checks import check_positive_int, check_texts
from rag_splade.encoders.dense import prefixes_for
from rag_splade.encoders.protocols import Side
from rag_splade.encoders.splade_vocab import SpladeTokenizing
from rag_splade.encoders.tei_client import RemoteEndpoint, chunks
from rag_splade.errors import RemoteModelMismatchError
from rag_splade.settings import DEFAULT_DENSE_MODEL, DEFAULT_RERANK_MODEL, DEFAULT_SPARSE_MODEL
from rag_splade.types import SparseVector

__all__ = ["RemoteDenseEncoder", "RemoteReranker", "RemoteSpladeEncoder"]

# tokenized here and on the server at start: the same ids, or not the same tokenizer
PROBE_TEXT = "東京スカイツリーの高さは634メートル、ＡＢＣ株式会社は1999年に創業。"


def same_model(expected: str, served: str) -> bool:
    """Whether a server's model id names the model this process expects: the same id, or
    the same last path component (`cl-nagoya/ruri-v3-130m` is `/models/ruri-v3-130m`)."""
    return expected == served or _last_part(expected) == _last_part(served)


def _last_part(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


def _ours(endpoint: RemoteEndpoint, info: Any, kind: str) -> dict[str, Any] | None:
    """What a rag_splade server reports of its `kind` model; None from a plain TEI."""
    if not isinstance(info, dict):
        raise endpoint.malformed("/info", f"{type(info).__name__}, not an object")
    served = info.get("rag_splade")
    if served is None:
        return None
    if not isinstance(served, dict):
        raise endpoint.malformed("/info", f"its rag_splade section is a {type(served).__name__}")
    model = served.get(kind)
    if not isinstance(model, dict):
        runs = sorted(k for k, v in served.items() if isinstance(v, dict)) or "none"
        raise RemoteModelMismatchError(
            f"the encoder server at {endpoint.url} ({endpoint.setting}) runs no {kind} model "
            f"(it runs: {runs})"
        )
    return model


def _check_model(endpoint: RemoteEndpoint, what: str, env: str, expected: str, served: Any) -> None:
    if not isinstance(served, str) or not same_model(expected, served):
        raise RemoteModelMismatchError(
            f"the {what} server at {endpoint.url} ({endpoint.setting}) runs {served!r}, not "
            f"{expected!r} ({env}): point it at a server of that model, or set {env} to the "
            "model the server runs"
        )


def _mismatch(endpoint: RemoteEndpoint, what: str, detail: str) -> RemoteModelMismatchError:
    return RemoteModelMismatchError(
        f"the {what} server at {endpoint.url} ({endpoint.setting}) {detail}"
    )


class RemoteSpladeEncoder(SpladeTokenizing):
    """SPLADE vectors from an encoder server, tokenized here; implements
    `SparseEncoderProtocol` (and takes token ids, like `SpladeEncoder`).

    Args:
        url: the server (`http://encoder:8000`, or a TEI's URL).
        model_name_or_path: the SPLADE model the server must run; its tokenizer files are
            read here (hub id or local directory).
        api_key: the server's key, sent as `Authorization: Bearer`.
        query_max_length, document_max_length: tokens kept here before the ids are sent.
        document_top_k, document_min_weight: document pruning. A rag_splade server prunes
            and must prune the same way; a TEI returns whole vectors, pruned here.
        batch_size: texts per call (at most the server's `max_client_batch_size`).
        timeout, retries, concurrency: of the transport (`RemoteEndpoint`).

    Raises:
        RemoteEncoderError: the server cannot be reached at start.
        RemoteModelMismatchError: it runs another model, tokenizer, length or pruning.

    Example:
        >>> sparse = RemoteSpladeEncoder("http://encoder:8000")  # doctest: +SKIP
        >>> [v] = sparse.encode_queries(["富士山の高さは？"])  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        model_name_or_path: str = DEFAULT_SPARSE_MODEL,
        *,
        api_key: str | None = None,
        query_max_length: int = 64,
        document_max_length: int = 512,
        document_top_k: int | None = None,
        document_min_weight: float | None = None,
        batch_size: int = 32,
        timeout: float = 30.0,
        retries: int = 3,
        concurrency: int = 4,
        fast_tokenizer: bool = True,
        setting: str = "RAG_SPLADE_SPARSE_URL",
    ) -> None:
        from transformers import AutoTokenizer

        for name, value in (("query_max_length", query_max_length), ("batch_size", batch_size)):
            check_positive_int(name, value)
        check_positive_int("document_max_length", document_max_length)
        check_positive_int("document_top_k", document_top_k, optional=True)
        self.model_name = str(model_name_or_path)
        self.query_max_length = query_max_length
        self.document_max_length = document_max_length
        self.document_top_k = document_top_k
        self.document_min_weight = document_min_weight
        self._set_tokenizer(AutoTokenizer.from_pretrained(self.model_name), fast_tokenizer)
        self.endpoint = _endpoint(url, setting, api_key, timeout, retries, concurrency)

        def start(info: dict[str, Any]) -> None:
            self._served = _ours(self.endpoint, info, "sparse")
            self._check(info)
            self.batch_size = _batch_size(info, batch_size)

        _started(self.endpoint, start)

    def _check(self, info: dict[str, Any]) -> None:
        served, local_vocab = self._served, len(self.tokenizer)
        what, env = "SPLADE", "RAG_SPLADE_SPARSE_MODEL"
        if served is None:  # a TEI: its model id and pooling; whole vectors, pruned here
            _check_model(self.endpoint, what, env, self.model_name, info.get("model_id"))
            pooling = (info.get("model_type") or {}).get("embedding", {}).get("pooling")
            if pooling != "splade":
                raise _mismatch(self.endpoint, what, f"pools with {pooling!r}, not SPLADE")
            self._vocab, self._fingerprint = local_vocab, None
            if int(info.get("max_input_length", 0)) < self.document_max_length:
                raise _mismatch(
                    self.endpoint,
                    what,
                    f"reads at most {info.get('max_input_length')} tokens; documents here keep "
                    f"{self.document_max_length} (RAG_SPLADE_DOCUMENT_MAX_LENGTH)",
                )
            return
        _check_model(self.endpoint, what, env, self.model_name, served.get("model_id"))
        # the model's output size (its config), which may pad the tokenizer's vocabulary
        vocab = served.get("vocab_size")
        if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < local_vocab:
            raise _mismatch(
                self.endpoint,
                what,
                f"has a vocabulary of {vocab!r}; the tokenizer here has {local_vocab}",
            )
        for side in ("query", "document"):
            theirs, mine = served.get(f"{side}_max_length") or 0, self.max_length(side)
            if theirs < mine:
                raise _mismatch(
                    self.endpoint,
                    what,
                    f"reads at most {theirs} tokens of a {side}; here a {side} keeps {mine} "
                    f"(RAG_SPLADE_{side.upper()}_MAX_LENGTH)",
                )
        pruning = (served.get("document_top_k"), served.get("document_min_weight"))
        if pruning != (self.document_top_k, self.document_min_weight):
            raise _mismatch(
                self.endpoint,
                what,
                f"prunes documents with top_k, min_weight = {pruning}; here they are "
                f"{(self.document_top_k, self.document_min_weight)} "
                "(RAG_SPLADE_DOCUMENT_TOP_K, RAG_SPLADE_DOCUMENT_MIN_WEIGHT)",
            )
        answer = self.endpoint.post("/tokenize", {"inputs": [PROBE_TEXT]})
        with self.endpoint.reading("/tokenize"):
            [tokens] = answer
            theirs_ids = [t["id"] for t in tokens]
        mine_ids = [int(i) for i in self.tokenize([PROBE_TEXT], "document", None)[0]]
        if theirs_ids != mine_ids:
            raise _mismatch(self.endpoint, what, "tokenizes differently from the tokenizer here")
        fingerprint = served.get("fingerprint")
        self._vocab = vocab
        self._fingerprint = fingerprint if isinstance(fingerprint, str) else None

    @property
    def vocab_size(self) -> int:
        return self._vocab

    @property
    def fingerprint(self) -> str | None:
        """The server's model fingerprint (a rag_splade server reports it; None from TEI)."""
        return self._fingerprint

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        return self.encode_ids(self.tokenize(texts, "query"), "query")

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        return self.encode_ids(self.tokenize(texts, "document"), "document")

    def encode_ids(
        self, ids: Sequence[Sequence[int] | np.ndarray], side: Side
    ) -> list[SparseVector]:
        """Vectors of token-id rows (special tokens included), `batch_size` rows a call."""
        rows = self.check_id_rows(ids, side)

        def send(part: range) -> list[SparseVector]:
            body: dict[str, Any] = {"inputs": [rows[i].tolist() for i in part], "truncate": False}
            if self._served is not None:  # TEI knows no sides (its prompts are text)
                body["prompt_name"] = side
            answer = self.endpoint.post("/embed_sparse", body)
            with self.endpoint.reading("/embed_sparse"):
                return [_sparse_vector(v, self._vocab) for v in _rows_of(answer, len(part))]

        vectors = [
            v
            for part in self.endpoint.map_batches(send, chunks(len(rows), self.batch_size))
            for v in part
        ]
        if side == "document" and self._served is None:
            vectors = [v.pruned(self.document_top_k, self.document_min_weight) for v in vectors]
        return vectors

    def close(self) -> None:
        self.endpoint.close()

    def __repr__(self) -> str:
        return f"RemoteSpladeEncoder({self.endpoint.url!r}, {self.model_name!r})"


def _endpoint(
    url: str, setting: str, api_key: str | None, timeout: float, retries: int, concurrency: int
) -> RemoteEndpoint:
    return RemoteEndpoint(
        url,
        setting=setting,
        api_key=api_key,
        timeout=timeout,
        retries=retries,
        concurrency=concurrency,
    )


def _started(endpoint: RemoteEndpoint, start: Callable[[dict[str, Any]], None]) -> None:
    """Read the server's `/info` and run `start` on it (the model checks, the batch size);
    a malformed answer is the server's error, and a failure closes the endpoint."""
    try:
        info = endpoint.get("/info")
        with endpoint.reading("/info"):
            start(info)
    except BaseException:
        endpoint.close()
        raise


def _batch_size(info: dict[str, Any], wanted: int) -> int:
    """`wanted`, or the server's `max_client_batch_size` where that is smaller."""
    limit = info.get("max_client_batch_size")
    if limit is None:
        return wanted
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"max_client_batch_size is {limit!r}, not a positive int")
    return min(wanted, limit)


# Answers are read inside `RemoteEndpoint.reading`: a ValueError or TypeError raised here
# becomes a RemoteEncoderError naming the server.
def _rows_of(answer: Any, expected: int) -> list[Any]:
    if not isinstance(answer, list) or len(answer) != expected:
        got = len(answer) if isinstance(answer, list) else type(answer).__name__
        raise ValueError(f"{got} rows for {expected} inputs")
    return answer


def _sparse_vector(pairs: Any, vocab: int) -> SparseVector:
    indices = np.fromiter((int(p["index"]) for p in pairs), np.int64)
    values = np.fromiter((float(p["value"]) for p in pairs), np.float32)
    if indices.size and (indices.min() < 0 or indices.max() >= vocab):
        raise ValueError(f"ids outside the vocabulary 0..{vocab - 1}")
    if np.unique(indices).size != indices.size or not np.isfinite(values).all():
        raise ValueError("a repeated id or a weight that is not a finite number")
    return SparseVector(indices.astype(np.int32), values)


class RemoteDenseEncoder:
    """Dense embeddings from an encoder server; implements `DenseEncoderProtocol`.

    A rag_splade server applies its own query and document prefixes (checked against
    `query_prefix` / `document_prefix` when those are given); a TEI gets the prefix
    written before each text (given, or the model family's, as `DenseEncoder` picks it).
    """

    def __init__(
        self,
        url: str,
        model_name: str = DEFAULT_DENSE_MODEL,
        *,
        api_key: str | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        batch_size: int = 32,
        timeout: float = 30.0,
        retries: int = 3,
        concurrency: int = 4,
        setting: str = "RAG_SPLADE_DENSE_URL",
    ) -> None:
        check_positive_int("batch_size", batch_size)
        self.model_name = str(model_name)
        self.endpoint = _endpoint(url, setting, api_key, timeout, retries, concurrency)

        def start(info: dict[str, Any]) -> None:
            self._served = _ours(self.endpoint, info, "dense")
            self.batch_size = _batch_size(info, batch_size)
            self._setup(info, query_prefix, document_prefix)

        _started(self.endpoint, start)

    def _setup(
        self, info: dict[str, Any], query_prefix: str | None, document_prefix: str | None
    ) -> None:
        what, env = "dense", "RAG_SPLADE_DENSE_MODEL"
        served = self._served
        if served is None:
            _check_model(self.endpoint, what, env, self.model_name, info.get("model_id"))
            kind = info.get("model_type") or {}
            if "embedding" not in kind or kind["embedding"].get("pooling") == "splade":
                raise _mismatch(self.endpoint, what, f"is not a dense embedding model ({kind})")
            known = prefixes_for(self.model_name) or ("", "")
            self.query_prefix = known[0] if query_prefix is None else query_prefix
            self.document_prefix = known[1] if document_prefix is None else document_prefix
            self._dimension = len(self._embed(["次元"], "query")[0])
            self._fingerprint = None
            return
        _check_model(self.endpoint, what, env, self.model_name, served.get("model_id"))
        for side, mine in (("query", query_prefix), ("document", document_prefix)):
            theirs = served.get(f"{side}_prefix")
            if mine is not None and mine != theirs:
                raise _mismatch(
                    self.endpoint,
                    what,
                    f"puts {theirs!r} before a {side}; here it is {mine!r} "
                    f"(RAG_SPLADE_{side.upper()}_PREFIX)",
                )
        self.query_prefix = str(served.get("query_prefix") or "")
        self.document_prefix = str(served.get("document_prefix") or "")
        self._dimension = int(served["dimension"])
        fingerprint = served.get("fingerprint")
        self._fingerprint = fingerprint if isinstance(fingerprint, str) else None

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def fingerprint(self) -> str | None:
        """The server's dense model fingerprint (a rag_splade server reports it; None from
        a TEI: not checked)."""
        return self._fingerprint

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(check_texts(texts, "texts"), "query")

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(check_texts(texts, "texts"), "document")

    def _embed(self, texts: list[str], side: Side) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prefix = self.query_prefix if side == "query" else self.document_prefix

        def send(part: range) -> np.ndarray:
            body: dict[str, Any] = {"normalize": True, "truncate": True}
            if self._served is not None:
                body |= {"inputs": [texts[i] for i in part], "prompt_name": side}
            else:
                body["inputs"] = [prefix + texts[i] for i in part]
            answer = self.endpoint.post("/embed", body)
            with self.endpoint.reading("/embed"):
                rows = np.asarray(_rows_of(answer, len(part)), np.float32)  # ragged: ValueError
                if rows.ndim != 2 or not np.isfinite(rows).all():
                    raise ValueError("rows of unequal length or values that are not numbers")
                known = getattr(self, "_dimension", None)  # unset while it is being learnt
                if known is not None and rows.shape[1] != known:
                    raise ValueError(f"rows of {rows.shape[1]} values, not {known}")
                return rows

        parts = self.endpoint.map_batches(send, chunks(len(texts), self.batch_size))
        return np.concatenate(parts).astype(np.float32, copy=False)

    def close(self) -> None:
        self.endpoint.close()

    def __repr__(self) -> str:
        return f"RemoteDenseEncoder({self.endpoint.url!r}, {self.model_name!r})"


class RemoteReranker:
    """Cross-encoder scores from an encoder server's `/rerank`; implements
    `RerankerProtocol`. Scores are the model's activation of its logits (TEI's default)."""

    def __init__(
        self,
        url: str,
        model_name: str = DEFAULT_RERANK_MODEL,
        *,
        api_key: str | None = None,
        max_length: int = 512,
        batch_size: int = 32,
        timeout: float = 30.0,
        retries: int = 3,
        concurrency: int = 4,
        setting: str = "RAG_SPLADE_RERANK_URL",
    ) -> None:
        check_positive_int("batch_size", batch_size)
        self.model_name = str(model_name)
        self.max_length = max_length
        self.endpoint = _endpoint(url, setting, api_key, timeout, retries, concurrency)

        def start(info: dict[str, Any]) -> None:
            self._check(info)
            self.batch_size = _batch_size(info, batch_size)

        _started(self.endpoint, start)

    def _check(self, info: dict[str, Any]) -> None:
        what, env = "reranker", "RAG_SPLADE_RERANK_MODEL"
        served = _ours(self.endpoint, info, "reranker")
        if served is None:
            _check_model(self.endpoint, what, env, self.model_name, info.get("model_id"))
            if "reranker" not in (info.get("model_type") or {}):
                raise _mismatch(self.endpoint, what, "does not serve a reranker")
            return
        _check_model(self.endpoint, what, env, self.model_name, served.get("model_id"))
        if served.get("max_input_length") != self.max_length:
            raise _mismatch(
                self.endpoint,
                what,
                f"keeps {served.get('max_input_length')} tokens of a pair; here "
                f"{self.max_length} (RAG_SPLADE_RERANK_MAX_LENGTH)",
            )

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One float32 score per pair, in input order (pairs of one query share calls)."""
        for i, pair in enumerate(pairs):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2) or not all(
                isinstance(t, str) for t in pair
            ):
                raise TypeError(
                    f"pairs[{i}] must be a (query, passage) pair of str, got {pair!r:.80}"
                )
        scores = np.zeros(len(pairs), dtype=np.float32)
        by_query: dict[str, list[int]] = {}
        for i, (query, _) in enumerate(pairs):
            by_query.setdefault(query, []).append(i)
        calls = [
            (query, positions[part.start : part.stop])
            for query, positions in by_query.items()
            for part in chunks(len(positions), self.batch_size)
        ]

        def send(call: tuple[str, list[int]]) -> None:
            query, positions = call
            body = {"query": query, "texts": [pairs[i][1] for i in positions], "truncate": True}
            answer = self.endpoint.post("/rerank", body)
            with self.endpoint.reading("/rerank"):
                ranks = _rows_of(answer, len(positions))
                got = {int(rank["index"]): float(rank["score"]) for rank in ranks}
                if sorted(got) != list(range(len(positions))):
                    raise ValueError(f"indices {sorted(got)[:8]} for texts 0..{len(positions) - 1}")
                if not np.isfinite(list(got.values())).all():
                    raise ValueError("a score that is not a finite number")
                for index, score in got.items():
                    scores[positions[index]] = score

        self.endpoint.map_batches(send, calls)
        return scores

    def close(self) -> None:
        self.endpoint.close()

    def __repr__(self) -> str:
        return f"RemoteReranker({self.endpoint.url!r}, {self.model_name!r})"
