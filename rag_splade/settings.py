"""`Settings`: one configuration, read from `RAG_SPLADE_*` environment variables.

The service, the CLI and the notebooks all build their index from it, so the same
variables configure all three. Importing it loads no model library (no torch).

Local paths are made absolute when the settings load (see `resolve_model`), so a
notebook kernel or a service that runs in another folder finds the same models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag_splade.ranking import Fusion

DEFAULT_SPARSE_MODEL = "hotchpotch/japanese-splade-v2"
# How the SPLADE model runs (`SpladeEncoder(backend=...)`), declared once: PyTorch, one
# ONNX Runtime graph on CPU, or that graph with int8 weights.
SparseBackend = Literal["torch", "onnx", "onnx-int8"]
SPARSE_BACKENDS: tuple[str, ...] = get_args(SparseBackend)
DEFAULT_DENSE_MODEL = "cl-nagoya/ruri-v3-130m"
DEFAULT_RERANK_MODEL = "hotchpotch/japanese-reranker-cross-encoder-small-v1"


# what a key sent in an HTTP header may hold: visible ASCII (no space, no control character)
_KEY_CHARACTERS = frozenset(chr(c) for c in range(0x21, 0x7F))


def check_header_key(key: str, name: str) -> None:
    """A ValueError naming `name` and the first character of `key` that an HTTP header
    cannot carry the same way from every client."""
    bad = next(((i, ch) for i, ch in enumerate(key) if ch not in _KEY_CHARACTERS), None)
    if bad is not None:
        i, ch = bad  # the message names the kind of character, not the secret's own
        control = ch < " " or ch == "\x7f"
        kind = "a control character" if control else "a space" if ch == " " else "not ASCII"
        raise ValueError(
            f"{name} must be visible ASCII characters (! to ~, no spaces): character {i + 1} "
            f"is {kind}. HTTP header values are Latin-1 bytes, and clients send other "
            "characters differently (or refuse to), so such a key would lock them out; make "
            "one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


class Settings(BaseSettings):
    """The library's settings; each field reads `RAG_SPLADE_<FIELD>`.

    Example:
        >>> import os; os.environ["RAG_SPLADE_DEVICE"] = "cpu"
        >>> Settings().device
        'cpu'
    """

    model_config = SettingsConfigDict(env_prefix="RAG_SPLADE_", env_file=None, extra="ignore")

    # models: hub ids or local directories
    sparse_model: str = Field(
        DEFAULT_SPARSE_MODEL, description="SPLADE model: a hub id or a local directory."
    )
    dense_model: str = Field(
        DEFAULT_DENSE_MODEL, description="Dense model: a hub id or a local directory."
    )
    device: str = Field("auto", description="`auto` (CUDA, then MPS, then CPU), `cpu`, `cuda:1`.")
    dtype: str = Field(
        "auto",
        description="`auto`: bf16/fp16 on CUDA; on a CPU, bf16 for SPLADE where the CPU "
        "computes bf16 natively (AVX512-BF16, AMX), float32 for the rest; or pin `float32`, "
        "`bfloat16`.",
    )
    batch_size: int = Field(32, ge=1, description="Texts per encoder batch.")
    query_max_length: int = Field(64, ge=1, description="Query tokens kept (SPLADE).")
    document_max_length: int = Field(
        512, ge=8, description="Document tokens kept (SPLADE); chunks are cut to fit."
    )
    document_top_k: int | None = Field(
        None, ge=1, description="Keep only the strongest N terms of each passage (pruning)."
    )
    document_min_weight: float | None = Field(
        None, gt=0, description="Drop passage terms weighing less than this (pruning)."
    )
    tokenizer_workers: int = Field(
        0, ge=0, description="Processes that tokenize documents ahead of the model (0: none)."
    )
    sparse_backend: SparseBackend = Field(
        "torch",
        description="`onnx`: SPLADE as one ONNX Runtime graph on CPU (extra `onnx`); "
        "`onnx-int8`: that graph with int8 weights (faster, not the same vectors).",
    )
    query_prefix: str | None = Field(
        None, description="Dense query prefix; unset: chosen from the model name."
    )
    document_prefix: str | None = Field(
        None, description="Dense document prefix; unset: chosen from the model name."
    )

    # remote encoders: a TEI-compatible encoder server per model (`rag-splade serve
    # --encoders-only`, or Text Embeddings Inference); unset: the model runs in this process
    sparse_url: str | None = Field(
        None,
        description="Encoder server for the SPLADE model: ids tokenized here are sent to its "
        "/embed_sparse (only the tokenizer files of RAG_SPLADE_SPARSE_MODEL are read here).",
    )
    dense_url: str | None = Field(
        None, description="Encoder server for the dense model (its /embed)."
    )
    rerank_url: str | None = Field(
        None,
        description="Encoder server for the reranker (its /rerank); needs RAG_SPLADE_RERANK_MODEL, "
        "the model it must run.",
    )
    encoder_api_key: SecretStr | None = Field(
        None, description="Key of the encoder servers, sent as `Authorization: Bearer`."
    )
    encoder_timeout: float = Field(30.0, gt=0, description="Seconds before an encoder call fails.")
    encoder_retries: int = Field(
        3,
        ge=0,
        description="Tries after the first on 429, 503 and connections refused, reset or "
        "timed out while connecting (a call left unanswered past the timeout is not resent).",
    )
    encoder_concurrency: int = Field(
        4, ge=1, description="Calls in flight at once to each encoder server."
    )

    # chunking
    chunk_overlap_sentences: int = Field(
        1, ge=0, description="Sentences shared by consecutive chunks."
    )
    normalize_text: bool = Field(False, description="NFKC-normalise chunk texts before storing.")

    # storage: the embedded Edge index, unless a Qdrant server URL is set
    index_path: Path = Field(
        Path("./data/index"),
        description="Folder of the embedded Qdrant Edge index (made absolute on load).",
        validate_default=True,
    )
    snapshot_dir: Path | None = Field(
        None,
        description="Folder of the embedded index's snapshots; unset: `<index_path>.snapshots`.",
    )
    snapshot_keep_replaced: int = Field(
        1,
        ge=0,
        description="Replaced indexes (`<index_path>.before-restore-*`) a snapshot restore "
        "keeps, newest first; older ones are deleted (0: none is kept).",
    )
    qdrant_url: str | None = Field(
        None, description="Qdrant server URL; when set it wins over `index_path`."
    )
    qdrant_api_key: SecretStr | None = Field(None, description="The Qdrant server's API key.")
    qdrant_timeout: float = Field(10.0, gt=0, description="Seconds before a Qdrant call fails.")
    collection: str = Field("rag_splade", description="Collection on the Qdrant server.")
    sparse_datatype: Literal["float32", "float16"] = Field(
        "float32", description="Storage of SPLADE weights, fixed when the index is created."
    )
    payload_indexes: dict[str, str] = Field(
        default_factory=dict,
        description='Metadata fields with a Qdrant payload index, as JSON: {"source": '
        '"keyword", "year": "integer"} (types: keyword, integer, float, bool, datetime). '
        "Filters on them use the index; other fields are scanned.",
    )
    shard_number: int | None = Field(None, ge=1, description="Shards of a new server collection.")
    replication_factor: int | None = Field(
        None, ge=1, description="Replicas of a new server collection."
    )

    # search defaults
    fusion: Fusion = Field("rrf", description="Hybrid fusion inside Qdrant: `rrf` or `dbsf`.")
    rrf_k: int = Field(
        61, ge=1, description="RRF constant (Qdrant's convention: the top item scores 1/k)."
    )
    candidates: int = Field(100, ge=1, description="Each retriever's list length before fusion.")

    # reranking: a cross-encoder reorders the fused candidates; empty model = none loaded
    rerank_model: str | None = Field(
        None,
        description=(
            "Cross-encoder reranker: a hub id or a local directory (for example "
            f"`{DEFAULT_RERANK_MODEL}`); unset or empty: no reranker is loaded."
        ),
    )
    rerank_candidates: int = Field(
        50, ge=1, description="Fused candidates the reranker scores (at least `top_k`)."
    )
    rerank_max_length: int = Field(
        512, ge=8, description="Tokens kept of each (query, passage) pair by the reranker."
    )

    # the HTTP service's own key; unset = open
    api_key: SecretStr | None = Field(
        None, description="The HTTP service's API key; unset: the service is open."
    )

    @field_validator(
        "qdrant_url",
        "qdrant_api_key",
        "api_key",
        "query_prefix",
        "document_prefix",
        "rerank_model",
        "snapshot_dir",
        "sparse_url",
        "dense_url",
        "rerank_url",
        "encoder_api_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("encoder_api_key")
    @classmethod
    def _encoder_key_fits_a_header(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_header_key(value.get_secret_value(), "RAG_SPLADE_ENCODER_API_KEY")
        return value

    @field_validator("sparse_model", "dense_model", "rerank_model")
    @classmethod
    def _local_model_is_absolute(cls, value: str | None) -> str | None:
        return None if value is None else resolve_model(value)

    @field_validator("sparse_url", "dense_url", "rerank_url")
    @classmethod
    def _encoder_url_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = urlsplit(value.strip())
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r:.100}")
        if url.query or url.fragment:
            raise ValueError(f"must be a base URL without ?query or #fragment, got {value!r:.100}")
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _remote_encoders_fit(self) -> Settings:
        if self.sparse_url and self.sparse_backend != "torch":
            raise ValueError(
                f"sparse_url runs SPLADE on the encoder server; sparse_backend "
                f"{self.sparse_backend!r} (a local ONNX graph) does not apply: unset one"
            )
        if self.rerank_url and not self.rerank_model:
            raise ValueError(
                "rerank_url needs rerank_model (RAG_SPLADE_RERANK_MODEL): the model the "
                "encoder server must run, checked at start"
            )
        return self

    @field_validator("payload_indexes")
    @classmethod
    def _payload_indexes_are_known(cls, value: dict[str, str]) -> dict[str, str]:
        from rag_splade.store.payload_indexes import check_declared

        return dict(check_declared(value))

    @field_validator("index_path")
    @classmethod
    def _index_path_is_absolute(cls, value: Path) -> Path:
        return resolve_path(value)

    @field_validator("snapshot_dir")
    @classmethod
    def _snapshot_dir_is_absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else resolve_path(value)


def _bases() -> list[Path]:
    """Folders a relative path is read from: the working directory, then `$PWD` (the
    folder the user ran the command in, where a Jupyter kernel has moved elsewhere)."""
    cwd = Path.cwd()
    pwd = os.environ.get("PWD", "")
    bases = [cwd]
    if pwd and os.path.isabs(pwd) and os.path.isdir(pwd) and not os.path.samefile(pwd, cwd):
        bases.append(Path(pwd))
    return bases


def resolve_path(path: str | Path) -> Path:
    """`path` made absolute: `~` expanded; a relative path is taken from the working
    directory, or from `$PWD` when it exists there and not in the working directory."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return Path(os.path.normpath(path))
    candidates = [base / path for base in _bases()]
    found = next((c for c in candidates if c.exists()), candidates[0])
    return Path(os.path.normpath(found))


def looks_local(model: str) -> bool:
    """Whether a model argument names a local folder rather than a hub id: it starts with
    `./`, `../`, `/` or `~` (or their Windows forms), has more than one `/` (a hub id is
    `name` or `owner/name`), or exists on disk."""
    prefixes = ("./", "../", "/", "~", ".\\", "..\\", "\\")
    return (
        model in (".", "..")
        or model.startswith(prefixes)
        or os.path.isabs(model)
        or model.count("/") > 1
        or any((base / model).exists() for base in _bases())
    )


def resolve_model(model: str) -> str:
    """A hub id unchanged; a local model folder as an absolute path.

    Raises:
        ValueError: `not found: <absolute path>` when it looks local and does not exist.

    Example:
        >>> resolve_model("cl-nagoya/ruri-v3-130m")
        'cl-nagoya/ruri-v3-130m'
    """
    if not looks_local(model):
        return model
    path = resolve_path(model)
    if not path.exists():
        raise ValueError(f"not found: {path}")
    return str(path)
