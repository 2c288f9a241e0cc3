"""Operations: liveness and readiness probes and Prometheus metrics (open, for the
orchestrator and the scraper), and `/v1/stats` (behind the API key like all of `/v1`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rag_splade.encoders.device import dtype_name
from rag_splade.store.tenants import ALL_TENANTS, TENANT_FIELD

from ..auth import ReadAny, require_api_key
from ..deps import ReadyDep, RuntimeDep
from ..errors import error_responses
from ..schemas import StatsResponse

router = APIRouter(tags=["operations"])
stats_router = APIRouter(
    prefix="/v1",
    tags=["operations"],
    responses=error_responses(401, 503),
    dependencies=[Depends(require_api_key)],
)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Readiness: 200 once models and store (none when encoders only) are ready, else 503
    and the reason."""
    if runtime.state == "ready" and runtime.index is not None:
        # the store kind only: readiness is unauthenticated, paths and URLs stay private
        store = runtime.index.store
        # `not_closed_cleanly` after a crash (see /v1/stats): ready, but say so
        integrity = getattr(store, "integrity", None)
        return JSONResponse(
            {"status": "ready", "store": type(store).__name__, "index_integrity": integrity}
        )
    if runtime.state == "ready" and runtime.settings.encoders_only:
        return JSONResponse({"status": "ready", "store": None})
    headers = {}
    if runtime.state != "failed":
        headers["retry-after"] = str(runtime.settings.retry_after_seconds)
    return JSONResponse(
        {"status": runtime.state, "message": runtime.detail}, status_code=503, headers=headers
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@stats_router.get("/stats", response_model=StatsResponse)
async def stats(runtime: RuntimeDep, ready: ReadyDep, access: ReadAny) -> StatsResponse:
    """Counts of the key's tenant (an admin key: `?tenant=*` counts every tenant), the
    payload indexes, the models and the index's search settings."""
    index = ready[0]
    if access.tenant == ALL_TENANTS:
        pairs = await runtime.store_call(
            "documents",
            lambda: {
                (p.get(TENANT_FIELD), p.get("doc_id"))
                for p in index.store.iter_payloads(["doc_id", TENANT_FIELD], tenant=ALL_TENANTS)
            },
        )
        documents, incomplete = len(pairs), None
        chunks = await runtime.store_call("count", index.count_all_tenants)
    else:
        view = index.tenant(access.tenant)
        infos = await runtime.store_call("documents", lambda: view.documents())
        documents, incomplete = len(infos), sum(not i.complete for i in infos.values())
        chunks = await runtime.store_call("count", view.count)
    payload_indexes = await runtime.store_call("count", index.payload_indexes)
    return StatsResponse(
        tenant=access.tenant,
        documents=documents,
        chunks=chunks,
        incomplete_documents=incomplete,
        payload_indexes=payload_indexes,
        store=type(index.store).__name__,
        index_integrity=getattr(index.store, "integrity", None),
        sparse_model=index.sparse.model_name,
        sparse_dtype=dtype_name(getattr(index.sparse, "dtype", None)),
        dense_model=index.dense.model_name,
        rerank_model=index.reranker.model_name if index.reranker is not None else None,
        dense_dimension=index.dense.dimension,
        sparse_vocab_size=index.sparse.vocab_size,
        fusion=index.fusion,
        rrf_k=index.rrf_k,
        candidates=index.candidates,
        rerank_candidates=index.rerank_candidates,
    )
