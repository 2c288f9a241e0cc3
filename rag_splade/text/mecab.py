"""MeCab (fugashi + unidic-lite) word segmentation with character offsets and parts of speech."""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# UniDic top-level parts of speech that carry no topic: particles, auxiliaries, symbols, blanks.
FUNCTION_POS = frozenset({"助詞", "助動詞", "補助記号", "記号", "空白"})
# texts whose words `text_words` keeps
TEXT_WORDS_CACHE = 1024
# Light verbs by UniDic lemma: する, いる, ある, なる, できる carry grammar, not topic.
LIGHT_VERBS = frozenset({"為る", "居る", "有る", "成る", "出来る"})


def is_function_pos(pos: str, lemma: str = "") -> bool:
    """Whether a UniDic part of speech (and lemma) marks a function word."""
    return pos in FUNCTION_POS or (pos == "動詞" and lemma in LIGHT_VERBS)


def _lemma(feature: tuple[str, ...]) -> str:
    return feature[7] if len(feature) > 7 else ""


_local = threading.local()


def mecab_readable(text: str) -> str:
    """`text` as MeCab can read all of it: MeCab takes a C string and stops at the first NUL,
    which would drop the rest of the text from the tokens, the vector and the explanation,
    so a NUL reads as a space. The length is kept, so offsets still point into `text`."""
    return text.replace("\x00", " ")


@dataclass(frozen=True)
class Word:
    """A MeCab word: its surface, `[start, end)` character offsets and UniDic part of speech."""

    surface: str
    start: int
    end: int
    pos: str
    lemma: str = ""

    @property
    def function_word(self) -> bool:
        return is_function_pos(self.pos, self.lemma)


def tagger() -> Any:
    """A fugashi tagger on unidic-lite, one per thread (MeCab taggers are not thread-safe)."""
    if getattr(_local, "tagger", None) is None:
        try:
            import fugashi
            import unidic_lite
        except ImportError as e:  # pragma: no cover - both are core dependencies
            raise ImportError(
                "Japanese segmentation needs fugashi and unidic-lite: "
                "pip install fugashi unidic-lite"
            ) from e
        dicdir = Path(unidic_lite.DICDIR)
        _local.tagger = fugashi.GenericTagger(f'-d "{dicdir}" -r "{dicdir / "mecabrc"}"')
    return _local.tagger


def segment(text: str) -> list[Word]:
    """Split `text` into MeCab words whose offsets point into `text` itself."""
    words: list[Word] = []
    cursor = 0
    for node in tagger()(mecab_readable(text)):
        surface = node.surface
        start = text.find(surface, cursor)
        if start < 0:  # MeCab never rewrites the surface, so this means a bug upstream
            raise RuntimeError(f"MeCab word {surface!r} not found in the text after {cursor}")
        words.append(
            Word(surface, start, start + len(surface), node.feature[0], _lemma(node.feature))
        )
        cursor = start + len(surface)
    return words


def word_spans(text: str) -> list[tuple[str, int, int, bool]]:
    """`(surface, start, end, function_word)` for each MeCab word of `text`: what `segment`
    gives, without the lemma and the `Word` objects (explanations run this on every hit)."""
    out: list[tuple[str, int, int, bool]] = []
    cursor = 0
    find = text.find
    for node in tagger()(mecab_readable(text)):
        surface = node.surface
        start = find(surface, cursor)
        if start < 0:  # as in `segment`
            raise RuntimeError(f"MeCab word {surface!r} not found in the text after {cursor}")
        cursor = start + len(surface)
        raw = node.feature_raw
        pos = raw.partition(",")[0]
        if pos == "動詞":  # verbs only need the lemma (light verbs); their features hold no quotes
            fields = raw.split(",")
            function = is_function_pos(pos, fields[7] if len(fields) > 7 else "")
        else:
            function = pos in FUNCTION_POS
        out.append((surface, start, cursor, function))
    return out


def is_function_term(term: str) -> bool:
    """Whether a lone term (an expansion term, with no context) is a function word."""
    nodes = list(tagger()(mecab_readable(term)))
    return len(nodes) == 1 and is_function_pos(nodes[0].feature[0], _lemma(nodes[0].feature))


def normalize_with_offsets(text: str) -> tuple[str, list[int]]:
    """NFKC-normalise `text`, with the source offset of every output character.

    Each character is normalised together with the combining marks that follow it
    (so half-width ｶﾞ becomes ガ as whole-string NFKC does), which keeps a map back to
    the original text so that spans can point into it.
    """
    out: list[str] = []
    offsets: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and _is_combining(text[j]):
            j += 1
        norm = unicodedata.normalize("NFKC", text[i:j])
        out.append(norm)
        offsets.extend([i] * len(norm))
        i = j
    return "".join(out), offsets


def _is_combining(ch: str) -> bool:
    return not ch.isascii() and all(
        unicodedata.combining(c) for c in unicodedata.normalize("NFKC", ch)
    )


@dataclass(frozen=True)
class TextWords:
    """The distinct MeCab words of a text (first occurrence order), where they occur in the
    text a tokenizer sees (NFKC-normalised or not), and how to map those offsets back to
    the original text; `spans` are each word's occurrences in the original text. A span
    covers whole source characters: a word that starts or ends inside a character that
    normalisation expands (℃ reads °C) gets all of it."""

    surfaces: list[str]
    occurrences: list[list[int]]  # start of each occurrence, in the tokenizer's text
    function: list[bool]  # every occurrence is a function word
    source_start: np.ndarray  # tokenizer's character -> start of its source character(s)
    source_end: np.ndarray  # tokenizer's character -> end of its source character(s)
    aligned: np.ndarray  # a span may start/end here: [k] is True at a source boundary
    spans: list[list[tuple[int, int]]]  # each occurrence of each word, in the original text
    # what a user derives from these words and keeps with them (explanations: WordPiece ids)
    derived: dict[str, Any] = field(default_factory=dict)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """`[start, end)` of the tokenizer's text as offsets into the original text."""
        return int(self.source_start[start]), int(self.source_end[end - 1])


@lru_cache(maxsize=TEXT_WORDS_CACHE)
def text_words(text: str, normalize: bool) -> TextWords:
    """The words of `text` as a tokenizer that NFKC-normalises (`normalize`) or not sees
    them, cached for the last `TEXT_WORDS_CACHE` texts (search hits recur across queries)."""
    if normalize:
        seen, offsets = normalize_with_offsets(text)
        start = np.asarray(offsets, dtype=np.int32)
    else:
        seen, start = text, np.arange(len(text), dtype=np.int32)
    # a character's source ends where the next source character starts
    change = np.flatnonzero(np.diff(start)) + 1 if start.size else start
    next_start = np.append(start[change], len(text))
    end = next_start[np.searchsorted(change, np.arange(start.size), side="right")]
    aligned = np.ones(start.size + 1, dtype=bool)
    aligned[1:-1] = start[1:] != start[:-1]
    index: dict[str, int] = {}
    surfaces: list[str] = []
    occurrences: list[list[int]] = []
    function: list[bool] = []
    for surface, a, _, is_function in word_spans(seen):
        w = index.setdefault(surface, len(surfaces))
        if w == len(surfaces):
            surfaces.append(surface)
            occurrences.append([])
            function.append(True)
        occurrences[w].append(a)
        function[w] = function[w] and is_function
    words = TextWords(surfaces, occurrences, function, start, end, aligned, [])
    for surface, starts in zip(surfaces, occurrences, strict=True):
        words.spans.append([words.span(a, a + len(surface)) for a in starts])
    return words
