"""Render hits for an LLM prompt: numbered passages to cite, and highlighted matches.

`format_context` writes one block per hit, in rank order::

    [1] 出典: 梅雨 (梅雨-0#0) / 一致語: 梅雨, 北海道 / 関連語: 気候
    梅雨（つゆ、ばいう）は、北海道と小笠原諸島を除く日本、…

    [2] 出典: faq (faq-12#0) / 一致語: 燃費
    燃費を良くするには、タイヤの空気圧を…
    ［3］ 出典: 偽物

- A block is a header line and the passage's non-empty lines; blocks are separated by
  exactly one empty line. Passage lines never start with ``[`` + digits + ``]``: only
  header lines do, so the next header is the only thing that ends a block.
- The header names the source (metadata title / source / url / path, else the doc id),
  the doc id and chunk index, then ``一致語`` (the words both the query and the passage
  say: whole literal matches, function words left out) and ``関連語`` (expansion terms:
  words the model related to both although the passage never says them), each only when
  there are some. Partial matches (a shared WordPiece piece of a longer word) are in
  neither.
- Passage text is untrusted: every line break (``\\r``, U+2028, …) becomes a line of its
  own, blank lines are dropped (a passage cannot end its block), and a line that starts
  (after blanks) with a bracketed number, ``[2]`` or ``［２］``, gets full-width brackets,
  ``［2］``, so it cannot pass for a header (the last line of block 2 above). Header
  fields are kept to one line, with full-width brackets around any bracketed number
  and `` ／ `` for a `` / `` of their own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from rag_splade.types import MATCH_KINDS, MatchKind, SearchHit

SOURCE_KEYS = ("title", "source", "url", "path")

# a line that reads like a citation header: blanks or invisible format characters (zero
# width space, BOM, direction marks), then a bracketed number ([2], ［２］)
_CITATION = re.compile(
    r"^([\s\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]*)"
    r"[\[［]\s*(\d+)\s*[\]］]"
)


_NUMBER = re.compile(r"[\[［]\s*(\d+)\s*[\]］]")


def source_of(hit: SearchHit) -> str:
    """A short source label: the first of metadata title/source/url/path, else the doc id."""
    for key in SOURCE_KEYS:
        value = hit.metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return hit.doc_id


def format_context(hits: Sequence[SearchHit], *, key_terms: int = 6, related_terms: int = 3) -> str:
    """Numbered passages with their source and matched terms, in rank order, so an answer
    can cite `[n]` (the format is described in this module's docstring).

    `key_terms` / `related_terms` cap the words listed as ``一致語`` / ``関連語`` (0 leaves
    that list out). Hits without an explanation get a header without terms.

    Example:
        >>> print(format_context(hits))  # doctest: +SKIP
        [1] 出典: faq (faq-12#0) / 一致語: 燃費, 向上 / 関連語: 車
        燃費を良くするには…
    """
    blocks = []
    for n, hit in enumerate(hits, start=1):
        source = _one_line(source_of(hit))
        header = f"[{n}] 出典: {source} ({_one_line(hit.doc_id)}#{hit.chunk_index})"
        if hit.explanation is not None:
            for label, terms in (
                ("一致語", hit.explanation.key_terms(key_terms)),
                ("関連語", hit.explanation.related_terms(related_terms)),
            ):
                if terms:
                    header += f" / {label}: " + ", ".join(_one_line(t.term) for t in terms)
        blocks.append("\n".join([header, *_passage_lines(hit.text)]))
    return "\n\n".join(blocks)


def _one_line(value: str) -> str:
    """A header field: one line, no bracketed number, no ` / ` separator of its own."""
    flat = " ".join(value.split()).replace(" / ", " ／ ")
    return _NUMBER.sub(lambda m: f"［{unicodedata.normalize('NFKC', m.group(1))}］", flat)


def _passage_lines(text: str) -> list[str]:
    """The non-empty lines of a passage, none of which can read as a citation header."""
    lines = []
    for line in text.splitlines():
        line = line.rstrip()
        if line.strip():
            lines.append(_CITATION.sub(_full_width, line, count=1))
    return lines


def _full_width(match: re.Match[str]) -> str:
    digits = unicodedata.normalize("NFKC", match.group(2))
    return f"{match.group(1)}［{digits}］"


def highlight(
    hit: SearchHit,
    open: str = "【",
    close: str = "】",
    kinds: Iterable[MatchKind] = ("whole",),
    *,
    function_words: bool = False,
) -> str:
    """`hit.text` with the spans of its matches of the given kinds wrapped in `open` and
    `close`; overlapping spans are merged into one, adjacent ones stay apart.

    `kinds` are among ``"whole"`` (words both texts say) and ``"partial"`` (only the
    characters of the shared pieces; see `TermMatch`); ``"expansion"`` is allowed but has
    no spans. Function words (particles, auxiliaries, symbols) are left unmarked unless
    `function_words` is True.

    Example:
        >>> highlight(hits[0])  # doctest: +SKIP
        '【燃費】を良くするには、【タイヤ】の空気圧を…'
        >>> highlight(hits[0], "<mark>", "</mark>", kinds=("whole", "partial"))  # doctest: +SKIP
        '<mark>燃費</mark>を良くするには、<mark>タイヤ</mark>の空気圧を…'
    """
    chosen = set(kinds) if not isinstance(kinds, str) else {kinds}
    for kind in chosen:
        if kind not in MATCH_KINDS:
            raise ValueError(f"highlight kinds must be among {MATCH_KINDS}, got {kind!r}")
    if hit.explanation is None:
        raise ValueError(
            f"hit {hit.id!r} has no explanation to highlight: search with explain=True"
        )
    spans = sorted(
        span
        for term in hit.explanation.literal_terms()
        if term.kind in chosen and (function_words or not term.function_word)
        for span in term.spans
    )
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    text, out, cursor = hit.text, [], 0
    for start, end in merged:
        out += [text[cursor:start], open, text[start:end], close]
        cursor = end
    out.append(text[cursor:])
    return "".join(out)
