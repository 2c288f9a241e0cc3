"""The value types every layer shares: sparse vectors, documents, hits, explanations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rag_splade.checks import check_doc_id
from rag_splade.metadata import check_metadata, check_text

JsonScalar = str | int | float | bool


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector over a model vocabulary: sorted int32 ids and their float32 weights.

    Example:
        >>> v = SparseVector.from_pairs({12: 0.5, 3: 1.25})
        >>> v.indices.tolist(), v.values.tolist()
        ([3, 12], [1.25, 0.5])
    """

    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        indices = np.asarray(self.indices, dtype=np.int32).reshape(-1)
        values = np.asarray(self.values, dtype=np.float32).reshape(-1)
        if indices.shape != values.shape:
            raise ValueError(
                f"SparseVector needs as many indices as values, got {indices.size} indices "
                f"and {values.size} values"
            )
        if indices.size and indices.min() < 0:
            raise ValueError(f"SparseVector indices must be >= 0, got {int(indices.min())}")
        order = np.argsort(indices, kind="stable")
        indices, values = indices[order], values[order]
        if indices.size > 1 and np.any(indices[1:] == indices[:-1]):
            raise ValueError("SparseVector indices must be unique")
        indices.setflags(write=False)
        values.setflags(write=False)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "values", values)

    @classmethod
    def from_pairs(cls, pairs: Mapping[int, float]) -> SparseVector:
        """Build a vector from an `{id: weight}` mapping."""
        return cls(np.fromiter(pairs.keys(), np.int32), np.fromiter(pairs.values(), np.float32))

    def __len__(self) -> int:
        return int(self.indices.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return np.array_equal(self.indices, other.indices) and np.array_equal(
            self.values, other.values
        )

    __hash__ = None  # type: ignore[assignment]  # arrays are not hashable

    def pruned(self, top_k: int | None = None, min_weight: float | None = None) -> SparseVector:
        """This vector without its weights under `min_weight`, then only its `top_k`
        strongest (equal weights: the lower id first).

        Example:
            >>> SparseVector.from_pairs({1: 0.2, 5: 2.0, 9: 1.0}).pruned(top_k=2).as_dict()
            {5: 2.0, 9: 1.0}
        """
        keep = np.ones(self.indices.size, dtype=bool)
        if min_weight is not None:
            keep &= self.values >= min_weight
        indices, values = self.indices[keep], self.values[keep]
        if top_k is not None and values.size > top_k:
            strongest = np.argsort(-values, kind="stable")[:top_k]
            indices, values = indices[strongest], values[strongest]
        return SparseVector(indices, values)

    def as_dict(self) -> dict[int, float]:
        """The vector as `{id: weight}` (ids of the vocabulary, never token strings)."""
        return dict(zip(self.indices.tolist(), self.values.tolist(), strict=True))

    def dot(self, other: SparseVector) -> float:
        """Dot product, the score Qdrant computes for a sparse vector without a modifier."""
        _, mine, theirs = np.intersect1d(
            self.indices, other.indices, assume_unique=True, return_indices=True
        )
        return float(np.dot(self.values[mine].astype(np.float64), other.values[theirs]))

    def top_k(self, k: int) -> SparseVector:
        """Keep the `k` largest weights (document pruning)."""
        if k < 1:
            raise ValueError(f"top_k must be >= 1, got {k}")
        if len(self) <= k:
            return self
        keep = np.argpartition(-self.values, k - 1)[:k]
        return SparseVector(self.indices[keep], self.values[keep])

    def drop_below(self, min_weight: float) -> SparseVector:
        """Keep the weights of at least `min_weight` (document pruning by weight)."""
        if not min_weight > 0:
            raise ValueError(f"min_weight must be > 0, got {min_weight}")
        keep = self.values >= min_weight
        return self if keep.all() else SparseVector(self.indices[keep], self.values[keep])

    def to_qdrant(self) -> Any:
        """The vector as qdrant-client's `models.SparseVector`."""
        from qdrant_client import models

        return models.SparseVector(indices=self.indices.tolist(), values=self.values.tolist())


@dataclass(frozen=True)
class Document:
    """A source document; `HybridIndex.add` chunks it.

    Example:
        >>> Document(id="faq-12", text="燃費を良くするには。", metadata={"source": "faq"}).id
        'faq-12'
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_doc_id(self.id, "Document.id", new=True)
        if not isinstance(self.text, str):
            raise TypeError(f"Document.text must be a str, got {type(self.text).__name__}")
        if not isinstance(self.metadata, dict):
            raise TypeError(f"Document.metadata must be a dict, got {type(self.metadata).__name__}")
        check_text(self.id, "Document.id")
        check_text(self.text, f"document {self.id!r}: text")
        check_metadata(self.metadata, self.id)  # rules: rag_splade.metadata


MatchKind = Literal["whole", "partial", "expansion"]
MATCH_KINDS: tuple[MatchKind, ...] = ("whole", "partial", "expansion")


@dataclass(frozen=True)
class TermMatch:
    """One reason a passage matched: a word of the passage, or an expansion term.

    `kind` says how it matched:

    - ``"whole"``: a word of the passage all of whose vocabulary pieces are shared with the
      query (or a word that is one piece): the query and the passage both say it;
    - ``"partial"``: a word of the passage only some of whose pieces are shared, e.g. the
      long-vowel piece ``##ー`` of マーラー when the query says フィルター. The passage
      says the word, the query does not: never present it as a matched word;
    - ``"expansion"``: a single vocabulary term that the model weighted although the
      passage never says it (`literal` False, no spans).

    `pieces` are all the vocabulary pieces of the passage word (``["マ", "##ー", "##ラ",
    "##ー"]``; for an expansion ``[term]``); `matched_pieces` are the shared pieces this
    match claims, once each, in word order. Each shared vocabulary id belongs to exactly
    one match (a whole word before a partial one, then the first in the text), so a whole
    match may claim fewer pieces than it has when an earlier word claimed the rest.

    `contribution` is `query_weight * document_weight` summed over `matched_pieces`;
    `query_weight`/`document_weight` are those of the piece that contributes most.
    `spans` are character offsets into the hit's `text`, one or more per occurrence: for
    a whole match the word, for a partial match only the characters of its matched pieces
    (a run of adjacent matched pieces is one span), or the whole word where a piece's edge
    falls inside one source character. The tokenizer sees NFKC-normalised text, so a span's
    text NFKC-equals the word (or pieces), except where a word starts or ends inside a
    character that normalisation expands (℃ reads °C, the words ° and C): the span then
    covers that whole character. Empty for an expansion.

    Example:
        >>> t = TermMatch("マーラー", 1.2, 0.8, 0.96, [(3, 4), (5, 6)], True,
        ...               pieces=["マ", "##ー", "##ラ", "##ー"], kind="partial",
        ...               matched_pieces=["##ー"])
        >>> t.kind, t.matched_pieces
        ('partial', ['##ー'])
    """

    term: str
    query_weight: float
    document_weight: float
    contribution: float
    spans: list[tuple[int, int]]
    literal: bool
    function_word: bool = False
    pieces: list[str] = field(default_factory=list)
    kind: MatchKind = "whole"
    matched_pieces: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in MATCH_KINDS:
            raise ValueError(f"TermMatch.kind must be one of {MATCH_KINDS}, got {self.kind!r}")
        if self.literal != (self.kind != "expansion"):
            raise ValueError(
                f"TermMatch {self.term!r}: literal={self.literal} does not fit "
                f"kind={self.kind!r}; an expansion is the one kind that is not literal"
            )


@dataclass(frozen=True)
class QueryTerm:
    """A weighted term of the query, in the same word-level view as a hit's matches.

    For the query's own words (`expansion` False), `term` is the MeCab word with its
    WordPiece pieces merged (良く, never ``##く``), `weight` the weight of its strongest
    piece, `pieces` its vocabulary pieces and `spans` its offsets in the query text (as
    in `TermMatch`). An expansion term (`expansion` True) is a single vocabulary term the
    query never says (it may be a ``##`` piece), with no spans.

    Example:
        >>> QueryTerm("良く", 1.4, False, pieces=["良", "##く"], spans=[(3, 5)]).term
        '良く'
    """

    term: str
    weight: float
    expansion: bool
    function_word: bool = False
    pieces: list[str] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)


def _strongest_first(term: TermMatch) -> tuple[float, str]:
    return (-term.contribution, term.term)


@dataclass(frozen=True)
class Explanation:
    """Why a hit matched: its term matches, strongest first (ties by term), whose
    contributions sum to `sparse_score`.

    `key_terms` are the matches a prompt may call matched words (whole literal matches
    that are not function words); `related_terms` the expansions that are words (not
    function words, not ``##`` pieces).
    Partial matches are in neither: they stay in `terms`, so the sum holds.

    `rag_splade.explain` builds the expansion matches the first time `terms` is read (a
    dense vector, such as an untrained model's, shares most of the vocabulary with every
    passage); `key_terms` and `related_terms` build only what they return.

    Example:
        >>> e = Explanation(
        ...     terms=[TermMatch("燃費", 2.0, 1.5, 3.0, [(0, 2)], True, pieces=["燃費"],
        ...                      matched_pieces=["燃費"])],
        ...     sparse_score=3.0)
        >>> [t.term for t in e.key_terms()], e.related_terms()
        (['燃費'], [])
    """

    terms: list[TermMatch]
    sparse_score: float

    @classmethod
    def lazy(
        cls,
        literal: Sequence[TermMatch],
        expansions: Sequence[TermMatch],
        sparse_score: float,
    ) -> Explanation:
        """An explanation whose `terms` are the `literal` matches (strongest first, ties by
        term) and the `expansions` (largest contribution first), two sequences whose items
        may be built when read; they are merged the first time `terms` is read."""
        self = object.__new__(cls)
        object.__setattr__(self, "sparse_score", sparse_score)
        object.__setattr__(self, "_pending", (literal, expansions))
        return self

    if not TYPE_CHECKING:  # `terms` of a lazy explanation, built on first access

        def __getattr__(self, name: str) -> Any:
            pending = self.__dict__.get("_pending") if name == "terms" else None
            if pending is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            literal, expansions = pending
            terms = sorted([*literal, *expansions], key=_strongest_first)
            object.__setattr__(self, "terms", terms)
            return terms

    def _parts(self) -> tuple[Sequence[TermMatch], Sequence[TermMatch]]:
        """(literal matches, expansions), each strongest first, without building `terms`."""
        pending = self.__dict__.get("_pending")
        if pending is None or "terms" in self.__dict__:
            terms = self.terms
            return [t for t in terms if t.literal], [t for t in terms if not t.literal]
        literal: Sequence[TermMatch] = pending[0]
        expansions: Sequence[TermMatch] = pending[1]
        return literal, expansions

    def literal_terms(self) -> list[TermMatch]:
        """The whole and partial matches (those with spans), strongest first, without
        building the expansion matches."""
        return list(self._parts()[0])

    def key_terms(self, limit: int = 8) -> list[TermMatch]:
        """The strongest whole literal matches that are not function words (particles,
        auxiliaries, symbols): the words both the query and the passage say."""
        return _strongest(self._parts()[0], limit, "whole")

    def related_terms(self, limit: int = 8) -> list[TermMatch]:
        """The strongest expansion matches that are words (not function words, not ``##``
        word-continuation pieces): terms the model weighted for both texts although the
        passage never says them."""
        return _strongest(self._parts()[1], limit, "expansion")


def _strongest(terms: Sequence[TermMatch], limit: int, kind: MatchKind) -> list[TermMatch]:
    """The first `limit` of `terms` (ordered by contribution, largest first) of this kind
    that are words, in `Explanation.terms` order (ties by term)."""
    if limit <= 0:
        return []
    out: list[TermMatch] = []
    for t in terms:  # reads only as far as it needs; past the limit, only ties
        if len(out) >= limit and t.contribution < out[-1].contribution:
            break
        if t.kind == kind and not t.function_word and not t.term.startswith("##"):
            out.append(t)
    return sorted(out, key=_strongest_first)[:limit]


@dataclass(frozen=True)
class SearchHit:
    """One chunk returned by `HybridIndex.search`.

    `score` is the fused score in hybrid mode (else the single retriever's score);
    `sparse_*`/`dense_*` are each retriever's own score and 1-based rank, None where
    the chunk was not among that retriever's candidates. `rerank_score`/`rerank_rank` are
    the cross-encoder's score and the 1-based rank it gave, None without reranking; a
    reranked search returns hits in `rerank_rank` order and keeps the fused `score`.
    """

    id: str
    doc_id: str
    chunk_index: int
    text: str
    metadata: dict[str, Any]
    score: float
    sparse_score: float | None = None
    dense_score: float | None = None
    sparse_rank: int | None = None
    dense_rank: int | None = None
    rerank_score: float | None = None
    rerank_rank: int | None = None
    start: int = 0
    end: int = 0
    explanation: Explanation | None = None

    def _repr_html_(self) -> str:
        """The hit as a notebook shows it: highlighted matches and contribution bar
        (`rag_splade.views`; a list of hits: `views.show(hits)`)."""
        from rag_splade.views import show

        return show([self])._repr_html_()
