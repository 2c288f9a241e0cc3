"""`Settings`: one configuration, read from `RAG_SPLADE_*` environment variables.

The service, the CLI and the notebooks all build their index from it, so the same
variables configure all three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag_splade.encoders.dense import DEFAULT_DENSE_MODEL
from rag_splade.encoders.splade import DEFAULT_SPARSE_MODEL


class Settings(BaseSettings):
    """Example:
    >>> import os; os.environ["RAG_SPLADE_DEVICE"] = "cpu"
    >>> Settings().device
    'cpu'
    """

    model_config = SettingsConfigDict(env_prefix="RAG_SPLADE_", env_file=None, extra="ignore")

    # models: hub ids or local directories
    sparse_model: str = DEFAULT_SPARSE_MODEL
    dense_model: str = DEFAULT_DENSE_MODEL
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = Field(32, ge=1)
    query_max_length: int = Field(64, ge=1)
    document_max_length: int = Field(512, ge=8)
    document_top_k: int | None = Field(None, ge=1)
    document_min_weight: float | None = Field(None, gt=0)
    tokenizer_workers: int = Field(0, ge=0)
    sparse_backend: Literal["torch", "onnx"] = "torch"
    query_prefix: str | None = None
    document_prefix: str | None = None

    # chunking
    chunk_overlap_sentences: int = Field(1, ge=0)
    normalize_text: bool = False

    # storage: the embedded Edge index, unless a Qdrant server URL is set
    index_path: Path = Path("./data/index")
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_timeout: float = Field(10.0, gt=0)
    collection: str = "rag_splade"
    sparse_datatype: Literal["float32", "float16"] = "float32"
    shard_number: int | None = Field(None, ge=1)
    replication_factor: int | None = Field(None, ge=1)

    # search defaults
    fusion: Literal["rrf", "dbsf"] = "rrf"
    rrf_k: int = Field(61, ge=1)
    candidates: int = Field(100, ge=1)

    # the HTTP service's own key; unset = open
    api_key: SecretStr | None = None

    @field_validator(
        "qdrant_url", "qdrant_api_key", "api_key", "query_prefix", "document_prefix", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value
