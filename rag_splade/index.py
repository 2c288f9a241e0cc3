"""`HybridIndex`: chunk, encode both ways, store, search in one Qdrant round trip, explain."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from typing_extensions import Unpack

from rag_splade.checks import check_choice, check_doc_id, check_positive_int, check_query
from rag_splade.documents import (
    INFO_FIELDS,
    ChunkMetadata,
    DocumentInfo,
    PlannedChunk,
    document_infos,
    plan_chunks,
)
from rag_splade.encoders.protocols import (
    DenseEncoderProtocol,
    RerankerProtocol,
    SparseEncoderProtocol,
)
from rag_splade.encoders.reranker import reranker_from_settings
from rag_splade.explain import explain_match, explain_query
from rag_splade.factories import encoders_from_settings, store_from_settings
from rag_splade.fingerprint import vector_spec
from rag_splade.metadata import check_metadata
from rag_splade.ranking import cut_inside_tie, cut_position, per_document, rrf_by_fixed_ranks
from rag_splade.search import (
    FUSIONS,
    MAX_TOP_K,
    Fusion,
    QueryVectors,
    SearchArgs,
    SearchRequest,
    options_from,
    requests_for,
)
from rag_splade.store.base import (
    ChunkPoint,
    HybridQuery,
    HybridStore,
    Optimizable,
    RankedChunk,
    StoredChunk,
)
from rag_splade.store.filters import parse_filters
from rag_splade.store.payload_indexes import check_declared, check_values
from rag_splade.store.tenants import ALL_TENANTS, DEFAULT_TENANT, check_tenant
from rag_splade.text.chunking import Chunk, Chunker
from rag_splade.types import Document, QueryTerm, SearchHit, SparseVector

if TYPE_CHECKING:
    from rag_splade.settings import Settings

__all__ = ["MAX_TOP_K", "AddResult", "DocumentInfo", "HybridIndex", "Retrieved"]

# Hits fetched past the cut, to see whether equal scores straddle it (then more are fetched).
TIE_MARGIN = 4


@dataclass(frozen=True)
class Retrieved:
    """A request's candidates, before reranking and explanations (`HybridIndex.retrieve`).

    `request` is resolved; `query_vector` is the query's SPLADE vector when the request
    explains; `ranked` is in the fixed order, `pool` long at most.
    """

    request: SearchRequest
    query_vector: SparseVector | None
    ranked: list[RankedChunk]

    def rerank_pairs(self) -> list[tuple[str, str]]:
        """The (query, passage) pairs to rerank: every candidate's, or none."""
        if not self.request.rerank:
            return []
        return [(self.request.query, r.chunk.text) for r in self.ranked]


def split_scores(retrieved: Sequence[Retrieved], scores: np.ndarray) -> list[np.ndarray | None]:
    """Scores of all the `rerank_pairs` of `retrieved`, back to one array per request (None
    for a request that does not rerank)."""
    out: list[np.ndarray | None] = []
    start = 0
    for r in retrieved:
        n = len(r.rerank_pairs())
        out.append(scores[start : start + n] if r.request.rerank else None)
        start += n
    return out


@dataclass(frozen=True)
class AddResult:
    """What `HybridIndex.add` wrote."""

    documents: int
    chunks: int


class HybridIndex:
    """The one object that ties the two encoders to a store.

    Example:
        >>> index = HybridIndex(sparse=SpladeEncoder(), dense=DenseEncoder(),
        ...                     store=EdgeStore("./data/index"))  # doctest: +SKIP
        >>> index.add([Document(id="faq-12", text="燃費を良くするには…")])  # doctest: +SKIP
        >>> hits = index.search("燃費を良くするには", top_k=5, explain=True)  # doctest: +SKIP
        >>> hits[0].explanation.terms[0].term  # doctest: +SKIP
        '燃費'

    Args:
        candidates: length of each retriever's candidate list before fusion.
        rrf_k: RRF constant in Qdrant's convention, where the top item scores 1/k:
            Qdrant's k=61 is the k=60 of Cormack et al. (2009), whose ranks start at 1.
        chunk_overlap_sentences: sentences shared by consecutive chunks.
        normalize_text: NFKC-normalise chunk texts before storing them.
        reranker: the cross-encoder that `search(..., rerank=True)` uses; None: no reranking.
        rerank_candidates: fused hits the reranker scores unless a search says otherwise.
        payload_indexes: metadata fields to index in Qdrant, `{key: type}` with a type of
            `keyword`, `integer`, `float`, `bool` or `datetime`: filters on them use the
            index, and a value that does not fit its type is refused when added.

    Tenants: the index is the default tenant's; `index.tenant("acme")` is a view of the
    same encoders and store that reads and writes only tenant `acme` (see
    `rag_splade.store.tenants`).

    Hits come in a fixed order: equal fused scores are ordered by the better of the two
    retriever ranks, then the sparse rank, then the point id (`ranking.tie_break_key`),
    so the same search on the same index gives the same list every time; equal rerank
    scores keep that order.
    """

    def __init__(
        self,
        sparse: SparseEncoderProtocol,
        dense: DenseEncoderProtocol,
        store: HybridStore,
        *,
        candidates: int = 100,
        fusion: Fusion = "rrf",
        rrf_k: int = 61,
        chunk_overlap_sentences: int = 1,
        normalize_text: bool = False,
        reranker: RerankerProtocol | None = None,
        rerank_candidates: int = 50,
        payload_indexes: Mapping[str, str] | None = None,
    ) -> None:
        check_choice("fusion", fusion, FUSIONS)
        check_positive_int("candidates", candidates)
        check_positive_int("rrf_k", rrf_k)
        check_positive_int("rerank_candidates", rerank_candidates)
        for name, value, kind in (
            ("sparse", sparse, SparseEncoderProtocol),
            ("dense", dense, DenseEncoderProtocol),
        ):
            if not isinstance(value, kind):
                raise TypeError(f"{name} must be a {kind.__name__}, got {value!r:.80}")
        if reranker is not None and not isinstance(reranker, RerankerProtocol):
            raise TypeError(f"reranker must be a Reranker or None, got {reranker!r:.80}")
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates
        self.sparse = sparse
        self.dense = dense
        self.store = store
        self.candidates = candidates
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.chunker = Chunker(
            sparse.count_tokens,
            max_tokens=sparse.document_max_length - sparse.special_tokens,
            overlap_sentences=chunk_overlap_sentences,
            normalize=normalize_text,
        )
        # what the encoders' vectors look like; the store refuses an index built for others
        self.spec = vector_spec(sparse, dense)
        self.payload_fields = check_declared(payload_indexes)
        self.tenant_id = DEFAULT_TENANT
        self._is_view = False  # a tenant view shares the store: closing it closes nothing
        store.open(self.spec)
        if self.payload_fields:
            store.ensure_payload_indexes(self.payload_fields)

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        encoders: tuple[SparseEncoderProtocol, DenseEncoderProtocol] | None = None,
        reranker: RerankerProtocol | None = None,
        load_reranker: bool = True,
    ) -> HybridIndex:
        """Build encoders, reranker and store from `Settings` (the `RAG_SPLADE_*` environment).

        `encoders` and `reranker` reuse already loaded models (the service keeps them while
        it waits for an unreachable store); without `reranker`, the one `rerank_model`
        names is loaded, unless `load_reranker` is False.
        """
        from rag_splade.settings import Settings

        s = settings or Settings()
        sparse, dense = encoders or encoders_from_settings(s)
        if reranker is None and load_reranker:
            reranker = reranker_from_settings(s)
        return cls(
            sparse,
            dense,
            store_from_settings(s),
            candidates=s.candidates,
            fusion=s.fusion,
            rrf_k=s.rrf_k,
            chunk_overlap_sentences=s.chunk_overlap_sentences,
            normalize_text=s.normalize_text,
            reranker=reranker,
            rerank_candidates=s.rerank_candidates,
            payload_indexes=s.payload_indexes,
        )

    def tenant(self, tenant: str) -> HybridIndex:
        """This index seen as `tenant`: every read and write of the view (add, search, get,
        delete, documents, count) is scoped to it in the store, and the same document id
        in two tenants is two documents. The view shares the encoders and the store;
        closing it leaves the index open.

        Example:
            >>> acme = index.tenant("acme")  # doctest: +SKIP
            >>> acme.add([Document(id="faq-1", text="…")])  # doctest: +SKIP
        """
        view = copy.copy(self)
        view.tenant_id = check_tenant(tenant)
        view._is_view = True
        return view

    # -- writing ---------------------------------------------------------------------------
    def chunk(self, document: Document) -> list[Chunk]:
        """The chunks `add` would store for `document`."""
        return self.chunker.split(document.text)

    def add(
        self,
        documents: Iterable[Document],
        *,
        batch_size: int = 64,
        chunk_metadata: ChunkMetadata | None = None,
        chunks: Sequence[Sequence[Chunk]] | None = None,
    ) -> AddResult:
        """Add or replace documents: chunk, encode both ways in batches, upsert.

        Re-adding a document id overwrites its chunks and removes the ones left over
        when it got shorter. Everything is validated before anything is written.

        Args:
            chunk_metadata: `(document, chunk) -> {key: value}` added to that chunk's
                metadata only (e.g. the page it starts on); its keys must not repeat the
                document's metadata keys.
            chunks: what `chunk()` gave for each document, in order, for a caller that
                looked at the chunks first (to size its batches, say): they are used as
                they are instead of chunking again.
        """
        check_positive_int("batch_size", batch_size)
        if isinstance(documents, Document | str | bytes) or not isinstance(documents, Iterable):
            raise TypeError(
                f"documents must be an iterable of Document (a list), got {documents!r:.80}; "
                "wrap one document in a list: add([doc])"
            )
        docs = list(documents)
        planned = plan_chunks(docs, self.chunk, chunks, chunk_metadata)
        for p in planned:  # again: a dict can change after its Document was built
            check_metadata(p.metadata, p.doc_id)
            check_values(p.metadata, self.payload_fields, p.doc_id)
        for start in range(0, len(planned), batch_size):
            self._write_batch(planned[start : start + batch_size])
        if isinstance(self.store, Optimizable):
            self.store.maybe_optimize()
        return AddResult(documents=len(docs), chunks=len(planned))

    def _write_batch(self, batch: list[PlannedChunk]) -> None:
        texts = [p.chunk.text for p in batch]
        sparse = self.sparse.encode_documents(texts)
        dense = self.dense.encode_documents(texts)
        points = [
            ChunkPoint(
                p.doc_id,
                p.chunk.index,
                p.chunk.text,
                p.chunk.start,
                p.chunk.end,
                p.metadata,
                s,
                d,
                p.total,
                p.chunk_keys,
                self.tenant_id,
            )
            for p, s, d in zip(batch, sparse, dense, strict=True)
        ]
        self.store.upsert(points)
        # Stale chunks go only after the new ones are written: a crash never loses a document.
        for p in batch:
            if p.chunk.index == p.total - 1:
                self.store.delete_stale_chunks(p.doc_id, keep=p.total, tenant=self.tenant_id)

    def delete(self, doc_id: str) -> int:
        """Delete a document's chunks; return how many there were (0: unknown id)."""
        return self.store.delete_document(check_doc_id(doc_id), tenant=self.tenant_id)

    def get(self, doc_id: str) -> list[StoredChunk]:
        """A document's stored chunks, in order ([] for an unknown id)."""
        return self.store.get_document(check_doc_id(doc_id), tenant=self.tenant_id)

    def documents(self, filters: Mapping[str, Any] | None = None) -> dict[str, DocumentInfo]:
        """Every stored document (matching `filters`) by id, read without texts or vectors."""
        payloads = self.store.iter_payloads(
            INFO_FIELDS, parse_filters(filters), tenant=self.tenant_id
        )
        return document_infos(payloads)

    def count(self, filters: Mapping[str, Any] | None = None) -> int:
        """Chunks of this tenant (matching `filters`)."""
        return self.store.count(parse_filters(filters), tenant=self.tenant_id)

    def count_all_tenants(self) -> int:
        """Chunks of every tenant together (an operator's statistic)."""
        return self.store.count(tenant=ALL_TENANTS)

    def payload_indexes(self) -> dict[str, str]:
        """The payload indexes the store holds (payload path -> type); qdrant-client's
        local mode holds none."""
        return self.store.payload_indexes()

    def optimize(self) -> None:
        """Index freshly written segments now (Edge; a server does it in the background)."""
        if isinstance(self.store, Optimizable):
            self.store.optimize()

    # -- searching -------------------------------------------------------------------------
    def search(self, query: str, top_k: int = 5, **options: Unpack[SearchArgs]) -> list[SearchHit]:
        """Search in one Qdrant round trip and return hits, best first.

        The keyword arguments are the fields of `SearchOptions` (see there): `mode`,
        `fusion`, `weights`, `rrf_k`, `candidates`, `filters`, `explain`, `rerank`,
        `rerank_candidates`, `offset`, `min_score`, `group_by_document`. Fusion, rrf_k,
        candidates and rerank_candidates default to this index's settings. With `rerank`,
        the best `rerank_candidates` fused hits are scored by the reranker, which picks the
        `top_k`.

        Example:
            >>> index.search("燃費を良くするには", top_k=5, mode="hybrid",
            ...              filters={"source": "faq"})  # doctest: +SKIP
        """
        return self.search_requests([options_from(top_k, options).with_query(query)])[0]

    def search_batch(
        self, queries: Sequence[str], top_k: int = 5, **options: Unpack[SearchArgs]
    ) -> list[list[SearchHit]]:
        """`search` for many queries: one encoder forward pass per model for all of them,
        and the rerank pairs of all of them scored in shared batches."""
        return self.search_requests(requests_for(queries, options_from(top_k, options)))

    def search_requests(self, requests: Sequence[SearchRequest]) -> list[list[SearchHit]]:
        """Run prepared requests through the search stages: `resolve`, `encode_queries`
        (one batch per model for all), `retrieve`, `rerank_scores` (the pairs of all of them
        together), `finish`. The service runs the same stages with its shared micro-batches
        in place of the two model steps; no front end re-implements a stage."""
        requests = [self.resolve(r) for r in requests]  # fail before any model runs
        vectors = self.encode_queries(requests)
        retrieved = [self.retrieve(r, v) for r, v in zip(requests, vectors, strict=True)]
        scores = self.rerank_scores(retrieved)
        return [self.finish(r, s) for r, s in zip(retrieved, scores, strict=True)]

    def encode_queries(self, requests: Sequence[SearchRequest]) -> list[QueryVectors]:
        """The query vectors each request needs, one forward pass per model for all; the
        two models run at the same time (the SPLADE one in a worker thread: both release
        the GIL in their forward passes)."""
        sparse_for = [r.query for r in requests if r.needs_sparse]
        dense_for = [r.query for r in requests if r.needs_dense]
        pending = (
            _encoder_thread().submit(self.sparse.encode_queries, sparse_for)
            if (sparse_for and dense_for)
            else None
        )
        dense = iter(self.dense.encode_queries(dense_for) if dense_for else [])
        if pending is not None:
            sparse = iter(pending.result())
        else:
            sparse = iter(self.sparse.encode_queries(sparse_for) if sparse_for else [])
        return [
            QueryVectors(
                next(sparse) if r.needs_sparse else None, next(dense) if r.needs_dense else None
            )
            for r in requests
        ]

    def resolve(self, request: SearchRequest) -> SearchRequest:
        """`request` with this index's fusion, rrf_k, candidates and rerank_candidates where
        it left them None (raises if they do not fit it: weights with this index's `dbsf`,
        `rerank` without a reranker). A request is resolved once: a resolved one comes back
        as it is."""
        if request.is_resolved:
            return request
        if request.rerank and self.reranker is None:
            raise ValueError(
                "rerank=True but this index has no reranker: pass HybridIndex(..., "
                "reranker=Reranker(...)) or set RAG_SPLADE_RERANK_MODEL (for example "
                "hotchpotch/japanese-reranker-cross-encoder-small-v1)"
            )
        return request.resolved(
            fusion=self.fusion,
            rrf_k=self.rrf_k,
            candidates=self.candidates,
            rerank_candidates=self.rerank_candidates,
        )

    def retrieve(self, request: SearchRequest, vectors: QueryVectors) -> Retrieved:
        """The request's fused candidates in one Qdrant round trip, in the fixed order:
        `top_k` of them, or `rerank_candidates` when it reranks."""
        request = self.resolve(request)
        for name, needed, vector in (
            ("sparse", request.needs_sparse, vectors.sparse),
            ("dense", request.needs_dense, vectors.dense),
        ):
            if needed and vector is None:
                raise ValueError(
                    f"this {request.mode} search (explain={request.explain}) needs the query's "
                    f"{name} vector; encode it with encode_queries([request])"
                )
        sparse = vectors.sparse if request.needs_sparse else None
        dense = vectors.dense if request.needs_dense else None
        if request.mode == "sparse" and sparse is not None and len(sparse) == 0:
            return Retrieved(request, sparse, [])  # an all-zero query matches nothing lexically
        assert request.fusion is not None and request.rrf_k and request.candidates  # resolved
        keep, group = request.pool, request.group_by_document
        limit = keep + TIE_MARGIN
        # Ask for more while a group of equal scores straddles the cut, or while grouping by
        # document left fewer than `keep` and the store has more.
        while True:
            ranked = self.store.query(
                HybridQuery(
                    mode=request.mode,
                    limit=limit,
                    candidates=request.candidates,
                    sparse=sparse if request.mode != "dense" else None,
                    dense=dense,
                    fusion=request.fusion,
                    rrf_k=request.rrf_k,
                    weights=request.weights,
                    conditions=list(request.conditions),
                    with_sparse_vectors=request.explain,
                    tenant=self.tenant_id,
                )
            )
            if request.mode == "hybrid" and request.fusion == "rrf":
                rescored = rrf_by_fixed_ranks(ranked, request.rrf_k, request.weights)
                if rescored is not None:
                    if len(ranked) >= limit < 2 * request.candidates:
                        limit = 2 * request.candidates  # all the fused list: none missed
                        continue
                    ranked = rescored
            cut = cut_position(ranked, keep, group)
            # fewer than `keep` exist, or grouping has read as far as it may (two lists of
            # `candidates`): take what there is
            if cut is None and (len(ranked) < limit or limit >= 2 * request.candidates):
                cut = len(ranked)
            if cut is not None and not cut_inside_tie(ranked, cut, limit):
                kept = per_document(ranked[:cut], group)
                return Retrieved(request, sparse if request.explain else None, kept)
            limit *= 2

    def rerank_scores(self, retrieved: Sequence[Retrieved]) -> list[np.ndarray | None]:
        """The reranker's scores of each reranking request's candidates (None for the
        others), all pairs scored together in token-budget batches."""
        pairs = [pair for r in retrieved for pair in r.rerank_pairs()]
        if not pairs:
            return [None if not r.request.rerank else np.zeros(0, np.float32) for r in retrieved]
        if self.reranker is None:
            raise ValueError("rerank=True but this index has no reranker")
        return split_scores(retrieved, self.reranker.score(pairs))

    def finish(self, retrieved: Retrieved, rerank_scores: np.ndarray | None) -> list[SearchHit]:
        """Hits from retrieved candidates: the reranker's order when scores are given (equal
        scores keep the fused order), cut to `top_k`, explained when asked."""
        request, ranked = retrieved.request, retrieved.ranked
        if rerank_scores is None:
            order: list[tuple[RankedChunk, float | None, int | None]] = [
                (r, None, None) for r in ranked
            ]
        else:
            if len(rerank_scores) != len(ranked):
                raise ValueError(f"{len(rerank_scores)} rerank scores for {len(ranked)} candidates")
            by_score = sorted(range(len(ranked)), key=lambda i: (-rerank_scores[i], i))
            order = [
                (ranked[i], float(rerank_scores[i]), rank)
                for rank, i in enumerate(by_score, start=1)
            ]
        if request.min_score is not None:
            floor = request.min_score
            order = [o for o in order if (o[0].score if o[1] is None else o[1]) >= floor]
        page = order[request.offset : request.offset + request.top_k]
        return [self._hit(r, retrieved.query_vector, score, rank) for r, score, rank in page]

    def _hit(
        self,
        ranked: RankedChunk,
        query_vector: SparseVector | None,
        rerank_score: float | None = None,
        rerank_rank: int | None = None,
    ) -> SearchHit:
        chunk = ranked.chunk
        explanation = None
        if query_vector is not None:
            if chunk.sparse is None:
                raise RuntimeError(f"the store returned no sparse vector for chunk {chunk.id}")
            explanation = explain_match(self.sparse, query_vector, chunk.sparse, chunk.text)
        return SearchHit(
            id=chunk.id,
            doc_id=chunk.doc_id,
            chunk_index=chunk.chunk_index,
            text=chunk.text,
            metadata=chunk.metadata,
            score=ranked.score,
            sparse_score=ranked.sparse_score,
            dense_score=ranked.dense_score,
            sparse_rank=ranked.sparse_rank,
            dense_rank=ranked.dense_rank,
            rerank_score=rerank_score,
            rerank_rank=rerank_rank,
            start=chunk.start,
            end=chunk.end,
            explanation=explanation,
        )

    def explain_query(
        self, query: str, top_k: int = 20, *, vector: SparseVector | None = None
    ) -> list[QueryTerm]:
        """The query's strongest SPLADE terms, expansion terms marked.

        `vector` is the query's SPLADE vector when it is already encoded (`encode_queries`).
        """
        check_query(query, "query")
        if vector is None:
            vector = self.sparse.encode_queries([query])[0]
        return explain_query(self.sparse, query, vector, top_k)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the store (a tenant view closes nothing: the index it came from owns it)."""
        if not self._is_view:
            self.store.close()

    def __enter__(self) -> HybridIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        tenant = f", tenant={self.tenant_id!r}" if self.tenant_id != DEFAULT_TENANT else ""
        return (
            f"HybridIndex(sparse={self.sparse!r}, dense={self.dense!r}, "
            f"store={self.store!r}{tenant})"
        )


@functools.lru_cache(maxsize=1)
def _encoder_thread() -> ThreadPoolExecutor:
    """Worker threads, shared by every index, that run a search's SPLADE encode while the
    calling thread runs the dense one; several, so searches from several threads at once
    do not queue behind one another."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="rag-splade-query")
