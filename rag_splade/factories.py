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

from rag_splade.errors import IndexNotFoundError, ModelUnavailableError
from rag_splade.store.backends import store_backend

__all__ = [
    "IndexNotFoundError",
    "ModelUnavailableError",
    "check_model_available",
    "drop_index",
    "encoders_from_settings",
    "index_exists",
    "require_index",
    "store_from_settings",
]

if TYPE_CHECKING:  # the encoders import torch: loaded only when a model is built
    from rag_splade.encoders.dense import DenseEncoder
    from rag_splade.encoders.protocols import DenseEncoderProtocol, SparseEncoderProtocol
    from rag_splade.settings import Settings
    from rag_splade.store.base import HybridStore

T = TypeVar("T")


OFFLINE_FIX = (
    "set {env} to a local model folder (`rag-splade tiny-models DIR` builds tiny offline "
    "ones; `make demo-offline` runs the demo with them)"
)


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
    """For commands that only read: the embedded index must already exist (opening an
    Edge index creates it). A server collection is not checked here.

    Raises:
        IndexNotFoundError: `no index at <path>`, with the command that builds one.
    """
    store_backend(s).require(s)


def index_exists(s: Settings) -> bool:
    """Whether the index `s` points at exists (an Edge folder with its manifest, or the
    collection on the Qdrant server); nothing is created."""
    return store_backend(s).exists(s)


def drop_index(s: Settings) -> None:
    """Delete the index `s` points at, to rebuild it (for example with other models).

    Only an Edge folder this library wrote (it holds the manifest) is deleted, never
    another folder; on a server, the collection. Nothing there: nothing to do.
    """
    store_backend(s).drop(s)


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


def encoders_from_settings(s: Settings) -> tuple[SparseEncoderProtocol, DenseEncoderProtocol]:
    """The sparse and dense encoders that `s` names (hub ids or local directories), or the
    remote ones on the encoder servers `sparse_url` / `dense_url` name.

    Raises:
        ModelUnavailableError: a model that cannot be loaded, with the setting to change.
        RemoteEncoderError, RemoteModelMismatchError: an encoder server that cannot be
            reached, or runs another model.
        ValueError: a bad device or dtype (checked first, before any model is read).
    """
    from rag_splade.encoders.device import resolve_device, resolve_dtype

    resolve_dtype(s.dtype, resolve_device(s.device))
    # a remote SPLADE encoder still reads the tokenizer's files here: same check
    sparse = _load("sparse", s.sparse_model, "RAG_SPLADE_SPARSE_MODEL", lambda: _sparse(s))
    if s.dense_url:  # nothing of the model is read here
        return sparse, _remote_dense(s)
    dense = _load("dense", s.dense_model, "RAG_SPLADE_DENSE_MODEL", lambda: _dense(s))
    return sparse, dense


def remote_options(s: Settings) -> dict[str, Any]:
    """The transport settings every remote encoder takes."""
    key = s.encoder_api_key.get_secret_value() if s.encoder_api_key else None
    return {
        "api_key": key,
        "timeout": s.encoder_timeout,
        "retries": s.encoder_retries,
        "concurrency": s.encoder_concurrency,
        "batch_size": s.batch_size,
    }


def _remote_dense(s: Settings) -> DenseEncoderProtocol:
    from rag_splade.encoders.remote import RemoteDenseEncoder

    assert s.dense_url is not None
    return RemoteDenseEncoder(
        s.dense_url,
        s.dense_model,
        query_prefix=s.query_prefix,
        document_prefix=s.document_prefix,
        **remote_options(s),
    )


def _sparse(s: Settings) -> SparseEncoderProtocol:
    from rag_splade.encoders.splade import SpladeEncoder

    if s.sparse_url:
        from rag_splade.encoders.remote import RemoteSpladeEncoder

        return RemoteSpladeEncoder(
            s.sparse_url,
            s.sparse_model,
            query_max_length=s.query_max_length,
            document_max_length=s.document_max_length,
            document_top_k=s.document_top_k,
            document_min_weight=s.document_min_weight,
            **remote_options(s),
        )
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
    """A Qdrant server store when `qdrant_url` is set, else the embedded Edge index
    (the choice is `rag_splade.store.backends.store_backend`)."""
    return store_backend(s).build(s)
