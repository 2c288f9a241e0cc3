"""Encoders and stores built from `Settings` (the `RAG_SPLADE_*` environment).

A model that cannot be loaded (a folder that is not a model, a hub id while the hub is
out of reach and the model is not cached) is one `ModelUnavailableError` naming the
setting to change, raised before the hub client spends a minute retrying.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:  # the encoders import torch: loaded only when a model is built
    from rag_splade.encoders.dense import DenseEncoder
    from rag_splade.encoders.splade import SpladeEncoder
    from rag_splade.settings import Settings
    from rag_splade.store.base import HybridStore

T = TypeVar("T")


OFFLINE_FIX = (
    "set {env} to a local model folder (`rag-splade tiny-models DIR` builds tiny offline "
    "ones; `make demo-offline` runs the demo with them)"
)


class ModelUnavailableError(OSError):
    """A configured model that cannot be loaded; the message names the setting and the fix."""


class IndexNotFoundError(FileNotFoundError):
    """A reading command pointed at an index folder that does not exist."""


def check_model_available(model: str, env: str) -> None:
    """Fail fast when `model` is a hub id that is neither cached nor downloadable now.

    A local folder (settings make them absolute) passes; so does a hub id in the local
    Hugging Face cache or one the hub can be reached for (a 3-second connection probe,
    skipped under `HF_HUB_OFFLINE`).

    Raises:
        ModelUnavailableError: one line naming `env` and the fix.
    """
    if Path(model).is_absolute() or _cached(model):
        return
    endpoint = _hub_endpoint()
    if _offline() or not _reachable(endpoint):
        raise ModelUnavailableError(
            f"{env}={model}: not a local folder, not in the Hugging Face cache, and the hub "
            f"({endpoint}) cannot be reached; " + OFFLINE_FIX.format(env=env)
        )


def require_index(s: Settings) -> None:
    """For commands that only read: the embedded index must already exist.

    Opening an Edge index creates it; a mistyped `--index-path` would otherwise leave an
    empty index behind and report it empty. A server collection is not checked here.

    Raises:
        IndexNotFoundError: `no index at <path>`, with the command that builds one.
    """
    from rag_splade.store.edge import EdgeStore

    if s.qdrant_url or EdgeStore.is_index_dir(s.index_path):
        return
    raise IndexNotFoundError(
        f"no index at {s.index_path}; build it with `rag-splade ingest PATH "
        f"--index-path {s.index_path}` or point RAG_SPLADE_INDEX_PATH / --index-path at one"
    )


def index_exists(s: Settings) -> bool:
    """Whether the index `s` points at exists (an Edge folder with its manifest, or the
    collection on the Qdrant server); nothing is created."""
    from rag_splade.store.edge import EdgeStore

    if not s.qdrant_url:
        return EdgeStore.is_index_dir(s.index_path)
    client = _server_client(s)
    try:
        return bool(client.collection_exists(s.collection))
    finally:
        client.close()


def drop_index(s: Settings) -> None:
    """Delete the index `s` points at, to rebuild it (for example with other models).

    Only an Edge folder this library wrote (it holds the manifest) is deleted, never
    another folder; on a server, the collection. Nothing there: nothing to do.
    """
    import shutil

    from rag_splade.store.edge import EdgeStore

    if s.qdrant_url:
        client = _server_client(s)
        try:
            if client.collection_exists(s.collection):
                client.delete_collection(s.collection)
        finally:
            client.close()
        return
    if EdgeStore.is_index_dir(s.index_path):
        shutil.rmtree(s.index_path)
    elif s.index_path.exists() and any(s.index_path.iterdir()):
        raise ValueError(
            f"{s.index_path} is not an index this library wrote (no manifest): not deleted"
        )


def _server_client(s: Settings) -> Any:
    from qdrant_client import QdrantClient

    key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
    return QdrantClient(url=s.qdrant_url, api_key=key, timeout=int(s.qdrant_timeout))


def _load(what: str, model: str, env: str, build: Callable[[], T]) -> T:
    check_model_available(model, env)
    local = Path(model).is_absolute()
    try:
        return build()
    except (OSError, ValueError) as e:
        if isinstance(e, ValueError) and not local:
            raise  # a bad option (device, dtype...), not the model
        text = str(e).strip()
        first = text.splitlines()[0] if text else type(e).__name__
        fix = (
            "check that the folder holds a transformers or sentence-transformers model"
            if local
            else OFFLINE_FIX.format(env=env)
        )
        raise ModelUnavailableError(
            f"cannot load the {what} model {env}={model}: {first}; {fix}"
        ) from e


def _offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(
        f.strip().lower() in ("1", "true", "yes", "on") for f in flags
    )


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _reachable(endpoint: str, timeout: float = 3.0) -> bool:
    url = urlsplit(endpoint)
    if not url.hostname:
        return False
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _cached(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def encoders_from_settings(s: Settings) -> tuple[SpladeEncoder, DenseEncoder]:
    """The sparse and dense encoders that `s` names (hub ids or local directories).

    Raises:
        ModelUnavailableError: a model that cannot be loaded, with the setting to change.
        ValueError: a bad device or dtype (checked first, before any model is read).
    """
    from rag_splade.encoders.device import resolve_device, resolve_dtype

    resolve_dtype(s.dtype, resolve_device(s.device))
    sparse = _load("sparse", s.sparse_model, "RAG_SPLADE_SPARSE_MODEL", lambda: _sparse(s))
    dense = _load("dense", s.dense_model, "RAG_SPLADE_DENSE_MODEL", lambda: _dense(s))
    return sparse, dense


def _sparse(s: Settings) -> SpladeEncoder:
    from rag_splade.encoders.splade import SpladeEncoder

    return SpladeEncoder(
        s.sparse_model,
        device=s.device,
        dtype=s.dtype,
        query_max_length=s.query_max_length,
        document_max_length=s.document_max_length,
        batch_size=s.batch_size,
        document_top_k=s.document_top_k,
        document_min_weight=s.document_min_weight,
        tokenizer_workers=s.tokenizer_workers,
        backend=s.sparse_backend,
    )


def _dense(s: Settings) -> DenseEncoder:
    from rag_splade.encoders.dense import DenseEncoder

    return DenseEncoder(
        s.dense_model,
        device=s.device,
        dtype=s.dtype,
        batch_size=s.batch_size,
        query_prefix=s.query_prefix,
        document_prefix=s.document_prefix,
    )


def store_from_settings(s: Settings) -> HybridStore:
    """A Qdrant server store when `qdrant_url` is set, else the embedded Edge index."""
    from rag_splade.store.edge import EdgeStore
    from rag_splade.store.server import QdrantServerStore

    if s.qdrant_url:
        return QdrantServerStore(
            url=s.qdrant_url,
            api_key=s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None,
            collection=s.collection,
            shard_number=s.shard_number,
            replication_factor=s.replication_factor,
            timeout=s.qdrant_timeout,
            sparse_datatype=s.sparse_datatype,
        )
    return EdgeStore(s.index_path, sparse_datatype=s.sparse_datatype)
