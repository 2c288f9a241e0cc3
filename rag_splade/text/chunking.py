"""Sentence splitting and token-bounded chunking for Japanese text, with source offsets."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from rag_splade.text.mecab import segment

SENTENCE_END = frozenset("。！？!?")
# Closing brackets and quotes stay with the sentence they close: 「…。」 is one sentence.
CLOSERS = frozenset("」』）)】〕〉》\"'”’")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document. `start`/`end` are character offsets into the source text;
    `text` is that slice (NFKC-normalised when the chunker normalises)."""

    index: int
    text: str
    start: int
    end: int
    token_count: int


def split_sentences(text: str) -> list[tuple[int, int]]:
    """`[start, end)` spans of the sentences of `text`: ends at 。！？!? (with any closing
    brackets after them) and at line breaks; surrounding whitespace is left out."""
    spans: list[tuple[int, int]] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in SENTENCE_END:
            i += 1
            while i < n and (text[i] in SENTENCE_END or text[i] in CLOSERS):
                i += 1
            spans.append((start, i))
            start = i
        elif ch in "\r\n":
            spans.append((start, i))
            i += 1
            start = i
        else:
            i += 1
    spans.append((start, n))
    return [s for s in (_strip(text, a, b) for a, b in spans) if s is not None]


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


class Chunker:
    """Packs whole sentences into chunks of at most `max_tokens` tokens.

    A sentence is only cut when it alone is over the limit, and then at a MeCab word
    boundary. Consecutive chunks share `overlap_sentences` sentences.

    Example:
        >>> chunker = Chunker(lambda s: len(s), max_tokens=10)
        >>> [c.text for c in chunker.split("短い文です。次の文です。")]
        ['短い文です。', '次の文です。']
    """

    def __init__(
        self,
        count_tokens: Callable[[str], int],
        max_tokens: int = 510,
        overlap_sentences: int = 0,
        normalize: bool = False,
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        if overlap_sentences < 0:
            raise ValueError(f"overlap_sentences must be >= 0, got {overlap_sentences}")
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.overlap_sentences = overlap_sentences
        self.normalize = normalize

    def split(self, text: str) -> list[Chunk]:
        """Chunk `text`; empty or whitespace-only text gives no chunks."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        units: list[tuple[int, int, int]] = []  # (start, end, tokens) of sentences or pieces
        for start, end in split_sentences(text):
            tokens = self._count(text[start:end])
            if tokens <= self.max_tokens:
                units.append((start, end, tokens))
            else:
                units.extend(self._cut_long(text, start, end))
        return self._pack(text, units)

    def _count(self, text: str) -> int:
        return self.count_tokens(unicodedata.normalize("NFKC", text) if self.normalize else text)

    def _pack(self, text: str, units: list[tuple[int, int, int]]) -> list[Chunk]:
        chunks: list[Chunk] = []
        i = 0
        while i < len(units):
            j, total = i, 0
            while j < len(units) and total + units[j][2] <= self.max_tokens:
                total += units[j][2]
                j += 1
            j = max(j, i + 1)
            # Token counts of parts need not add up exactly: check the real slice.
            while j > i + 1 and self._count(text[units[i][0] : units[j - 1][1]]) > self.max_tokens:
                j -= 1
            start, end = units[i][0], units[j - 1][1]
            piece = text[start:end]
            if self.normalize:
                piece = unicodedata.normalize("NFKC", piece)
            chunks.append(Chunk(len(chunks), piece, start, end, self._count(text[start:end])))
            if j >= len(units):
                break
            i = max(i + 1, j - self.overlap_sentences)
        return chunks

    def _cut_long(self, text: str, start: int, end: int) -> list[tuple[int, int, int]]:
        """Cut an over-long sentence at word boundaries into pieces within the limit."""
        bounds = sorted({start + w.end for w in segment(text[start:end])} | {end})
        pieces: list[tuple[int, int, int]] = []
        while start < end:
            # Largest end (a word boundary when one fits, else any character) within the limit.
            candidates = [b for b in bounds if b > start]
            best = self._largest_fitting(text, start, candidates)
            if best is None:
                best = self._largest_fitting(text, start, list(range(start + 1, end + 1)))
            if best is None:  # a single character over the limit: keep it whole
                best = start + 1
            pieces.append((start, best, self._count(text[start:best])))
            start = best
        return pieces

    def _largest_fitting(self, text: str, start: int, ends: list[int]) -> int | None:
        lo, hi, found = 0, len(ends) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self._count(text[start : ends[mid]]) <= self.max_tokens:
                found, lo = ends[mid], mid + 1
            else:
                hi = mid - 1
        return found
