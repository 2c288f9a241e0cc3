"""A faster `BertJapaneseTokenizer` (MeCab + WordPiece) that gives the same token ids.

`BertJapaneseTokenizer` walks MeCab's nodes one Python object at a time and runs WordPiece
as a Python loop over substrings. This path asks MeCab for the whole text's word split in
one C call (`-Owakati`: the surfaces joined by spaces), then runs WordPiece over those words
with the same vocabulary in the Rust `tokenizers` library (`is_pretokenized=True`, no
normaliser, no pre-tokeniser). Everything `BertJapaneseTokenizer` does around that is kept:

- the special tokens (`[SEP]` written in a text, as in JSQuAD's `title [SEP] text`) are cut
  out before MeCab, as `PreTrainedTokenizer.tokenize` does, longest match first;
- NFKC normalisation when the tokenizer's `normalize_text` is on (the default);
- lower-casing when `do_lower_case` is on, except for words in `never_split` and the
  special tokens;
- WordPiece splits each word on whitespace first (`whitespace_tokenize`): splitting the
  space-joined MeCab output on whitespace does exactly that;
- `[CLS] ... [SEP]` around the ids, truncated to `max_length` as `truncation=True` does.

Only the kind the Japanese SPLADE models use is taken: MeCab on unidic-lite without extra
MeCab options, WordPiece subwords, no added tokens beyond the special ones and no
single-word added tokens. `fast_tokenizer_for` says in the log which path a tokenizer gets
and, when it is not this one, why. The tests compare ids with `BertJapaneseTokenizer`
id for id (JSQuAD paragraphs, lower-casing and `never_split` on).

Example:
    >>> fast = fast_tokenizer_for(tokenizer)  # doctest: +SKIP
    >>> fast.encode(["車の燃費"], max_length=64)[0]  # doctest: +SKIP
    array([   2, 1234,   56, 7890,    3], dtype=int32)
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag_splade.text.mecab import mecab_readable

logger = logging.getLogger(__name__)


# a token of `FastJapaneseTokenizer.tokens`: (id, start, stop, special); offsets may be None
Token = tuple[int, int | None, int | None, bool]


class UnsupportedTokenizer(ValueError):
    """The tokenizer is not the MeCab/unidic-lite + WordPiece kind this path reproduces."""


def check_supported(tokenizer: Any) -> None:
    """Raise `UnsupportedTokenizer` naming the first setting this path does not reproduce."""
    kind = type(tokenizer).__name__
    if kind != "BertJapaneseTokenizer":
        raise UnsupportedTokenizer(f"the tokenizer is {kind}, not BertJapaneseTokenizer")
    word = getattr(tokenizer, "word_tokenizer_type", None)
    subword = getattr(tokenizer, "subword_tokenizer_type", None)
    if not getattr(tokenizer, "do_word_tokenize", False) or word != "mecab":
        raise UnsupportedTokenizer(f"its word tokenizer is {word!r}, not MeCab")
    if not getattr(tokenizer, "do_subword_tokenize", False) or subword != "wordpiece":
        raise UnsupportedTokenizer(f"its subword tokenizer is {subword!r}, not WordPiece")
    mecab = dict(getattr(tokenizer, "mecab_kwargs", None) or {})
    if mecab.get("mecab_dic", "unidic_lite") != "unidic_lite" or mecab.get("mecab_option"):
        raise UnsupportedTokenizer(f"its MeCab settings {mecab} are not plain unidic-lite")
    if getattr(tokenizer, "split_special_tokens", False):
        raise UnsupportedTokenizer("it has split_special_tokens=True")
    specials = set(tokenizer.all_special_tokens)
    for token_id, added in tokenizer.added_tokens_decoder.items():
        if str(added) not in specials:
            raise UnsupportedTokenizer(f"it has an added token {str(added)!r} (id {token_id})")
        if getattr(added, "single_word", False):
            raise UnsupportedTokenizer(f"its token {str(added)!r} is single_word")
        if tokenizer.vocab.get(str(added)) != token_id:
            raise UnsupportedTokenizer(f"its token {str(added)!r} has an id outside the vocab")


_local = threading.local()


def wakati_tagger() -> Any:
    """A MeCab tagger on unidic-lite that prints the word split (`-Owakati`), one per thread
    (MeCab taggers are not thread-safe), shared by every fast tokenizer of that thread."""
    tagger = getattr(_local, "tagger", None)
    if tagger is None:
        import fugashi
        import unidic_lite

        dicdir = unidic_lite.DICDIR
        tagger = fugashi.GenericTagger(f'-d "{dicdir}" -r "{dicdir}/mecabrc" -Owakati')
        _local.tagger = tagger
    return tagger


class FastJapaneseTokenizer:
    """Token ids of `BertJapaneseTokenizer` (MeCab/unidic-lite + WordPiece), computed faster.

    Build it with `fast_tokenizer_for` (which checks the tokenizer's kind). It pickles (the
    MeCab tagger and the Rust tokenizer are rebuilt), so tokenizer worker processes can use it.
    """

    def __init__(self, tokenizer: Any) -> None:
        check_supported(tokenizer)
        self.vocab: dict[str, int] = dict(tokenizer.vocab)
        self.unk_token = str(tokenizer.unk_token)
        self.cls_token_id = int(tokenizer.cls_token_id)
        self.sep_token_id = int(tokenizer.sep_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.max_input_chars_per_word = int(
            getattr(tokenizer.subword_tokenizer, "max_input_chars_per_word", 100)
        )
        word_tokenizer = tokenizer.word_tokenizer
        self.normalize_text = bool(word_tokenizer.normalize_text)
        self.do_lower_case = bool(word_tokenizer.do_lower_case)
        self.specials: dict[str, int] = {
            str(t): self.vocab[str(t)] for t in tokenizer.added_tokens_decoder.values()
        }
        # what MecabTokenizer keeps un-lowered: its never_split plus the special tokens
        self.never_split = frozenset(word_tokenizer.never_split or ()) | frozenset(
            tokenizer.all_special_tokens
        )
        self._build()

    def _build(self) -> None:
        from tokenizers import Tokenizer
        from tokenizers.models import WordPiece

        wakati_tagger()  # fugashi and unidic-lite load now, not on the first text
        self._wordpiece = Tokenizer(
            WordPiece(
                self.vocab,
                unk_token=self.unk_token,
                max_input_chars_per_word=self.max_input_chars_per_word,
            )
        )
        # longest first, so that the leftmost match is the longest (the tokens trie's rule)
        names = sorted(self.specials, key=len, reverse=True)
        self._special_re = (
            re.compile("(" + "|".join(map(re.escape, names)) + ")") if names else None
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_wordpiece", "_special_re"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build()

    def words(self, text: str) -> list[object]:
        """The WordPiece input of `text`: MeCab words (lists of str) and special-token ids,
        in order."""
        parts: list[str] = self._special_re.split(text) if self._special_re else [text]
        out: list[object] = []
        for i, part in enumerate(parts):
            if i % 2:  # re.split puts the matched separators at odd positions
                out.append(self.specials[part])
            elif part:
                out.append(self._mecab_words(part))
        return out

    def _mecab_words(self, text: str) -> list[str]:
        if self.normalize_text:
            text = unicodedata.normalize("NFKC", text)
        words: list[str] = wakati_tagger().parse(mecab_readable(text)).split()
        if self.do_lower_case:
            never = self.never_split
            words = [w if w in never else w.lower() for w in words]
        return words

    def encode(self, texts: Sequence[str], max_length: int | None = None) -> list[np.ndarray]:
        """`[CLS] ids [SEP]` of each text as int32 rows, truncated to `max_length` tokens."""
        split = [self.words(text) for text in texts]
        word_lists = [p for parts in split for p in parts if isinstance(p, list) and p]
        encoded = iter(
            self._wordpiece.encode_batch_fast(
                word_lists, is_pretokenized=True, add_special_tokens=False
            )
            if word_lists
            else []
        )
        rows = []
        keep = None if max_length is None else max(0, max_length - 2)
        for parts in split:
            ids: list[int] = []
            for part in parts:
                if isinstance(part, int):
                    ids.append(part)
                elif part:
                    ids += next(encoded).ids
            if keep is not None:
                del ids[keep:]
            rows.append(np.array([self.cls_token_id, *ids, self.sep_token_id], dtype=np.int32))
        return rows

    def tokens(self, text: str) -> list[Token]:
        """Each token of `text` (no `[CLS]`/`[SEP]` around it) with where it is in `text`:
        `(id, start, stop, special)`, character offsets into the original text, None where a
        token cannot be placed (a word NFKC or lower-casing changed beyond a 1:1 map).
        The ids are `encode`'s."""
        out: list[Token] = []
        at = 0
        matches = list(self._special_re.finditer(text)) if self._special_re else []
        for m in [*matches, None]:
            end = m.start() if m is not None else len(text)
            if end > at:
                out += self._segment_tokens(text[at:end], at)
            if m is not None:
                out.append((self.specials[m.group()], m.start(), m.end(), True))
                at = m.end()
        return out

    def _segment_tokens(self, segment: str, offset: int) -> list[Token]:
        from rag_splade.text.mecab import normalize_with_offsets

        if self.normalize_text:
            seen, sources = normalize_with_offsets(segment)
        else:
            seen, sources = segment, list(range(len(segment)))
        # a character's source ends where the next source character starts
        ends, next_start = [0] * len(sources), len(segment)
        for k in range(len(sources) - 1, -1, -1):
            if k + 1 < len(sources) and sources[k + 1] != sources[k]:
                next_start = sources[k + 1]
            ends[k] = next_start
        surfaces: list[str] = wakati_tagger().parse(mecab_readable(seen)).split()
        never = self.never_split
        words = [w.lower() if self.do_lower_case and w not in never else w for w in surfaces]
        if not words:
            return []
        encodings = self._wordpiece.encode_batch(
            [[w] for w in words], is_pretokenized=True, add_special_tokens=False
        )
        out: list[Token] = []
        cursor = 0
        for surface, word, encoding in zip(surfaces, words, encodings, strict=True):
            found = seen.find(surface, cursor)
            if found >= 0:
                cursor = found + len(surface)
            exact = found >= 0 and len(word) == len(surface)
            for token_id, (a, b) in zip(encoding.ids, encoding.offsets, strict=True):
                if not exact:
                    a, b = 0, len(surface)
                if found < 0 or b <= a:
                    out.append((int(token_id), None, None, False))
                    continue
                start, stop = sources[found + a], ends[found + b - 1]
                out.append((int(token_id), offset + start, offset + stop, False))
        return out

    def count_tokens(self, text: str) -> int:
        """Tokens of `text`, special tokens around it excluded, not truncated."""
        return int(self.encode([text])[0].size) - 2

    def __call__(self, texts: Sequence[str], max_length: int | None = None) -> list[np.ndarray]:
        return self.encode(texts, max_length)


def fast_tokenizer_for(tokenizer: Any, *, name: str = "the model") -> FastJapaneseTokenizer | None:
    """The fast path for `tokenizer` when it is the MeCab/unidic-lite + WordPiece
    `BertJapaneseTokenizer`, else None; either way one log line says which path runs."""
    try:
        fast = FastJapaneseTokenizer(tokenizer)
    except UnsupportedTokenizer as e:
        logger.info(
            "tokenizer of %s: %s, so the fast MeCab + Rust WordPiece path is off; "
            "tokenizing with %s itself",
            name,
            e,
            type(tokenizer).__name__,
        )
        return None
    except ImportError as e:  # the `tokenizers` wheel comes with transformers; fugashi too
        logger.warning(
            "tokenizer of %s: the fast path needs %s; tokenizing with BertJapaneseTokenizer",
            name,
            e.name,
        )
        return None
    logger.info(
        "tokenizer of %s: BertJapaneseTokenizer (MeCab/unidic-lite + WordPiece) runs on the "
        "fast path (one MeCab call per text, WordPiece in Rust; same ids)",
        name,
    )
    return fast
