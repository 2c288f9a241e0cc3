"""`QdrantServerStore`: a Qdrant server or cluster through qdrant-client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from qdrant_client import QdrantClient, models

from rag_splade.store.base import HybridQuery, VectorSpec
from rag_splade.store.filters import Condition
from rag_splade.store.outage import GuardedClient
from rag_splade.store.qdrant_base import Ask, QdrantStoreBase, Source, With
from rag_splade.store.tenants import TENANT_FIELD
from rag_splade.types import SparseVector


class QdrantServerStore(QdrantStoreBase[models.Filter, models.PointStruct, models.QueryRequest]):
    """A collection on a Qdrant server or cluster (shards and replicas), or qdrant-client's
    in-process local mode (`location=":memory:"` or a path) for tests.

    The server indexes new segments in the background: this store is not `Optimizable`.

    Args:
        url: server URL, e.g. `http://localhost:6333`. Exactly one of `url`/`location`.
        location: `":memory:"` or a folder, for qdrant-client's local mode.
        api_key: the server's API key.
        collection: collection name (created on first use with both named vectors).
        shard_number, replication_factor, write_consistency_factor: cluster layout,
            applied when the collection is created.
        timeout: seconds before a request fails (keep it short behind an API).
        batch_size: points per upsert request.
        prefer_grpc: talk to the server over gRPC instead of HTTP.
        sparse_datatype: `float32` or `float16` storage of the SPLADE weights, chosen when
            the collection is created.

    Example:
        >>> store = QdrantServerStore(url="http://localhost:6333",
        ...                           collection="docs")  # doctest: +SKIP
    """

    _elsewhere = "another collection"

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
        if (url is None) == (location is None):
            raise ValueError(
                "QdrantServerStore needs exactly one of url= (a server) or location= "
                f"(':memory:' or a folder for local mode), got url={url!r}, location={location!r}"
            )
        if not collection or not isinstance(collection, str):
            raise ValueError(f"collection must be a non-empty string, got {collection!r}")
        super().__init__(sparse_datatype)
        self.url, self.location, self.collection = url, location, collection
        self._where = f"Collection {collection!r}"
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.write_consistency_factor = write_consistency_factor
        self.batch_size = batch_size
        if url is not None:
            client = QdrantClient(
                url=url, api_key=api_key, timeout=int(timeout), prefer_grpc=prefer_grpc
            )
            # every call that cannot reach the server raises StoreUnavailableError
            self.client = cast(QdrantClient, GuardedClient(client, url))
        elif location == ":memory:":
            self.client = QdrantClient(location=location)
        else:  # a folder: qdrant-client's persistent local mode
            self.client = QdrantClient(path=str(location))

    def close(self) -> None:
        self.client.close()

    # -- hooks -----------------------------------------------------------------------------
    def _found(self, spec: VectorSpec) -> dict[str, Any] | None:
        if not self.client.collection_exists(self.collection):
            return None
        params = self.client.get_collection(self.collection).config.params
        vectors = params.vectors if isinstance(params.vectors, dict) else {}
        sparse_vectors = params.sparse_vectors or {}
        sparse = sparse_vectors.get(spec.sparse_name)
        datatype = sparse.index.datatype if sparse and sparse.index else None
        return {
            "dense": {name: v.size for name, v in vectors.items()},
            "sparse": list(sparse_vectors),
            "sparse_datatype": getattr(datatype, "value", datatype),
        }

    def _create(self, spec: VectorSpec) -> None:
        self.client.create_collection(
            self.collection,
            vectors_config={
                spec.dense_name: models.VectorParams(
                    size=spec.dense_size, distance=models.Distance.COSINE
                )
            },
            sparse_vectors_config={
                spec.sparse_name: models.SparseVectorParams(
                    index=models.SparseIndexParams(datatype=models.Datatype(self.sparse_datatype))
                )
            },
            shard_number=self.shard_number,
            replication_factor=self.replication_factor,
            write_consistency_factor=self.write_consistency_factor,
        )
        if self.url is not None:  # local mode has no payload indexes
            for name, schema in (
                ("doc_id", models.PayloadSchemaType.KEYWORD),
                ("chunk_index", models.PayloadSchemaType.INTEGER),
            ):
                self.client.create_payload_index(self.collection, name, schema)

    def _condition(self, condition: Condition) -> models.FieldCondition | models.IsEmptyCondition:
        field, kind, value = condition.field, condition.kind, condition.value
        if kind == "empty":
            return models.IsEmptyCondition(is_empty=models.PayloadField(key=field))
        if kind == "range":
            return models.FieldCondition(key=field, range=models.Range(**value))
        match = models.MatchValue(value=value) if kind == "eq" else models.MatchAny(any=value)
        return models.FieldCondition(key=field, match=match)

    def _must(self, conditions: list[Any]) -> models.Filter:
        return models.Filter(must=conditions)

    def _payload_schema(self) -> dict[str, str]:
        if self.url is None:  # qdrant-client's local mode keeps no payload indexes
            return {}
        held = self.client.get_collection(self.collection).payload_schema or {}
        return {
            path: "tenant"
            if path == TENANT_FIELD
            else str(getattr(info.data_type, "value", info.data_type))
            for path, info in held.items()
        }

    def _create_field_index(self, path: str, kind: str) -> None:
        if self.url is None:  # local mode: an index would have no effect (and it warns)
            return
        schema: Any = (
            models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
            if kind == "tenant"
            else models.PayloadSchemaType(kind)
        )
        self.client.create_payload_index(self.collection, path, field_schema=schema, wait=True)

    def _sparse(self, vector: SparseVector) -> models.SparseVector:
        return models.SparseVector(indices=vector.indices.tolist(), values=vector.values.tolist())

    def _point(
        self, id_: str, vectors: dict[str, Any], payload: dict[str, Any]
    ) -> models.PointStruct:
        return models.PointStruct(id=id_, vector=vectors, payload=payload)

    def _nearest_request(self, source: Source, ask: Ask) -> models.QueryRequest:
        return models.QueryRequest(query=source.vector, using=source.using, **ask._asdict())

    def _fusion_request(
        self, query: HybridQuery, sources: Sequence[Source], ask: Ask
    ) -> models.QueryRequest:
        prefetch = [
            models.Prefetch(
                query=s.vector, using=s.using, limit=query.candidates, filter=ask.filter
            )
            for s in sources
        ]
        weights = list(query.weights) if query.weights else None
        fusion: models.RrfQuery | models.FusionQuery = (
            models.RrfQuery(rrf=models.Rrf(k=query.rrf_k, weights=weights))
            if query.fusion == "rrf"
            else models.FusionQuery(fusion=models.Fusion.DBSF)
        )
        return models.QueryRequest(prefetch=prefetch, query=fusion, **ask._asdict())

    def _upsert(self, points: list[models.PointStruct]) -> None:
        # wait=True: a point is acknowledged only once the server has applied it.
        self.client.upsert(self.collection, points, wait=True)

    def _delete(self, flt: models.Filter) -> None:
        self.client.delete(self.collection, models.FilterSelector(filter=flt), wait=True)

    def _count(self, flt: models.Filter | None) -> int:
        return int(self.client.count(self.collection, count_filter=flt, exact=True).count)

    def _scroll_page(
        self, flt: models.Filter | None, with_payload: With, offset: Any, limit: int
    ) -> tuple[list[models.Record], Any]:
        return self.client.scroll(
            self.collection,
            scroll_filter=flt,
            limit=limit,
            offset=offset,
            with_payload=with_payload,
        )

    def _run_batch(self, requests: list[models.QueryRequest]) -> list[list[models.ScoredPoint]]:
        responses = self.client.query_batch_points(self.collection, requests)
        return [response.points for response in responses]

    def __repr__(self) -> str:
        where = f"url={self.url!r}" if self.url else f"location={self.location!r}"
        return f"QdrantServerStore({where}, collection={self.collection!r})"
