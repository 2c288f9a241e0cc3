"""Why a passage matched: query x passage term contributions, merged into the passage's words.

The sparse score of a hit is `sum_i q_i * d_i` over the vocabulary ids both vectors
share. Each shared id is attributed to exactly one `TermMatch`, so the contributions of
a hit add up to its sparse score:

- an id that is a WordPiece piece of a MeCab word of the passage goes to a word that
  produces it: the first (in text order) whose pieces are all shared, a **whole** match;
  else the first whose pieces are only partly shared, a **partial** match (e.g. only the
  ``##ー`` of マーラー). Words with the same surface are one match, with a span for every
  occurrence;
- the other ids are **expansion** terms: the model gave them weight although the passage
  never says them (`literal=False`, no spans).

The query is explained the same way (`explain_query`): its own MeCab words with their
pieces merged, plus its expansion terms, flagged.

Cost: the shared ids are matched to the words with numpy; a text's MeCab words and their
pieces are cached (`rag_splade.text.mecab.text_words`), and expansion
matches are only built when `Explanation.terms` is read (see `Explanation.lazy`), so a
dense vector does not cost Python work per vocabulary id.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, cast, overload

import numpy as np

from rag_splade.text.mecab import TextWords, is_function_term, text_words
from rag_splade.types import Explanation, QueryTerm, SparseVector, TermMatch


class Vocabulary(Protocol):
    """The part of `SpladeEncoder` explanations need."""

    @property
    def normalizes_text(self) -> bool: ...

    def terms(self, ids: Sequence[int] | np.ndarray) -> list[str]: ...

    def word_piece_ids(self, word: str) -> list[int]: ...


@lru_cache(maxsize=65536)
def _term_is_function_word(term: str) -> bool:
    bare = term.removeprefix("##")
    return not bare.strip() or is_function_term(bare)


@dataclass(frozen=True)
class _Pieces:
    """The vocabulary pieces of a text's words, flattened (word `w` has `flat[bounds[w]:
    bounds[w + 1]]`, named `names[...]`)."""

    flat: np.ndarray
    lengths: np.ndarray
    word_of: np.ndarray
    names: list[str]
    bounds: list[int]


def _pieces(vocab: Vocabulary, words: TextWords) -> _Pieces:
    """The pieces of `words` in `vocab`, kept with the words for the last vocabulary asked."""
    cached = words.derived.get("pieces")
    if cached is not None and cached[0]() is vocab:
        return cast(_Pieces, cached[1])
    ids = [vocab.word_piece_ids(s) for s in words.surfaces]
    lengths = [len(i) for i in ids]
    flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64, sum(lengths))
    bounds = list(itertools.accumulate(lengths, initial=0))
    pieces = _Pieces(
        flat,
        np.asarray(lengths, dtype=np.int64),
        np.repeat(np.arange(len(ids)), lengths),
        vocab.terms(flat),
        bounds,
    )
    with contextlib.suppress(TypeError):  # a vocabulary without weak references: no cache
        words.derived["pieces"] = (weakref.ref(vocab), pieces)
    return pieces


def explain_match(
    vocab: Vocabulary, query: SparseVector, document: SparseVector, text: str
) -> Explanation:
    """Explain one hit: `text` is the hit's own text, `document` its stored sparse vector."""
    shared, qi, di = _intersect(query.indices, document.indices)
    if shared.size == 0:
        return Explanation(terms=[], sparse_score=0.0)
    q = query.values[qi].astype(np.float64)
    d = document.values[di].astype(np.float64)
    contribution = q * d
    words = text_words(text, vocab.normalizes_text)
    claims = _Claims(shared, _pieces(vocab, words))
    rest = np.flatnonzero(claims.owner < 0)
    return Explanation.lazy(
        _WordMatches(vocab, words, claims, q, d, contribution) if rest.size < shared.size else [],
        _ExpansionMatches(vocab, shared[rest], q[rest], d[rest], contribution[rest]),
        float(np.dot(q, d)),
    )


def _intersect(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ids two sorted id arrays share, and where they are in each (what `np.intersect1d`
    with `return_indices` gives, by binary search instead of a sort)."""
    if a.size > b.size:
        shared, in_b, in_a = _intersect(b, a)
        return shared, in_a, in_b
    if not a.size:
        empty = np.zeros(0, dtype=np.int64)
        return a, empty, empty
    where = np.minimum(np.searchsorted(b, a), b.size - 1)
    found = b[where] == a
    return a[found], np.flatnonzero(found), where[found]


class _Claims:
    """Which word claims each shared id: the first whole word (all its pieces shared) that
    produces it, else the first partial one; ids no word produces are expansions."""

    def __init__(self, shared: np.ndarray, pieces: _Pieces) -> None:
        self.pieces = pieces
        n_words, word_of = pieces.lengths.size, pieces.word_of
        where = np.minimum(np.searchsorted(shared, pieces.flat), shared.size - 1)
        hit = shared[where] == pieces.flat
        self.whole = (np.bincount(word_of[hit], minlength=n_words) == pieces.lengths) & (
            pieces.lengths > 0
        )
        candidate, word = where[hit], word_of[hit]
        order = np.lexsort((np.where(self.whole[word], word, word + n_words), candidate))
        candidate, word = candidate[order], word[order]
        first = np.ones(candidate.size, dtype=bool)
        first[1:] = candidate[1:] != candidate[:-1]
        # shared id (by position) -> the word that claims it, -1 for none
        self.owner = np.full(shared.size, -1, dtype=np.int64)
        self.owner[candidate[first]] = word[first]
        # flat piece -> whether its word claims its id
        self.owned = hit & (self.owner[where] == word_of)


def _piece_spans(
    words: TextWords, w: int, names: list[str], owned: list[bool]
) -> list[tuple[int, int]]:
    """The characters of a partial match's matched pieces in every occurrence of the word:
    a run of adjacent matched pieces is one span; a piece whose edge falls inside one
    source character (or a word the pieces do not spell out) gives the whole word."""
    lengths = [len(n.removeprefix("##")) for n in names]
    size = len(words.surfaces[w])
    if sum(lengths) != size:  # [UNK], or case folding changed the length
        return list(words.spans[w])
    runs: list[tuple[int, int]] = []  # [start, end) of runs of matched pieces, in the word
    at = 0
    for mine, n in zip(owned, lengths, strict=True):
        if mine:
            if runs and runs[-1][1] == at:
                runs[-1] = (runs[-1][0], at + n)
            else:
                runs.append((at, at + n))
        at += n
    spans: list[tuple[int, int]] = []
    for a in words.occurrences[w]:
        if all(words.aligned[a + s] and words.aligned[a + e] for s, e in runs):
            spans += [words.span(a + s, a + e) for s, e in runs]
        else:
            spans.append(words.span(a, a + size))
    return spans


class _Lazy(Sequence[TermMatch]):
    """Matches in a fixed order, built the first time they are read: reading match `i`
    builds those before it too, a growing batch at a time; pickles as a plain list."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._built: list[TermMatch] = []
        self._lock = threading.Lock()

    def _build(self, start: int, stop: int) -> list[TermMatch]:
        """Matches `start` to `stop` (exclusive)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, i: int) -> TermMatch: ...

    @overload
    def __getitem__(self, i: slice) -> list[TermMatch]: ...

    def __getitem__(self, i: int | slice) -> TermMatch | list[TermMatch]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._size))]
        if not -self._size <= i < self._size:
            raise IndexError(f"match {i} of {self._size}")
        i %= self._size
        built = self._built
        if i >= len(built):
            with self._lock:  # another thread may be reading the same explanation
                if i >= len(built):
                    stop = min(self._size, max(i + 1, 2 * len(built), 8))
                    built += self._build(len(built), stop)
        return built[i]

    def __iter__(self) -> Iterator[TermMatch]:
        return (self[i] for i in range(self._size))

    def __reduce__(self) -> tuple[type[list[TermMatch]], tuple[list[TermMatch]]]:  # no lock
        return list, (list(self),)


class _WordMatches(_Lazy):
    """A hit's whole and partial matches, strongest first (ties by term)."""

    def __init__(
        self,
        vocab: Vocabulary,
        words: TextWords,
        claims: _Claims,
        q: np.ndarray,
        d: np.ndarray,
        contribution: np.ndarray,
    ) -> None:
        owner = claims.owner
        claimed = np.flatnonzero(owner >= 0)
        total = np.bincount(owner[claimed], weights=contribution[claimed])
        # the strongest id each word claims: the first of its group by descending contribution
        strongest = claimed[np.lexsort((-contribution[claimed], owner[claimed]))]
        first = np.ones(strongest.size, dtype=bool)
        first[1:] = owner[strongest[1:]] != owner[strongest[:-1]]
        strongest = strongest[first]
        ws = owner[strongest]
        self._rows = list(
            zip(
                ws.tolist(),
                q[strongest].tolist(),
                d[strongest].tolist(),
                total[ws].tolist(),
                claims.whole[ws].tolist(),
                strict=True,
            )
        )
        surfaces = words.surfaces
        self._rows.sort(key=lambda row: (-row[3], surfaces[row[0]]))
        super().__init__(len(self._rows))
        self._words, self._claims = words, claims
        self._own: list[bool] | None = None

    def _build(self, start: int, stop: int) -> list[TermMatch]:
        return [self._match(i) for i in range(start, stop)]

    def _match(self, i: int) -> TermMatch:
        if self._own is None:
            self._own = self._claims.owned.tolist()
        w, query_weight, document_weight, contribution, whole = self._rows[i]
        pieces = self._claims.pieces
        lo, hi = pieces.bounds[w], pieces.bounds[w + 1]
        names, owned = pieces.names[lo:hi], self._own[lo:hi]
        words = self._words
        return TermMatch(
            term=words.surfaces[w],
            query_weight=query_weight,
            document_weight=document_weight,
            contribution=contribution,
            spans=list(words.spans[w]) if whole else _piece_spans(words, w, names, owned),
            literal=True,
            function_word=words.function[w],
            pieces=names,
            kind="whole" if whole else "partial",
            matched_pieces=list(dict.fromkeys(n for n, m in zip(names, owned, strict=True) if m)),
        )


class _ExpansionMatches(_Lazy):
    """A hit's expansion matches, largest contribution first (ties by id)."""

    def __init__(
        self,
        vocab: Vocabulary,
        ids: np.ndarray,
        q: np.ndarray,
        d: np.ndarray,
        contribution: np.ndarray,
    ) -> None:
        super().__init__(int(ids.size))
        self._vocab = vocab
        self._ids, self._q, self._d, self._c = ids, q, d, contribution
        self._order = np.zeros(0, dtype=np.int64)  # a prefix of the order, or all of it

    def _build(self, start: int, stop: int) -> list[TermMatch]:
        if self._order.size < stop:  # the strongest 64 first: no full sort of a dense vector
            self._order = _strongest_order(self._c, 64 if stop <= 64 else None)
        at = self._order[start:stop]
        rows = zip(
            self._vocab.terms(self._ids[at]),
            self._q[at].tolist(),
            self._d[at].tolist(),
            self._c[at].tolist(),
            strict=True,
        )
        return [_expansion(*row) for row in rows]


def _strongest_order(values: np.ndarray, k: int | None) -> np.ndarray:
    """Positions of `values`, largest first (ties in position order): the first `k` of
    them (or more where ties reach past `k`), or all for None."""
    if k is None or k >= values.size:
        return np.argsort(-values, kind="stable")
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    threshold = np.partition(values, values.size - k)[values.size - k]
    top = np.flatnonzero(values >= threshold)
    return top[np.argsort(-values[top], kind="stable")]


def _expansion(
    name: str, query_weight: float, document_weight: float, contribution: float
) -> TermMatch:
    return TermMatch(
        term=name,
        query_weight=query_weight,
        document_weight=document_weight,
        contribution=contribution,
        spans=[],
        literal=False,
        function_word=_term_is_function_word(name),
        pieces=[name],
        kind="expansion",
        matched_pieces=[name],
    )


def explain_query(
    vocab: Vocabulary, text: str, vector: SparseVector, top_k: int | None = 20
) -> list[QueryTerm]:
    """The query's strongest terms, in the word-level view of `explain_match`.

    The query's own MeCab words come with their pieces merged (weight = their strongest
    piece's, words none of whose pieces the vector weights are left out); the vector's
    other ids are expansion terms (`expansion` True). Strongest first, the query's own
    words before expansions of the same weight; at most `top_k` (None: all).
    """
    words = text_words(text, vocab.normalizes_text)
    pieces = _pieces(vocab, words)
    indices, values = vector.indices, vector.values.astype(np.float64)
    # each word's weight: its strongest piece's (0 where the vector weights none of them)
    flat, bounds = pieces.flat, pieces.bounds
    where = np.minimum(np.searchsorted(indices, flat), max(indices.size - 1, 0))
    found = indices[where] == flat if indices.size else np.zeros(flat.size, dtype=bool)
    flat_weight = np.where(found, values[where] if indices.size else 0.0, 0.0)
    weights = flat_weight.tolist()
    word_weight = [max(weights[a:b], default=0.0) for a, b in itertools.pairwise(bounds)]
    ranked: list[tuple[float, int, QueryTerm]] = [
        (
            -weight,
            w,
            QueryTerm(
                term=surface,
                weight=weight,
                expansion=False,
                function_word=words.function[w],
                pieces=pieces.names[bounds[w] : bounds[w + 1]],
                spans=list(words.spans[w]),
            ),
        )
        for w, (surface, weight) in enumerate(zip(words.surfaces, word_weight, strict=True))
        if weight > 0
    ]
    rest = np.delete(np.arange(indices.size), where[found])  # ids none of its words has
    rest = rest[_strongest_order(values[rest], top_k)]
    for n, (name, weight) in enumerate(
        zip(vocab.terms(indices[rest]), values[rest].tolist(), strict=True)
    ):
        term = QueryTerm(
            term=name,
            weight=weight,
            expansion=True,
            function_word=_term_is_function_word(name),
            pieces=[name],
        )
        ranked.append((-weight, len(words.surfaces) + n, term))
    ranked.sort(key=lambda x: (x[0], x[1]))
    return [t for _, _, t in ranked[:top_k]]
