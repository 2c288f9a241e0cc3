"""The BM25 reference run: `bm25s` over MeCab (unidic-lite) content words.

Tokens are the UniDic lemmas of content words (`lemma`, the default: 走った and 走る
match) or their surface forms (`surface`), NFKC-normalised and lower-cased. Function
words (particles, auxiliaries, symbols, blanks and the light verbs する・いる・ある・
なる・できる, as `rag_splade.text.mecab` flags them) are left out. BM25 runs with
bm25s' defaults (Lucene variant, k1 = 1.5, b = 0.75) on whole documents, no chunking.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence

from rag_splade.checks import check_choice
from rag_splade.text.mecab import segment

TOKENS = ("lemma", "surface")
EXTRAS_HINT = 'pip install "rag-splade[eval]"'


def tokenize(text: str, tokens: str = "lemma") -> list[str]:
    """MeCab content words of `text`, as lemmas or surface forms.

    Example:
        >>> tokenize("梅雨の季節に雨が降った。")
        ['梅雨', '季節', '雨', '降る']
    """
    check_choice("bm25 tokens", tokens, TOKENS)
    normalized = unicodedata.normalize("NFKC", text)
    out = []
    for word in segment(normalized):
        if word.function_word or not word.surface.strip():
            continue
        term = (
            word.lemma if tokens == "lemma" and word.lemma and word.lemma != "*" else word.surface
        )
        out.append(term.lower())
    return out


class BM25Retriever:
    """BM25 over a fixed corpus, returning `{doc_id: score}` per query.

    Example:
        >>> bm25 = BM25Retriever({"a": "梅雨は雨の季節。", "b": "石油は燃料。"})
        >>> list(bm25.search("梅雨とは", 10))
        ['a']
    """

    def __init__(self, corpus: dict[str, str], *, tokens: str = "lemma") -> None:
        try:
            import bm25s
        except ImportError as e:
            raise ImportError(f"the bm25 run needs bm25s: {EXTRAS_HINT}") from e
        if not corpus:
            raise ValueError("the BM25 corpus is empty")
        self.tokens = tokens
        self.ids = list(corpus)
        self._model = bm25s.BM25()
        chatty = logging.getLogger("bm25s")  # bm25s logs at DEBUG level by default
        level = chatty.level
        chatty.setLevel(logging.WARNING)
        try:
            self._model.index([tokenize(corpus[d], tokens) for d in self.ids], show_progress=False)
        finally:
            chatty.setLevel(level)
        self._vocab = set(self._model.vocab_dict)

    def search(self, query: str, k: int) -> dict[str, float]:
        """The top `k` documents with a positive score, best first."""
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[dict[str, float]]:
        """`search` for many queries."""
        k = min(k, len(self.ids))
        tokenized = [[t for t in tokenize(q, self.tokens) if t in self._vocab] for q in queries]
        results: list[dict[str, float]] = [{} for _ in queries]
        todo = [i for i, toks in enumerate(tokenized) if toks]  # no known word: no match
        if todo:
            docs, scores = self._model.retrieve(
                [tokenized[i] for i in todo], k=k, show_progress=False, n_threads=0
            )
            for row, i in enumerate(todo):
                results[i] = {
                    self.ids[int(d)]: float(s)
                    for d, s in zip(docs[row], scores[row], strict=True)
                    if s > 0
                }
        return results
