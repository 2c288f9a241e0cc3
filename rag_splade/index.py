"""`HybridIndex`: chunk, encode both ways, store, search in one Qdrant round trip, explain."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag_splade.checks import (
    check_choice,
    check_doc_id,
    check_positive_int,
    check_query,
    check_weights,
)
from rag_splade.documents import (
    INFO_FIELDS,
    ChunkMetadata,
    DocumentInfo,
    PlannedChunk,
    document_infos,
    plan_chunks,
)
from rag_splade.encoders.dense import DenseEncoder
from rag_splade.encoders.splade import SpladeEncoder
from rag_splade.explain import explain_match, explain_query
from rag_splade.factories import encoders_from_settings, store_from_settings
from rag_splade.store.base import (
    FUSIONS,
    MODES,
    ChunkPoint,
    HybridQuery,
    HybridStore,
    RankedChunk,
    StoredChunk,
    VectorSpec,
)
from rag_splade.store.filters import parse_filters
from rag_splade.text.chunking import Chunk, Chunker
from rag_splade.types import Document, QueryTerm, SearchHit, SparseVector

if TYPE_CHECKING:
    import numpy as np

    from rag_splade.settings import Settings

MAX_TOP_K = 1000


def query_vectors_needed(mode: str, explain: bool) -> tuple[bool, bool]:
    """`(sparse, dense)`: which query vectors a search in `mode` needs (explanations need
    the sparse one whatever the mode)."""
    return mode in ("hybrid", "sparse") or explain, mode in ("hybrid", "dense")


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
    """

    def __init__(
        self,
        sparse: SpladeEncoder,
        dense: DenseEncoder,
        store: HybridStore,
        *,
        candidates: int = 100,
        fusion: str = "rrf",
        rrf_k: int = 61,
        chunk_overlap_sentences: int = 1,
        normalize_text: bool = False,
    ) -> None:
        check_choice("fusion", fusion, FUSIONS)
        check_positive_int("candidates", candidates)
        check_positive_int("rrf_k", rrf_k)
        self.sparse = sparse
        self.dense = dense
        self.store = store
        self.candidates = candidates
        self.fusion = fusion
        self.rrf_k = rrf_k
        specials = sparse.tokenizer.num_special_tokens_to_add(pair=False)
        self.chunker = Chunker(
            sparse.count_tokens,
            max_tokens=sparse.document_max_length - specials,
            overlap_sentences=chunk_overlap_sentences,
            normalize=normalize_text,
        )
        store.open(VectorSpec(dense_size=dense.dimension, sparse_vocab_size=sparse.vocab_size))

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        encoders: tuple[SpladeEncoder, DenseEncoder] | None = None,
    ) -> HybridIndex:
        """Build encoders and store from `Settings` (the `RAG_SPLADE_*` environment).

        `encoders` reuses already loaded models (the service keeps them while it waits for
        an unreachable store).
        """
        from rag_splade.settings import Settings

        s = settings or Settings()
        sparse, dense = encoders or encoders_from_settings(s)
        return cls(
            sparse,
            dense,
            store_from_settings(s),
            candidates=s.candidates,
            fusion=s.fusion,
            rrf_k=s.rrf_k,
            chunk_overlap_sentences=s.chunk_overlap_sentences,
            normalize_text=s.normalize_text,
        )

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
        docs = list(documents)
        planned = plan_chunks(docs, self.chunk, chunks, chunk_metadata)
        for start in range(0, len(planned), batch_size):
            self._write_batch(planned[start : start + batch_size])
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
            )
            for p, s, d in zip(batch, sparse, dense, strict=True)
        ]
        self.store.upsert(points)
        # Stale chunks go only after the new ones are written: a crash never loses a document.
        for p in batch:
            if p.chunk.index == p.total - 1:
                self.store.delete_stale_chunks(p.doc_id, keep=p.total)

    def delete(self, doc_id: str) -> int:
        """Delete a document's chunks; return how many there were (0: unknown id)."""
        return self.store.delete_document(check_doc_id(doc_id))

    def get(self, doc_id: str) -> list[StoredChunk]:
        """A document's stored chunks, in order ([] for an unknown id)."""
        return self.store.get_document(check_doc_id(doc_id))

    def documents(self, filters: Mapping[str, Any] | None = None) -> dict[str, DocumentInfo]:
        """Every stored document (matching `filters`) by id, read without texts or vectors."""
        return document_infos(self.store.iter_payloads(INFO_FIELDS, parse_filters(filters)))

    def count(self, filters: Mapping[str, Any] | None = None) -> int:
        """Chunks in the index (matching `filters`)."""
        return self.store.count(parse_filters(filters))

    def optimize(self) -> None:
        """Index freshly written segments now (Edge; a server does it in the background)."""
        self.store.optimize()

    # -- searching -------------------------------------------------------------------------
    def search(
        self,
        query: str,
        top_k: int = 5,
        *,
        mode: str = "hybrid",
        fusion: str | None = None,
        weights: Sequence[float] | None = None,
        filters: Mapping[str, Any] | None = None,
        explain: bool = False,
        candidates: int | None = None,
    ) -> list[SearchHit]:
        """Search in one Qdrant round trip and return hits, best first.

        Args:
            mode: `hybrid` (sparse and dense fused inside Qdrant), `sparse` or `dense`.
            fusion: `rrf` (default) or `dbsf`, for hybrid mode.
            weights: `(sparse, dense)` Qdrant RRF weights: a point at 1-based rank n of a
                list with weight w scores 1 / (n / w + rrf_k - 1), so with the default
                rrf_k a smaller weight gives that list more say, e.g. `(1.0, 2.0)` leans
                on sparse; 0 drops a list.
            filters: payload filters, see `rag_splade.store.filters`.
            explain: attach an `Explanation` (term contributions) to every hit.
        """
        return self.search_batch(
            [query],
            top_k,
            mode=mode,
            fusion=fusion,
            weights=weights,
            filters=filters,
            explain=explain,
            candidates=candidates,
        )[0]

    def search_batch(
        self,
        queries: Sequence[str],
        top_k: int = 5,
        *,
        mode: str = "hybrid",
        fusion: str | None = None,
        weights: Sequence[float] | None = None,
        filters: Mapping[str, Any] | None = None,
        explain: bool = False,
        candidates: int | None = None,
    ) -> list[list[SearchHit]]:
        """`search` for many queries: one encoder forward pass per model for all of them."""
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise TypeError("queries must be a list of str")
        for i, q in enumerate(queries):
            check_query(q, f"queries[{i}]" if len(queries) > 1 else "query")
        request = self.search_options(top_k, mode, fusion, weights, filters, explain, candidates)
        need_sparse, need_dense = query_vectors_needed(mode, explain)
        sparse_vecs = self.sparse.encode_queries(queries) if need_sparse else [None] * len(queries)
        dense_vecs = self.dense.encode_queries(queries) if need_dense else [None] * len(queries)
        return [
            self.search_vectors(sv, dv, **request)
            for sv, dv in zip(sparse_vecs, dense_vecs, strict=True)
        ]

    def search_vectors(
        self,
        sparse: SparseVector | None,
        dense: np.ndarray | None,
        *,
        top_k: int,
        mode: str,
        fusion: str,
        weights: tuple[float, float] | None,
        conditions: list,
        explain: bool,
        candidates: int,
    ) -> list[SearchHit]:
        """Search with query vectors already encoded (the service batches encoding itself)."""
        if mode == "sparse" and sparse is not None and len(sparse) == 0:
            return []  # an all-zero query vector matches nothing lexically
        ranked = self.store.query(
            HybridQuery(
                mode=mode,  # type: ignore[arg-type]
                limit=top_k,
                candidates=candidates,
                sparse=sparse,
                dense=dense,
                fusion=fusion,  # type: ignore[arg-type]
                rrf_k=self.rrf_k,
                weights=weights,
                conditions=conditions,
                with_sparse_vectors=explain,
            )
        )
        return [self._hit(r, sparse if explain else None) for r in ranked]

    def search_options(
        self,
        top_k: int,
        mode: str,
        fusion: str | None,
        weights: Sequence[float] | None,
        filters: Mapping[str, Any] | None,
        explain: bool,
        candidates: int | None,
    ) -> dict[str, Any]:
        """Validate search options once; the keyword arguments of `search_vectors`."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be an int from 1 to {MAX_TOP_K}, got {top_k!r}")
        check_choice("mode", mode, MODES)
        fusion = self.fusion if fusion is None else fusion
        check_choice("fusion", fusion, FUSIONS)
        if candidates is not None:
            check_positive_int("candidates", candidates)
        if not isinstance(explain, bool):
            raise TypeError(f"explain must be a bool, got {explain!r}")
        return {
            "top_k": top_k,
            "mode": mode,
            "fusion": fusion,
            "weights": check_weights(weights, mode, fusion),
            "conditions": parse_filters(filters),
            "explain": explain,
            "candidates": max(candidates or self.candidates, top_k),
        }

    def _hit(self, ranked: RankedChunk, query_vector: SparseVector | None) -> SearchHit:
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
            start=chunk.start,
            end=chunk.end,
            explanation=explanation,
        )

    def explain_query(self, query: str, top_k: int = 20) -> list[QueryTerm]:
        """The query's strongest SPLADE terms, expansion terms marked."""
        check_query(query, "query")
        vector = self.sparse.encode_queries([query])[0]
        return explain_query(self.sparse, query, vector, top_k)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> HybridIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HybridIndex(sparse={self.sparse!r}, dense={self.dense!r}, store={self.store!r})"
