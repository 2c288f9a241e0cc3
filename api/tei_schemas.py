"""Bodies of the TEI-compatible endpoints, in the shape of Text Embeddings Inference's
OpenAPI document (1.9.3): a TEI client reads and writes them unchanged.

Where TEI is loose this is strict: unknown fields, a float where an id goes and ids
outside int32 are refused (422, TEI's error body) rather than ignored or cut.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
)

from rag_splade.metadata import check_text


def _unicode(value: str) -> str:
    """JSON can spell a lone surrogate (`"\\ud800"`); no tokenizer takes one (TEI's parser
    refuses such a body too), so it is a 422 here, not a failure inside the model."""
    check_text(value, "the text")
    return value


Text = Annotated[StrictStr, AfterValidator(_unicode)]
TokenId = Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)]
InputType = Text | list[TokenId]  # a text, or the token ids of one text


def _direction(value: Any) -> Any:
    """TEI spells the directions `Left`/`Right`; its clients send them lower-case too."""
    return value.lower() if isinstance(value, str) else value


Direction = Annotated[Literal["left", "right"], BeforeValidator(_direction)]


class TeiRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Truncating(TeiRequest):
    truncate: StrictBool | None = Field(
        False,
        description="Cut a text longer than the model reads; false: such a text is a 413.",
    )
    truncation_direction: Direction = Field(
        "right", description="`Right` keeps the text's start, `Left` its end."
    )


class EmbedSparseRequest(Truncating):
    inputs: InputType | list[InputType] = Field(
        description="A text, a list of texts, token ids of one text (with `[CLS]` and "
        "`[SEP]`, as the model reads them) or a list of those.",
        examples=[["富士山の高さは？"]],
    )
    prompt_name: StrictStr | None = Field(
        None,
        description='Which side the SPLADE vector is of: "query" (query length, no pruning) '
        'or "document" / null (document length and pruning).',
    )


class EmbedRequest(Truncating):
    inputs: InputType | list[InputType] = Field(
        description="A text or a list of texts (token ids: `/embed_sparse` only).",
        examples=[["富士山の高さは？"]],
    )
    normalize: StrictBool = Field(True, description="Unit-length rows.")
    prompt_name: StrictStr | None = Field(
        None,
        description='"query" or "document" puts the dense model\'s query or document prefix '
        "(ruri-v3: `検索クエリ: ` / `検索文書: `) before each text; null: none.",
    )
    dimensions: int | None = Field(
        None, strict=True, ge=1, description="Keep the first `dimensions` values of each row."
    )


class RerankRequest(Truncating):
    query: Text
    texts: list[Text]
    raw_scores: StrictBool = Field(
        False, description="The logits; false: the model's activation of them (a sigmoid)."
    )
    return_text: StrictBool = Field(False, description="Put each text in its rank.")


class TokenizeRequest(TeiRequest):
    inputs: Text | list[Text]
    add_special_tokens: StrictBool = True
    prompt_name: StrictStr | None = Field(None, description="Must be null: SPLADE has no prompts.")


class SparseValue(BaseModel):
    index: int
    value: float


class Rank(BaseModel):
    index: int
    score: float
    text: str | None = None


class SimpleToken(BaseModel):
    id: int
    text: str = Field(description="The token's characters in the input (its name if special).")
    special: bool
    start: int | None = Field(description="Character (code point) offset, not TEI's bytes.")
    stop: int | None


class EmbeddingModel(BaseModel):
    pooling: str


class ModelKind(BaseModel):
    embedding: EmbeddingModel


class Info(BaseModel):
    """TEI's `Info` of the SPLADE model, and `rag_splade`: every model this server runs
    (what remote encoders check at start)."""

    model_id: str
    model_sha: str | None = None
    model_dtype: str
    model_type: ModelKind
    served_model_name: str
    max_concurrent_requests: int
    max_input_length: int
    max_batch_tokens: int
    max_batch_requests: int | None
    max_client_batch_size: int
    auto_truncate: bool
    tokenization_workers: int
    version: str
    sha: str | None = None
    docker_label: str | None = None
    rag_splade: dict[str, Any]
