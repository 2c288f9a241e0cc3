"""Why a passage matched: query x passage term contributions, merged into the passage's words.

The sparse score of a hit is `sum_i q_i * d_i` over the vocabulary ids both vectors
share. Each shared id is attributed to exactly one `TermMatch`, so the contributions of
a hit add up to its sparse score:

- ids that are WordPiece pieces of a MeCab word of the passage go to the first word
  (in text order) that produces them; words with the same surface are one match, with
  a span for every occurrence;
- the other ids are expansion terms: the model gave them weight although the passage
  never says them (`literal=False`, no spans).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np

from rag_splade.text.mecab import is_function_term, normalize_with_offsets, segment
from rag_splade.types import Explanation, QueryTerm, SparseVector, TermMatch


class Vocabulary(Protocol):
    """The part of `SpladeEncoder` explanations need."""

    @property
    def normalizes_text(self) -> bool: ...

    def terms(self, ids: Sequence[int]) -> list[str]: ...

    def word_piece_ids(self, word: str) -> list[int]: ...


@lru_cache(maxsize=65536)
def _term_is_function_word(term: str) -> bool:
    bare = term.removeprefix("##")
    return not bare.strip() or is_function_term(bare)


def explain_match(
    vocab: Vocabulary, query: SparseVector, document: SparseVector, text: str
) -> Explanation:
    """Explain one hit: `text` is the hit's own text, `document` its stored sparse vector."""
    shared, qi, di = np.intersect1d(
        query.indices, document.indices, assume_unique=True, return_indices=True
    )
    if shared.size == 0:
        return Explanation(terms=[], sparse_score=0.0)
    q_weights = query.values[qi].astype(np.float64)
    d_weights = document.values[di].astype(np.float64)
    weight_of = {
        int(i): (float(q), float(d)) for i, q, d in zip(shared, q_weights, d_weights, strict=True)
    }

    seen_text, offsets = (
        normalize_with_offsets(text) if vocab.normalizes_text else (text, list(range(len(text))))
    )
    owner: dict[int, str] = {}  # shared id -> surface of the word that claims it
    spans: dict[str, list[tuple[int, int]]] = {}
    function: dict[str, bool] = {}
    pieces_of: dict[str, list[int]] = {}
    for word in segment(seen_text):
        if word.surface not in pieces_of:
            pieces_of[word.surface] = vocab.word_piece_ids(word.surface)
        claimed = False
        for piece in pieces_of[word.surface]:
            if piece in weight_of and owner.setdefault(piece, word.surface) == word.surface:
                claimed = True
        if claimed or word.surface in spans:
            span = (offsets[word.start], offsets[word.end - 1] + 1)
            spans.setdefault(word.surface, []).append(span)
            function[word.surface] = function.get(word.surface, True) and word.function_word

    by_surface: dict[str, list[int]] = {}
    for piece, surface in owner.items():
        by_surface.setdefault(surface, []).append(piece)
    terms = [
        _match(vocab, surface, ids, weight_of, spans[surface], True, function[surface])
        for surface, ids in by_surface.items()
    ]
    for piece in weight_of.keys() - owner.keys():
        term = vocab.terms([piece])[0]
        terms.append(
            _match(vocab, term, [piece], weight_of, [], False, _term_is_function_word(term))
        )
    terms.sort(key=lambda t: (-t.contribution, t.term))
    return Explanation(terms=terms, sparse_score=float(np.dot(q_weights, d_weights)))


def _match(
    vocab: Vocabulary,
    term: str,
    ids: list[int],
    weight_of: dict[int, tuple[float, float]],
    spans: list[tuple[int, int]],
    literal: bool,
    function_word: bool,
) -> TermMatch:
    ids = sorted(ids, key=lambda i: -weight_of[i][0] * weight_of[i][1])
    top_q, top_d = weight_of[ids[0]]
    return TermMatch(
        term=term,
        query_weight=top_q,
        document_weight=top_d,
        contribution=float(sum(weight_of[i][0] * weight_of[i][1] for i in ids)),
        spans=spans,
        literal=literal,
        function_word=function_word,
        pieces=vocab.terms(ids),
    )


def explain_query(
    vocab: Vocabulary, text: str, vector: SparseVector, top_k: int | None = 20
) -> list[QueryTerm]:
    """The query's strongest terms; `expansion` marks those the query text does not contain."""
    seen_text, _ = normalize_with_offsets(text) if vocab.normalizes_text else (text, [])
    own: dict[int, bool] = {}  # id of a piece of the query's own words -> is a function word
    for word in segment(seen_text):
        for piece in vocab.word_piece_ids(word.surface):
            own[piece] = own.get(piece, True) and word.function_word
    order = np.argsort(-vector.values, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    ids = vector.indices[order].tolist()
    return [
        QueryTerm(
            term=term,
            weight=float(vector.values[j]),
            expansion=i not in own,
            function_word=own[i] if i in own else _term_is_function_word(term),
        )
        for i, j, term in zip(ids, order.tolist(), vocab.terms(ids), strict=True)
    ]
