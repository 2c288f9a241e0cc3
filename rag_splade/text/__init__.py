"""Japanese text handling: normalisation, MeCab words, sentences and token-bounded chunks."""

from rag_splade.text.chunking import Chunk, Chunker, split_sentences
from rag_splade.text.mecab import Word, normalize_with_offsets, segment

__all__ = ["Chunk", "Chunker", "Word", "normalize_with_offsets", "segment", "split_sentences"]
