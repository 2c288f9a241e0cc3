"""The search contract: `SearchOptions` and `SearchRequest`, validated once, on construction.

`SearchOptions` is the one declaration of the search options. Every front end (the
library's `HybridIndex.search` keywords, `SearchArgs`; the HTTP schema; the CLI flags; the
LlamaIndex retriever; the MCP tool) is derived from it or checked against it by
`tests/test_option_congruence.py`. A request is validated once, when it is built, and
resolved against an index once (`HybridIndex.resolve`); deriving a request from options
(`with_query`) or resolving it copies the checked values instead of checking them again.
The choices (`Mode`, `Fusion`) are spelled once, in `rag_splade.ranking`.

Example:
    >>> request = SearchRequest(query="燃費を良くするには", top_k=3, mode="sparse")
    >>> request.needs_sparse, request.needs_dense
    (True, False)
    >>> SearchRequest(query="燃費", top_k=0)
    Traceback (most recent call last):
    ...
    ValueError: top_k must be an int from 1 to 1000, got 0
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast

from rag_splade.checks import check_choice, check_positive_int, check_query, is_finite
from rag_splade.metadata import check_depth
from rag_splade.ranking import FUSIONS, MODES, Fusion, Mode
from rag_splade.store.filters import Condition, parse_filters

if TYPE_CHECKING:
    import numpy as np

    from rag_splade.types import SparseVector

__all__ = [
    "DEFAULT_EXPLAIN",
    "FUSIONS",
    "MAX_RERANK_CANDIDATES",
    "MAX_TOP_K",
    "MODES",
    "Fusion",
    "Mode",
    "OptionArgs",
    "QueryVectors",
    "SearchArgs",
    "SearchOptions",
    "SearchRequest",
    "option_names",
    "options_from",
    "requests_for",
    "vectors_needed",
]

MAX_TOP_K = 1000
MAX_RERANK_CANDIDATES = 1000
# Explanations are what this project is for: the LLM context's key terms come from them,
# so every entry point explains by default; pass explain=False for raw speed.
DEFAULT_EXPLAIN = True


def vectors_needed(mode: Mode, explain: bool) -> tuple[bool, bool]:
    """`(sparse, dense)`: the query vectors a search in `mode` needs. Explanations need the
    sparse one whatever the mode."""
    return mode in ("hybrid", "sparse") or explain, mode in ("hybrid", "dense")


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """How to search, without the query: validated whole on construction.

    `fusion`, `rrf_k` and `candidates` left as None take the index's settings when the
    search runs (`HybridIndex(fusion=..., rrf_k=..., candidates=...)`, or `Settings`).

    Args:
        top_k: hits to return, 1 to `MAX_TOP_K`.
        mode: `hybrid` (sparse and dense fused inside Qdrant), `sparse` or `dense`.
        fusion: `rrf` or `dbsf`, for hybrid mode.
        weights: `(sparse, dense)` Qdrant RRF weights, hybrid + rrf only. A point at 1-based
            rank n of a list with weight w scores 1 / (n / w + rrf_k - 1), so a smaller
            weight gives that list more say; 0 drops a list.
        rrf_k: RRF constant in Qdrant's convention (the top item scores 1/k): Qdrant's
            k=61 is the k=60 of Cormack et al. (2009), whose ranks start at 1.
        candidates: length of each retriever's list before fusion: at least
            `offset + top_k`, and with `rerank` at least `rerank_candidates` (a smaller
            value is refused, never raised quietly). None: the index's setting, raised to
            what the request needs.
        filters: payload filters, see `rag_splade.store.filters`; kept as a private copy.
        explain: attach an `Explanation` (term contributions) to every hit.
        rerank: reorder the best `rerank_candidates` fused hits with the index's
            cross-encoder (`Reranker`) and return its `top_k`.
        rerank_candidates: fused hits the reranker scores (at least `offset + top_k`; with
            `rerank` only); None: the index's setting.
        offset: hits to skip before the `top_k` returned (paging: the order is fixed, so
            pages do not overlap); `offset + top_k` is at most `MAX_TOP_K`.
        min_score: drop hits scoring below it: the reranker's score when reranking, else the
            fused score (a retriever's own score in sparse or dense mode). Fewer than
            `top_k` hits may come back.
        group_by_document: at most this many chunks of one document among the candidates
            and the hits (1: one chunk per document, its best); the index reads at most
            `2 x candidates` chunks to fill `top_k`.

    Example:
        >>> options = SearchOptions(top_k=3, filters={"source": "faq"})
        >>> options.with_query("燃費").top_k
        3
    """

    top_k: int = 5
    mode: Mode = "hybrid"
    fusion: Fusion | None = None
    weights: tuple[float, float] | None = None
    rrf_k: int | None = None
    candidates: int | None = None
    filters: Mapping[str, Any] | None = None
    explain: bool = DEFAULT_EXPLAIN
    rerank: bool = False
    rerank_candidates: int | None = None
    offset: int = 0
    min_score: float | None = None
    group_by_document: int | None = None
    conditions: tuple[Condition, ...] = field(init=False, repr=False, compare=False)
    # Set by `SearchRequest.resolved`: the index's settings are in place.
    is_resolved: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (
            isinstance(self.top_k, bool)
            or not isinstance(self.top_k, int)
            or not 1 <= self.top_k <= MAX_TOP_K
        ):
            raise ValueError(f"top_k must be an int from 1 to {MAX_TOP_K}, got {self.top_k!r}")
        check_choice("mode", self.mode, MODES)
        if self.fusion is not None:
            check_choice("fusion", self.fusion, FUSIONS)
        check_positive_int("rrf_k", self.rrf_k, optional=True)
        check_positive_int("candidates", self.candidates, optional=True)
        for name in ("explain", "rerank"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise ValueError(f"offset must be an int >= 0, got {self.offset!r}")
        if self.offset + self.top_k > MAX_TOP_K:
            raise ValueError(
                f"offset + top_k must be at most {MAX_TOP_K}, got {self.offset} + {self.top_k}"
            )
        if self.min_score is not None and (
            isinstance(self.min_score, bool)
            or not isinstance(self.min_score, (int, float))
            or not is_finite(self.min_score)
        ):
            raise ValueError(
                f"min_score must be a finite number or None, got {self.min_score!r:.40}"
            )
        check_positive_int("group_by_document", self.group_by_document, optional=True)
        _check_rerank_candidates(self.rerank_candidates, self.rerank, self.top_k, self.offset)
        _check_candidates(self.candidates, self.offset + self.top_k, self.rerank_candidates)
        _set(self, "weights", _check_weights(self.weights, self.mode, self.fusion))
        # Bounded before any recursive step (the copy below recurses), then a private copy:
        # the caller changing its dict later cannot change a checked request.
        check_depth(self.filters, "filters")
        filters = None if self.filters is None else copy.deepcopy(self.filters)
        _set(self, "conditions", tuple(parse_filters(filters)))
        _set(self, "filters", filters)

    @property
    def needs_sparse(self) -> bool:
        """Whether the search needs the query's SPLADE vector."""
        return vectors_needed(self.mode, self.explain)[0]

    @property
    def needs_dense(self) -> bool:
        """Whether the search needs the query's dense vector."""
        return vectors_needed(self.mode, self.explain)[1]

    def with_query(self, query: str) -> SearchRequest:
        """These options for one query (the options are not checked again)."""
        check_query(query, "query")
        return _copy(SearchRequest, self, query=query)

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}


@dataclass(frozen=True, kw_only=True)
class SearchRequest(SearchOptions):
    """One search: a query and its `SearchOptions`, validated on construction.

    Example:
        >>> SearchRequest(query="富士山の高さは？", top_k=3).mode
        'hybrid'
    """

    query: str

    def __post_init__(self) -> None:
        check_query(self.query, "query")
        super().__post_init__()

    @property
    def options(self) -> SearchOptions:
        """The options without the query."""
        return _copy(SearchOptions, self, is_resolved=False)

    @property
    def wanted(self) -> int:
        """Hits up to the end of the page asked for: `offset + top_k`."""
        return self.offset + self.top_k

    @property
    def pool(self) -> int:
        """Candidates the index keeps from the store: `rerank_candidates` when reranking
        (once `resolved`), else `offset + top_k`."""
        return max(self.rerank_candidates or 0, self.wanted) if self.rerank else self.wanted

    def resolved(
        self, *, fusion: Fusion, rrf_k: int, candidates: int, rerank_candidates: int
    ) -> SearchRequest:
        """The request with the index's settings in place of the options left as None.
        Only what the index's settings can break is checked again (weights given with the
        index's fusion `dbsf` are refused here). Each retriever's list is at least as long
        as the hits asked of the fused one."""
        check_choice("fusion", fusion, FUSIONS)
        check_positive_int("rrf_k", rrf_k)
        check_positive_int("candidates", candidates)
        check_positive_int("rerank_candidates", rerank_candidates)
        chosen = self.fusion or fusion
        _check_weights(self.weights, self.mode, chosen)
        pool = max(self.rerank_candidates or rerank_candidates, self.wanted)
        if self.rerank and self.rerank_candidates is None:
            # the index's rerank_candidates only now meets the request's own candidates
            _check_candidates(self.candidates, self.wanted, pool, "the index's setting")
        return _copy(
            SearchRequest,
            self,
            fusion=chosen,
            rrf_k=self.rrf_k or rrf_k,
            candidates=max(self.candidates or candidates, pool if self.rerank else self.wanted),
            rerank_candidates=pool if self.rerank else None,
            is_resolved=True,
        )


@dataclass(frozen=True)
class QueryVectors:
    """A query's encoded vectors; None where the request does not need that model."""

    sparse: SparseVector | None = None
    dense: np.ndarray | None = None


class OptionArgs(TypedDict, total=False):
    """`SearchOptions` as keyword arguments, less `top_k` (a front end's own positional or
    named argument) and `filters` (a front end may bring its own filter language)."""

    mode: Mode
    fusion: Fusion | None
    weights: Sequence[float] | None
    rrf_k: int | None
    candidates: int | None
    explain: bool
    rerank: bool
    rerank_candidates: int | None
    offset: int
    min_score: float | None
    group_by_document: int | None


class SearchArgs(OptionArgs, total=False):
    """The keyword arguments of `HybridIndex.search` and `search_batch`: every
    `SearchOptions` field but `top_k`."""

    filters: Mapping[str, Any] | None


def option_names() -> tuple[str, ...]:
    """The names of the search options, in declaration order: every front end's list."""
    return tuple(f.name for f in dataclasses.fields(SearchOptions) if f.init)


def options_from(top_k: int, args: SearchArgs | OptionArgs) -> SearchOptions:
    """`SearchOptions` from keyword arguments, validated whole; an unknown name is a
    `TypeError` that lists the known ones."""
    known = set(option_names())
    unknown = sorted(set(args) - known)
    if unknown:
        raise TypeError(
            f"unknown search option(s) {', '.join(unknown)}; the options are "
            f"{', '.join(sorted(known))}"
        )
    return SearchOptions(top_k=top_k, **cast("Mapping[str, Any]", args))


def requests_for(queries: Sequence[str], options: SearchOptions) -> list[SearchRequest]:
    """One request per query, errors naming the query's position (`queries[2] ...`)."""
    if isinstance(queries, str) or not isinstance(queries, Sequence):
        raise TypeError(f"queries must be a list of str, got {type(queries).__name__}")
    for i, query in enumerate(queries):
        check_query(query, f"queries[{i}]" if len(queries) > 1 else "query")
    return [options.with_query(query) for query in queries]


WEIGHT_MIN, WEIGHT_MAX = 1e-6, 1e6  # RRF weights are ratios: 12 orders of magnitude apart


def _check_weights(
    weights: Sequence[float] | None, mode: str, fusion: str | None
) -> tuple[float, float] | None:
    if weights is None:
        return None
    if mode != "hybrid" or fusion == "dbsf":
        raise ValueError(
            f"weights apply to hybrid mode with rrf fusion only (got mode={mode!r}, "
            f"fusion={fusion!r}); DBSF normalises scores itself"
        )
    if (
        isinstance(weights, (str, bytes))
        or not isinstance(weights, Sequence)
        or len(weights) != 2
        or any(not _finite_non_negative(w) for w in weights)
        or sum(weights) == 0
    ):
        raise ValueError(
            "weights must be two finite non-negative numbers (sparse, dense), not both 0, "
            f"each 0 or from {WEIGHT_MIN:g} to {WEIGHT_MAX:g}; got {weights!r:.80}"
        )
    return float(weights[0]), float(weights[1])


def _finite_non_negative(w: object) -> bool:
    """A number a float can hold exactly enough: 10**400 is an int no float holds."""
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not is_finite(w):
        return False
    value = float(w)
    # Qdrant divides ranks by the weights in float32: a weight that is nearly 0 (1e-320)
    # or huge turns every score into 0 or inf there, and the order into the tie-break's
    return value == 0 or WEIGHT_MIN <= value <= WEIGHT_MAX


def _check_rerank_candidates(value: int | None, rerank: bool, top_k: int, offset: int) -> None:
    if value is None:
        return
    check_positive_int("rerank_candidates", value)
    if value > MAX_RERANK_CANDIDATES:
        raise ValueError(f"rerank_candidates must be at most {MAX_RERANK_CANDIDATES}, got {value}")
    if not rerank:
        raise ValueError("rerank_candidates applies only with rerank=True")
    if value < top_k + offset:
        wanted = f"top_k ({top_k})" if not offset else f"offset + top_k ({offset} + {top_k})"
        raise ValueError(
            f"rerank_candidates ({value}) must be at least {wanted}: the reranker chooses "
            "the hits among them"
        )


def _check_candidates(
    value: int | None, wanted: int, reranked: int | None, whose: str = "asked"
) -> None:
    """Each retriever's list must hold what the request takes from the fused one: an
    explicit `candidates` below it is refused rather than raised behind the caller's back."""
    if value is None:
        return
    if value < wanted:
        raise ValueError(
            f"candidates ({value}) must be at least offset + top_k ({wanted}): each "
            "retriever's list must hold the hits asked for; raise candidates or lower top_k"
        )
    if reranked is not None and value < reranked:
        raise ValueError(
            f"candidates ({value}) must be at least rerank_candidates ({reranked}, {whose}): "
            "the reranker scores that many fused candidates; raise candidates or lower "
            "rerank_candidates"
        )


_T = TypeVar("_T", bound=SearchOptions)


def _copy(cls: type[_T], source: SearchOptions, **changes: Any) -> _T:
    """A `cls` with `source`'s checked values and `changes`, without checking them again:
    the one way a request is derived from options or resolved."""
    new = object.__new__(cls)
    for f in dataclasses.fields(cls):
        value = changes[f.name] if f.name in changes else getattr(source, f.name)
        object.__setattr__(new, f.name, value)
    return new


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # a frozen dataclass sets its own derived fields
