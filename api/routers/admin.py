"""The `/v1/admin` resource: snapshots of the index (create, list, restore), behind the API key.

With no `RAG_SPLADE_API_KEY` set the service is open and so are these routes: set a key
before exposing the service (see Deployment).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from rag_splade import HybridIndex
from rag_splade.errors import DiskFullError
from rag_splade.store.backends import backend_of
from rag_splade.store.snapshots import SnapshotError, SnapshotInfo, Snapshots

from ..auth import Admin, require_api_key
from ..config import ServiceSettings
from ..deps import ReadyDep, RuntimeDep, SettingsDep
from ..errors import InsufficientStorage, InvalidRequest, error_responses

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401, 404, 422, 503, 507),
)


class SnapshotOut(BaseModel):
    name: str
    created: str = Field(description="When it was taken, UTC (ISO 8601).")
    points: int | None = Field(description="Chunks in it (null where the server does not say).")
    size_bytes: int


class SnapshotListOut(BaseModel):
    snapshots: list[SnapshotOut] = Field(description="Oldest first.")


class RestoreOut(BaseModel):
    restored: SnapshotOut
    previous_index: str | None = Field(
        description="Where the replaced embedded index was kept (null for a server)."
    )


@router.post("/snapshots", response_model=SnapshotOut)
async def create_snapshot(
    settings: SettingsDep, runtime: RuntimeDep, ready: ReadyDep, _admin: Admin
) -> SnapshotOut:
    """Snapshot the index now; writes wait while its files are copied, searches go on."""
    index, _ = ready
    snapshots = _snapshots(index, settings)
    store = index.store
    info = await runtime.store_call(
        "snapshot", lambda: _checked(lambda: snapshots.create(store), snapshots)
    )
    return _out(info)


@router.get("/snapshots", response_model=SnapshotListOut)
async def list_snapshots(
    settings: SettingsDep, runtime: RuntimeDep, ready: ReadyDep, _admin: Admin
) -> SnapshotListOut:
    """The index's snapshots, oldest first."""
    index, _ = ready
    snapshots = _snapshots(index, settings)
    found = await runtime.store_call("snapshot", lambda: _checked(snapshots.list, snapshots))
    return SnapshotListOut(snapshots=[_out(s) for s in found])


@router.post("/snapshots/{name}/restore", response_model=RestoreOut)
async def restore_snapshot(
    name: str, settings: SettingsDep, runtime: RuntimeDep, ready: ReadyDep, _admin: Admin
) -> RestoreOut:
    """Replace the index with snapshot `name` (`latest`: the newest). The snapshot is checked
    whole first, while the service keeps serving: every file's checksum, that it was built
    with the running models (else 422), and that a child process opens it and reads every
    point. Where the restore replaces the index's files (the embedded index), the service
    answers 503 for the moment it takes to swap the index and reopen it; a refused restore
    leaves the index serving as it was."""
    index, _ = ready
    snapshots = _snapshots(index, settings)
    if not snapshots.replaces_files:
        info, _ = await runtime.store_call(
            "snapshot", lambda: _checked(lambda: snapshots.restore(name), snapshots)
        )
        return RestoreOut(restored=_out(info), previous_index=None)
    spec = index.spec  # a snapshot of an index built for other models is refused
    checked = await runtime.store_call(
        "snapshot", lambda: _checked(lambda: snapshots.verify(name, spec), snapshots)
    )
    info, kept = await runtime.swap_index(
        lambda: _checked(lambda: snapshots.restore(checked.name, spec), snapshots)
    )
    return RestoreOut(restored=_out(info), previous_index=str(kept) if kept else None)


def _snapshots(index: HybridIndex, settings: ServiceSettings) -> Snapshots:
    """The snapshots of the index the service holds, from its backend's entry."""
    return _checked(lambda: backend_of(index.store).snapshots(settings, index.store))


def _checked(fn: Any, snapshots: Snapshots | None = None) -> Any:
    """`fn()`, a `SnapshotError` (a missing, damaged or misnamed snapshot, one of other
    models, local mode) as a 422, too little disk space as a 507; the messages name the
    folders of `snapshots` by what they are, not by their paths on the server."""
    try:
        return fn()
    except SnapshotError as e:
        raise InvalidRequest(_private(str(e), snapshots)) from e
    except DiskFullError as e:
        raise InsufficientStorage(_private(str(e), snapshots)) from e


def _private(message: str, snapshots: Snapshots | None) -> str:
    for attr, label in (("snapshot_dir", "the snapshot folder"), ("index_path", "the index")):
        path = getattr(snapshots, attr, None)
        if path is not None:
            message = message.replace(str(path), label)
    return message


def _out(info: SnapshotInfo) -> SnapshotOut:
    # the archive's path stays private: clients name snapshots, not files
    return SnapshotOut(
        name=info.name, created=info.created, points=info.points, size_bytes=info.size_bytes
    )
