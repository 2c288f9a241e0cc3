"""HTML views of hits and query terms, for notebooks and any page that shows them.

`show(hits, query_terms)` returns a `View` that Jupyter displays inline (`_repr_html_`),
and a `SearchHit` displays itself the same way. The markup and its stylesheet
(`rag_splade/static/views.css`, inlined here and served to the service's `/ui` page) are
the ones the page builds from the REST answer, so a notebook and the page look alike:

- the passage with each literal match at its spans, in a ``<mark class="rs-match">``:
  ``rs-whole`` (solid underline, bold), ``rs-partial`` (dotted underline, hatched),
  function words lighter (``rs-function-word``); hovering or focusing one shows its query
  weight, document weight and contribution;
- the expansion terms as ``rs-expansion`` chips (a dashed box, italic, a ``+``): the
  passage never says them, so they have no spans;
- a bar whose segments are the terms' contributions and add up to the sparse score;
- the query's terms as a weight chart, expansions marked.

Every string from a passage, a term or metadata is HTML-escaped.

Example:
    >>> from rag_splade.views import show
    >>> show(hits, index.explain_query(query))  # doctest: +SKIP
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # duck-typed at run time: types.py imports this module for _repr_html_
    from rag_splade.types import QueryTerm, SearchHit, TermMatch

STYLESHEET = "views.css"
BAR_TERMS = 40  # terms drawn in a hit's bar and table; the rest are one "omitted" segment
EXPANSION_CHIPS = 12  # expansion terms listed under a passage


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The CSS of the views (the file the service serves as ``/ui/views.css``)."""
    return resources.files("rag_splade").joinpath("static", STYLESHEET).read_text("utf-8")


class View:
    """HTML that Jupyter displays inline; `str(view)` is the markup with its stylesheet."""

    def __init__(self, body: str) -> None:
        self.body = body

    def _repr_html_(self) -> str:
        return f'<div class="rs-view"><style>{stylesheet()}</style>{self.body}</div>'

    def __str__(self) -> str:
        return self._repr_html_()

    def __repr__(self) -> str:
        return f"View({len(self.body)} characters of HTML)"


def show(hits: Sequence[SearchHit] = (), query_terms: Sequence[QueryTerm] = ()) -> View:
    """The query's terms as a weight chart, then the hits in order, as one `View`.

    Args:
        hits: `SearchHit`s (explained ones get highlights and a contribution bar).
        query_terms: `index.explain_query(query)`'s terms.

    Raises:
        TypeError: for a single hit or a string instead of a sequence.
    """
    for name, value in (("hits", hits), ("query_terms", query_terms)):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise TypeError(
                f"show() takes a list for {name}, got {type(value).__name__}: "
                f"pass [{name[:-1]}] for a single one"
            )
    parts = [LEGEND]
    if query_terms:
        parts.append(query_terms_html(query_terms))
    if hits:
        parts.append(hits_html(hits))
    return View("".join(parts))


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


LEGEND = (
    '<ul class="rs-legend" aria-label="match kinds">'
    '<li><mark class="rs-match rs-whole">whole</mark> both texts say the word</li>'
    '<li><mark class="rs-match rs-partial">partial</mark> only some pieces are shared</li>'
    '<li><span class="rs-term rs-expansion">expansion</span> weighted, never said</li>'
    "</ul>"
)


def query_terms_html(terms: Sequence[QueryTerm]) -> str:
    """The query's terms, strongest first, as bars; expansions and function words marked."""
    strongest = max((t.weight for t in terms), default=0.0) or 1.0
    items = []
    for t in sorted(terms, key=lambda t: -t.weight):
        classes = "rs-qterm" + (" rs-expansion" if t.expansion else "")
        classes += " rs-function-word" if t.function_word else ""
        note = "expansion" if t.expansion else "query word"
        note += ", function word" if t.function_word else ""
        width = max(0.0, min(100.0, 100.0 * t.weight / strongest))
        items.append(
            f'<li class="{classes}" data-term="{_e(t.term)}" data-weight="{t.weight!r}">'
            f'<span class="rs-qterm-label" title="{_e(" ".join(t.pieces))}">{_e(t.term)}</span>'
            f'<span class="rs-sr"> ({note})</span>'
            f'<span class="rs-qterm-track"><span class="rs-qterm-fill" '
            f'style="width: {width:.2f}%"></span></span>'
            f'<span class="rs-qterm-value">{_num(t.weight)}</span></li>'
        )
    return f'<ul class="rs-qterms" aria-label="query terms">{"".join(items)}</ul>'


def bar_score(hit: SearchHit) -> float:
    """The sparse score a hit's bar stands for: its `sparse_score`, or, for a hit the sparse
    list did not return (found by dense only), the score its explanation computes."""
    if hit.sparse_score is not None:
        return hit.sparse_score
    return hit.explanation.sparse_score if hit.explanation is not None else 0.0


def hits_html(hits: Sequence[SearchHit]) -> str:
    """The hits as an ordered list, bars scaled to the strongest sparse score."""
    scale = max((bar_score(h) for h in hits), default=0.0) or 1.0
    items = [hit_html(h, rank, scale=scale) for rank, h in enumerate(hits, start=1)]
    return f'<ol class="rs-hits">{"".join(items)}</ol>'


def term_tip(term: TermMatch) -> str:
    """A term's numbers as the hover and focus view shows them."""
    kind = term.kind + (", function word" if term.function_word else "")
    return (
        f"{term.term} ({kind})\n"
        f"query {term.query_weight:.4f} × document {term.document_weight:.4f}"
        f" = {term.contribution:.4f}"
    )


def hit_html(hit: SearchHit, rank: int | None = None, *, scale: float | None = None) -> str:
    """One hit as an ``<li class="rs-hit">``: ranks and scores, the highlighted passage,
    its expansion terms, the contribution bar and a table of its terms.

    `scale`: the sparse score a full-width bar stands for (default: this hit's own)."""
    source = _source(hit)
    head = (
        '<div class="rs-hit-head">'
        + (f'<span class="rs-rank">#{rank}</span>' if rank is not None else "")
        + f'<span class="rs-source">{_e(source)}</span>'
        + f'<span class="rs-id">{_e(hit.doc_id)}#{hit.chunk_index}</span></div>'
    )
    scores = _scores_html(hit)
    explanation = hit.explanation
    if explanation is None:
        body = (
            f'<p class="rs-passage" lang="ja">{_e(hit.text)}</p>'
            '<p class="rs-note">no explanation (search with explain=True)</p>'
        )
    else:
        terms = explanation.terms
        body = (
            passage_html(hit.text, terms)
            + _expansions_html(terms)
            + _bar_html(terms, bar_score(hit), scale, in_list=hit.sparse_score is not None)
            + _table_html(terms)
        )
    return (
        f'<li class="rs-hit" data-id="{_e(hit.id)}" data-doc-id="{_e(hit.doc_id)}">'
        f"{head}{scores}{body}</li>"
    )


def _source(hit: SearchHit) -> str:
    for key in ("title", "source", "url", "path"):  # as rag_splade.context.source_of
        value = hit.metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return hit.doc_id


def _scores_html(hit: SearchHit) -> str:
    legs = [
        ("fused", None, hit.score),
        ("sparse", hit.sparse_rank, hit.sparse_score),
        ("dense", hit.dense_rank, hit.dense_score),
        ("rerank", hit.rerank_rank, hit.rerank_score),
    ]
    items = []
    for leg, rank, score in legs:
        if leg != "fused" and rank is None and score is None:
            items.append(f'<li class="rs-score" data-leg="{leg}" data-absent>{leg} —</li>')
            continue
        shown = f"#{rank} · " if rank is not None else ""
        items.append(f'<li class="rs-score" data-leg="{leg}">{leg} {shown}{_num(score)}</li>')
    return f'<ul class="rs-scores" aria-label="ranks and scores">{"".join(items)}</ul>'


def passage_segments(
    text: str, terms: Sequence[TermMatch]
) -> list[tuple[int, int, list[tuple[int, int, int]]]]:
    """`text` cut at every span edge: (start, end, [(term index, span start, span end)])
    for each piece, the spans that cover it (none for plain text). Offsets are code points,
    as the spans are; a span out of range or empty is ignored."""
    spans = [
        (i, s, e)
        for i, t in enumerate(terms)
        if t.literal
        for s, e in t.spans
        if 0 <= s < e <= len(text)
    ]
    edges = sorted({0, len(text), *(s for _, s, _ in spans), *(e for _, _, e in spans)})
    return [
        (a, b, [sp for sp in spans if sp[1] <= a and b <= sp[2]])
        for a, b in itertools.pairwise(edges)
    ]


def passage_html(text: str, terms: Sequence[TermMatch]) -> str:
    """The passage with each literal match in a ``<mark>`` at its spans (where spans of two
    terms overlap, the piece they share is one mark that names both)."""
    parts = []
    for a, b, covering in passage_segments(text, terms):
        piece = _e(text[a:b])
        if not covering:
            parts.append(piece)
            continue
        matched = [terms[i] for i, _, _ in covering]
        kind = "whole" if any(t.kind == "whole" for t in matched) else "partial"
        classes = f"rs-match rs-tip rs-{kind}"
        if all(t.function_word for t in matched):
            classes += " rs-function-word"
        indexes = " ".join(str(i) for i, _, _ in covering)
        spans = " ".join(f"{i}:{s}:{e}" for i, s, e in covering)
        tip = "\n".join(term_tip(t) for t in matched)
        parts.append(
            f'<mark class="{classes}" tabindex="0" data-kind="{kind}" data-terms="{indexes}" '
            f'data-spans="{spans}" data-tip="{_e(tip)}" aria-label="{_e(tip)}">{piece}</mark>'
        )
    return f'<p class="rs-passage" lang="ja">{"".join(parts)}</p>'


def _expansions_html(terms: Sequence[TermMatch]) -> str:
    expansions = [(i, t) for i, t in enumerate(terms) if t.kind == "expansion"]
    if not expansions:
        return ""
    chips = []
    for i, t in expansions[:EXPANSION_CHIPS]:
        classes = "rs-term rs-tip rs-expansion" + (" rs-function-word" if t.function_word else "")
        tip = term_tip(t)
        chips.append(
            f'<li class="{classes}" tabindex="0" data-kind="expansion" data-terms="{i}" '
            f'data-tip="{_e(tip)}" aria-label="{_e(tip)}">{_e(t.term)}</li>'
        )
    more = len(expansions) - EXPANSION_CHIPS
    if more > 0:
        chips.append(f'<li class="rs-note">and {more} more</li>')
    return (
        '<div class="rs-expansions-label">expansion terms (not in the passage):</div>'
        f'<ul class="rs-expansions">{"".join(chips)}</ul>'
    )


def _bar_html(
    terms: Sequence[TermMatch], sparse_score: float, scale: float | None, *, in_list: bool
) -> str:
    """Segments for the strongest `BAR_TERMS` terms and one for the rest; their
    `data-contribution`s add up to the sparse score."""
    total = sum(t.contribution for t in terms) or 1.0
    full = scale or sparse_score or total
    segments = []
    for i, t in enumerate(terms[:BAR_TERMS]):
        classes = f"rs-seg rs-{t.kind}" + (" rs-function-word" if t.function_word else "")
        segments.append(
            f'<span class="{classes}" data-terms="{i}" data-kind="{t.kind}" '
            f'data-contribution="{t.contribution!r}" title="{_e(term_tip(t))}" '
            f'style="width: {100.0 * t.contribution / total:.3f}%"></span>'
        )
    rest = terms[BAR_TERMS:]
    if rest:
        omitted = sum(t.contribution for t in rest)
        segments.append(
            f'<span class="rs-seg rs-omitted" data-contribution="{omitted!r}" '
            f'title="{len(rest)} weaker terms: {omitted:.4f}" '
            f'style="width: {100.0 * omitted / total:.3f}%"></span>'
        )
    width = max(0.0, min(100.0, 100.0 * sparse_score / full))
    return (
        f'<div class="rs-bar" role="img" style="width: {width:.2f}%" '
        f'aria-label="term contributions, sum {sparse_score:.4f}">{"".join(segments)}</div>'
        f'<div class="rs-bar-caption">sparse score {sparse_score:.4f} = sum of '
        f"{len(terms)} term contributions"
        f"{'' if in_list else ' (not in the sparse list: found by dense)'}</div>"
    )


def _table_html(terms: Sequence[TermMatch]) -> str:
    rows = []
    for t in terms[:BAR_TERMS]:
        pieces = " ".join(t.matched_pieces)
        if t.kind == "partial":
            pieces += f" of {' '.join(t.pieces)}"
        rows.append(
            f"<tr><td>{_e(t.term)}</td><td>{t.kind}{' (function word)' if t.function_word else ''}"
            f'</td><td class="rs-num">{_num(t.query_weight)}</td>'
            f'<td class="rs-num">{_num(t.document_weight)}</td>'
            f'<td class="rs-num">{_num(t.contribution)}</td><td>{_e(pieces)}</td></tr>'
        )
    return (
        '<details class="rs-details"><summary>terms</summary><table class="rs-table">'
        "<thead><tr><th>term</th><th>kind</th><th>query</th><th>document</th>"
        "<th>contribution</th><th>pieces</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )
