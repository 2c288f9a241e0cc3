"""The text side of a SPLADE encoder: its tokenizer, vocabulary and token ids.

`SpladeEncoder` runs the model on a local device; `RemoteSpladeEncoder` sends the token
ids to an encoder server. Both tokenize here, in the calling process: explanations,
chunking and the ids sent to a server all read the same tokenizer, and a remote encoder
needs no weights, only the tokenizer files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag_splade.checks import check_choice, check_texts
from rag_splade.encoders.protocols import Side, Truncation
from rag_splade.encoders.tokenizer_pool import tokenize_in_process
from rag_splade.text.fast_tokenizer import fast_tokenizer_for
from rag_splade.text.mecab import mecab_readable

# distinct MeCab words whose WordPiece ids `word_piece_ids` keeps
WORD_PIECE_CACHE = 65536


class SpladeTokenizing:
    """Tokenizer-side members shared by the SPLADE encoders; a subclass calls
    `_set_tokenizer` and provides `vocab_size`."""

    model_name: str
    query_max_length: int
    document_max_length: int

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def _set_tokenizer(self, tokenizer: Any, fast: bool) -> None:
        self.tokenizer: Any = tokenizer
        # what turns texts into ids: the fast path when the tokenizer is its kind (same ids)
        self.fast_tokenizer = fast_tokenizer_for(tokenizer, name=self.model_name) if fast else None
        self._ids_tokenizer: Any = self.fast_tokenizer or tokenizer
        self._tokens: np.ndarray | None = None  # id -> token, built on first use
        self._word_pieces: dict[str, tuple[int, ...]] = {}  # word -> its WordPiece ids

    def check_id_rows(
        self, ids: Sequence[Sequence[int] | np.ndarray], side: Side
    ) -> list[np.ndarray]:
        """`ids` as int32 rows, each non-empty, at most `max_length(side)` long and inside
        the vocabulary.

        Raises:
            ValueError: naming the first row that is not.
        """
        check_choice("side", side, ("query", "document"))
        rows = [np.asarray(row, dtype=np.int64).reshape(-1) for row in ids]
        limit, vocab = self.max_length(side), self.vocab_size
        for i, row in enumerate(rows):
            if row.size == 0:
                raise ValueError(f"ids[{i}] is empty: a row holds at least one token id")
            if row.size > limit:
                raise ValueError(f"ids[{i}] has {row.size} tokens; a {side} holds at most {limit}")
            if row.min() < 0 or row.max() >= vocab:
                bad = int(row[(row < 0) | (row >= vocab)][0])
                raise ValueError(f"ids[{i}] holds {bad}, outside the vocabulary (0..{vocab - 1})")
        return [row.astype(np.int32) for row in rows]

    @property
    def special_tokens(self) -> int:
        """Tokens the tokenizer adds to every text ([CLS] and [SEP])."""
        return int(self.tokenizer.num_special_tokens_to_add(pair=False))

    def max_length(self, side: Side) -> int:
        """Tokens kept of a text of `side` (`query_max_length` or `document_max_length`),
        special tokens included."""
        return self.query_max_length if side == "query" else self.document_max_length

    def tokenize(
        self, texts: Sequence[str], side: Side, truncation: Truncation = "right"
    ) -> list[np.ndarray]:
        """The token ids the model reads for each text of `side` (`[CLS] ... [SEP]`, int32).

        `truncation`: "right" keeps the first `max_length(side)` tokens (what `encode_*`
        do), "left" the last ones, None keeps them all (a row may then be too long for
        `encode_ids`)."""
        texts = check_texts(texts, "texts")
        check_choice("side", side, ("query", "document"))
        limit = self.max_length(side)
        if truncation == "right":
            return tokenize_in_process(self._ids_tokenizer, texts, limit)
        if truncation not in ("left", None):
            raise ValueError(f'truncation must be "right", "left" or None, got {truncation!r}')
        rows = self._untruncated(texts)
        if truncation == "left":
            keep = max(0, limit - 2)  # room for [CLS] and [SEP]
            rows = [
                row
                if row.size <= limit
                else np.concatenate([row[:1], row[-1 - keep : -1], row[-1:]])
                for row in rows
            ]
        return rows

    def _untruncated(self, texts: list[str]) -> list[np.ndarray]:
        if self.fast_tokenizer is not None:
            return self.fast_tokenizer.encode(texts, None)
        ids = self.tokenizer(
            [mecab_readable(t) for t in texts],
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        return [np.asarray(row, dtype=np.int32) for row in ids]

    def token_spans(self, text: str) -> list[tuple[int, int | None, int | None, bool]]:
        """Each token of `text`, `[CLS]`/`[SEP]` excluded, as `(id, start, stop, special)`
        with character offsets into `text` (None where a token cannot be placed)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if self.fast_tokenizer is not None:
            return self.fast_tokenizer.tokens(text)
        tok = self.tokenizer
        specials = set(tok.all_special_ids)
        if getattr(tok, "is_fast", False):
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            return [
                (int(i), int(a), int(b), int(i) in specials)
                for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
            ]
        ids = tok(mecab_readable(text), add_special_tokens=False)["input_ids"]
        return [(int(i), None, None, int(i) in specials) for i in ids]

    def terms(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Vocabulary strings of token ids (ids the tokenizer does not know read as its
        unknown token), looked up in a table built once per encoder."""
        table = self._token_table()
        index = np.asarray(ids, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= table.size):
            bad = index[(index < 0) | (index >= table.size)][0]
            raise IndexError(f"token id {int(bad)} is outside the vocabulary (0..{table.size - 1})")
        names: list[str] = table[index].tolist()
        return names

    def _token_table(self) -> np.ndarray:
        """`id -> token` for the whole vocabulary (model rows the tokenizer lacks read as its
        unknown token), built the first time it is needed."""
        table = self._tokens
        if table is None:
            tok = self.tokenizer
            size = max(len(tok), self.vocab_size)
            known = tok.convert_ids_to_tokens(list(range(len(tok))))
            unknown = str(tok.unk_token)
            table = np.empty(size, dtype=object)
            table[:] = [unknown if t is None else str(t) for t in known] + [unknown] * (
                size - len(known)
            )
            self._tokens = table
        return table

    @property
    def normalizes_text(self) -> bool:
        """Whether the tokenizer NFKC-normalises text before splitting it (BertJapaneseTokenizer
        with MeCab does), so that explanations segment the text the same way."""
        word_tokenizer = getattr(self.tokenizer, "word_tokenizer", None)
        return bool(getattr(word_tokenizer, "normalize_text", False))

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text`, special tokens excluded (for chunking)."""
        if self.fast_tokenizer is not None:
            return self.fast_tokenizer.count_tokens(text)
        return len(self.tokenizer.tokenize(text))

    def word_piece_ids(self, word: str) -> list[int]:
        """Vocabulary ids the tokenizer gives one MeCab word (its WordPiece pieces), cached
        per encoder (the last `WORD_PIECE_CACHE` distinct words)."""
        cache = self._word_pieces
        ids = cache.get(word)
        if ids is None:
            ids = self._tokenize_word(word)
            if len(cache) >= WORD_PIECE_CACHE:
                # drop the oldest entry (dicts keep insertion order), unless a thread beat us
                with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                    del cache[next(iter(cache))]
            cache[word] = ids
        return list(ids)

    def _tokenize_word(self, word: str) -> tuple[int, ...]:
        tok = self.tokenizer
        subword = getattr(tok, "subword_tokenizer", None)
        if subword is not None and getattr(tok, "do_subword_tokenize", False):
            if getattr(tok, "do_lower_case", False):
                word = word.lower()
            pieces = subword.tokenize(word)
        else:
            pieces = tok.tokenize(word)
        return tuple(int(i) for i in tok.convert_tokens_to_ids(pieces))
