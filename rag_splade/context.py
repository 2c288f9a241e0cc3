"""Render hits as a block to paste into an LLM prompt: numbered passages to cite."""

from __future__ import annotations

from collections.abc import Sequence

from rag_splade.types import SearchHit

SOURCE_KEYS = ("title", "source", "url", "path")


def source_of(hit: SearchHit) -> str:
    """A short source label: the first of metadata title/source/url/path, else the doc id."""
    for key in SOURCE_KEYS:
        value = hit.metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return hit.doc_id


def format_context(hits: Sequence[SearchHit], *, key_terms: int = 6) -> str:
    """Numbered passages `[1] …` with their source and key matched terms (function words left
    out), in rank order, so an answer can cite `[n]`.

    Example:
        >>> print(format_context(hits))  # doctest: +SKIP
        [1] 出典: faq (faq-12#0) / 一致語: 燃費, 向上
        燃費を良くするには…
    """
    blocks = []
    for n, hit in enumerate(hits, start=1):
        header = f"[{n}] 出典: {source_of(hit)} ({hit.doc_id}#{hit.chunk_index})"
        if hit.explanation is not None:
            terms = [t.term for t in hit.explanation.key_terms(key_terms)]
            if terms:
                header += " / 一致語: " + ", ".join(terms)
        blocks.append(f"{header}\n{hit.text.strip()}")
    return "\n\n".join(blocks)
