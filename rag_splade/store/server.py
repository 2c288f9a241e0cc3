"""`QdrantServerStore`: a Qdrant server or cluster through qdrant-client."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from rag_splade.store.base import (
    ChunkPoint,
    HybridQuery,
    RankedChunk,
    StoredChunk,
    VectorSpec,
    assemble,
    check_sparse_datatype,
    datatype_mismatch,
    describe_mismatch,
    plan,
)
from rag_splade.store.filters import Condition
from rag_splade.types import SparseVector

SCROLL_PAGE = 256


class QdrantServerStore:
    """A collection on a Qdrant server or cluster (shards and replicas), or qdrant-client's
    in-process local mode (`location=":memory:"` or a path) for tests.

    Args:
        url: server URL, e.g. `http://localhost:6333`. Exactly one of `url`/`location`.
        location: `":memory:"` or a folder, for qdrant-client's local mode.
        api_key: the server's API key.
        collection: collection name (created on first use with both named vectors).
        shard_number, replication_factor, write_consistency_factor: cluster layout,
            applied when the collection is created.
        timeout: seconds before a request fails (keep it short behind an API).
        batch_size: points per upsert request.

    Example:
        >>> store = QdrantServerStore(url="http://localhost:6333",
        ...                           collection="docs")  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        location: str | None = None,
        api_key: str | None = None,
        collection: str = "rag_splade",
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
        timeout: float = 10.0,
        batch_size: int = 256,
        prefer_grpc: bool = False,
        sparse_datatype: str = "float32",
    ) -> None:
        from qdrant_client import QdrantClient

        if (url is None) == (location is None):
            raise ValueError(
                "QdrantServerStore needs exactly one of url= (a server) or location= "
                f"(':memory:' or a folder for local mode), got url={url!r}, location={location!r}"
            )
        if not collection or not isinstance(collection, str):
            raise ValueError(f"collection must be a non-empty string, got {collection!r}")
        self.url, self.location, self.collection = url, location, collection
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.write_consistency_factor = write_consistency_factor
        self.batch_size = batch_size
        self.sparse_datatype = check_sparse_datatype(sparse_datatype)
        if url is not None:
            self.client = QdrantClient(
                url=url, api_key=api_key, timeout=int(timeout), prefer_grpc=prefer_grpc
            )
        elif location == ":memory:":
            self.client = QdrantClient(location=location)
        else:  # a folder: qdrant-client's persistent local mode
            self.client = QdrantClient(path=str(location))
        self.spec: VectorSpec | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def open(self, spec: VectorSpec) -> None:
        from qdrant_client import models

        if self.client.collection_exists(self.collection):
            params = self.client.get_collection(self.collection).config.params
            vectors = params.vectors if isinstance(params.vectors, dict) else {}
            found = {
                "dense": {name: v.size for name, v in vectors.items()},
                "sparse": list((params.sparse_vectors or {}).keys()),
            }
            problems = describe_mismatch(spec, found)
            if problems:
                raise ValueError(
                    f"Collection {self.collection!r} does not fit the encoders: "
                    + "; ".join(problems)
                    + ". Use the models it was built with, or another collection."
                )
            sparse = (params.sparse_vectors or {}).get(spec.sparse_name)
            datatype = sparse.index.datatype if sparse and sparse.index else None
            stored = str(getattr(datatype, "value", datatype) or "float32")
            if stored != self.sparse_datatype:
                raise datatype_mismatch(
                    f"Collection {self.collection!r}", stored, self.sparse_datatype
                )
        else:
            self.client.create_collection(
                self.collection,
                vectors_config={
                    spec.dense_name: models.VectorParams(
                        size=spec.dense_size, distance=models.Distance.COSINE
                    )
                },
                sparse_vectors_config={
                    spec.sparse_name: models.SparseVectorParams(
                        index=models.SparseIndexParams(
                            datatype=models.Datatype(self.sparse_datatype)
                        )
                    )
                },
                shard_number=self.shard_number,
                replication_factor=self.replication_factor,
                write_consistency_factor=self.write_consistency_factor,
            )
            if self.url is not None:  # local mode has no payload indexes
                self.client.create_payload_index(
                    self.collection, "doc_id", models.PayloadSchemaType.KEYWORD
                )
                self.client.create_payload_index(
                    self.collection, "chunk_index", models.PayloadSchemaType.INTEGER
                )
        self.spec = spec

    def close(self) -> None:
        self.client.close()

    def optimize(self) -> None:
        """The server optimises segments in the background; nothing to do here."""

    def maybe_optimize(self) -> bool:
        return False

    # -- writes ----------------------------------------------------------------------------
    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        from qdrant_client import models

        spec = self._spec()
        structs = [
            models.PointStruct(
                id=p.id,
                vector={
                    spec.dense_name: p.dense.astype("float32").tolist(),
                    spec.sparse_name: p.sparse.to_qdrant(),
                },
                payload=p.payload(),
            )
            for p in points
        ]
        for i in range(0, len(structs), self.batch_size):
            # wait=True: a point is acknowledged only once the server has applied it.
            self.client.upsert(self.collection, structs[i : i + self.batch_size], wait=True)

    def delete_stale_chunks(self, doc_id: str, keep: int) -> None:
        from qdrant_client import models

        stale = models.Filter(
            must=[
                models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id)),
                models.FieldCondition(key="chunk_index", range=models.Range(gte=keep)),
            ]
        )
        self.client.delete(self.collection, models.FilterSelector(filter=stale), wait=True)

    def delete_document(self, doc_id: str) -> int:
        from qdrant_client import models

        flt = models.Filter(
            must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id))]
        )
        n = self.client.count(self.collection, count_filter=flt, exact=True).count
        if n:
            self.client.delete(self.collection, models.FilterSelector(filter=flt), wait=True)
        return int(n)

    # -- reads -----------------------------------------------------------------------------
    def get_document(self, doc_id: str) -> list[StoredChunk]:
        from qdrant_client import models

        flt = models.Filter(
            must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id))]
        )
        chunks = [StoredChunk.from_payload(r.id, r.payload or {}) for r in self._scroll(flt, True)]
        return sorted(chunks, key=lambda c: c.chunk_index)

    def iter_payloads(
        self, fields: Sequence[str], conditions: list[Condition] | None = None
    ) -> Iterator[dict[str, Any]]:
        for record in self._scroll(self._filter(conditions or []), list(fields)):
            yield dict(record.payload or {})

    def _scroll(self, flt: Any, with_payload: bool | list[str]) -> Iterator[Any]:
        """Every matching record, page by page."""
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection,
                scroll_filter=flt,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=with_payload,
            )
            yield from records
            if offset is None:
                break

    def count(self, conditions: list[Condition] | None = None) -> int:
        flt = self._filter(conditions or [])
        return int(self.client.count(self.collection, count_filter=flt, exact=True).count)

    def query(self, query: HybridQuery) -> list[RankedChunk]:
        from qdrant_client import models

        spec = self._spec()
        flt = self._filter(query.conditions)
        sources: dict[str, tuple[Any, str]] = {}
        if query.sparse is not None:
            sources["sparse"] = (query.sparse.to_qdrant(), spec.sparse_name)
        if query.dense is not None:
            sources["dense"] = (query.dense.astype("float32").tolist(), spec.dense_name)
        with_vector = [spec.sparse_name] if query.with_sparse_vectors else False
        requests = []
        items = plan(query)
        for item in items:
            if item.source == "fused":
                fusion: Any = (
                    models.RrfQuery(
                        rrf=models.Rrf(
                            k=query.rrf_k, weights=list(query.weights) if query.weights else None
                        )
                    )
                    if query.fusion == "rrf"
                    else models.FusionQuery(fusion=models.Fusion.DBSF)
                )
                prefetch = [
                    models.Prefetch(
                        query=sources[name][0],
                        using=sources[name][1],
                        limit=query.candidates,
                        filter=flt,
                    )
                    for name in ("sparse", "dense")
                ]
                requests.append(
                    models.QueryRequest(
                        prefetch=prefetch,
                        query=fusion,
                        filter=flt,
                        limit=item.limit,
                        with_payload=True,
                        with_vector=with_vector,
                    )
                )
            else:
                vector, using = sources[item.source]
                requests.append(
                    models.QueryRequest(
                        query=vector,
                        using=using,
                        filter=flt,
                        limit=item.limit,
                        with_payload=item.with_payload,
                        with_vector=with_vector if item.with_payload else False,
                    )
                )
        responses = self.client.query_batch_points(self.collection, requests)
        lists = [
            [
                (str(p.id), float(p.score), self._chunk(p) if item.with_payload else None)
                for p in response.points
            ]
            for item, response in zip(items, responses, strict=True)
        ]
        return assemble(query, lists)

    # -- helpers ---------------------------------------------------------------------------
    def _chunk(self, point: Any) -> StoredChunk:
        sparse = None
        vectors = point.vector if isinstance(point.vector, dict) else {}
        if self._spec().sparse_name in vectors:
            v = vectors[self._spec().sparse_name]
            sparse = SparseVector(v.indices, v.values)
        return StoredChunk.from_payload(point.id, point.payload or {}, sparse)

    @staticmethod
    def _filter(conditions: list[Condition]) -> Any:
        from qdrant_client import models

        if not conditions:
            return None
        must: list[Any] = []
        for c in conditions:
            if c.kind == "eq":
                must.append(
                    models.FieldCondition(key=c.field, match=models.MatchValue(value=c.value))
                )
            elif c.kind == "any":
                must.append(models.FieldCondition(key=c.field, match=models.MatchAny(any=c.value)))
            else:
                must.append(models.FieldCondition(key=c.field, range=models.Range(**c.value)))
        return models.Filter(must=must)

    def _spec(self) -> VectorSpec:
        if self.spec is None:
            raise RuntimeError(
                "QdrantServerStore is not open: call open(spec) or use it through HybridIndex"
            )
        return self.spec

    def __repr__(self) -> str:
        where = f"url={self.url!r}" if self.url else f"location={self.location!r}"
        return f"QdrantServerStore({where}, collection={self.collection!r})"
