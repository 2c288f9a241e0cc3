"""Tiny Japanese models built offline, for tests, the offline demo and speed benchmarks.

They use the real tokenizer class of the Japanese SPLADE models (`BertJapaneseTokenizer`:
MeCab via fugashi + unidic-lite, then WordPiece) with a vocabulary learned from the
bundled JSQuAD sample, and small `BertForMaskedLM` / `BertModel` networks:

- ``build_splade_model(path, lexical=False)``: random weights. Good for checking maths
  and plumbing; its rankings are random and its vectors dense.
- ``build_splade_model(path, lexical=True)``: the MLM decoder is tied to the input
  embeddings and the encoder layers are zeroed, so each token activates mostly itself:
  sparse vectors and meaningful lexical rankings, without training.
- ``build_dense_model(path, lexical=...)``: the same two flavours as a mean-pooled
  sentence-transformers model.
"""

from __future__ import annotations

import collections
import unicodedata
from pathlib import Path
from typing import Any

from rag_splade.sample import sample_texts

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_vocab(texts: list[str], max_words: int = 1500, size: int | None = None) -> list[str]:
    """A WordPiece vocab: special tokens, frequent MeCab words, every character and its ## piece."""
    from rag_splade.text.mecab import tagger as mecab_tagger

    tagger = mecab_tagger()
    words: collections.Counter[str] = collections.Counter()
    chars: set[str] = set()
    for text in texts:
        text = unicodedata.normalize("NFKC", text)
        chars.update(ch for ch in text if not ch.isspace())
        words.update(node.surface for node in tagger(text) if len(node.surface) > 1)
    vocab = list(SPECIAL_TOKENS)
    vocab += sorted(chars)
    vocab += ["##" + ch for ch in sorted(chars)]
    vocab += [w for w, _ in words.most_common(max_words)]
    vocab = list(dict.fromkeys(vocab))
    if size is not None:  # pad to a real model's size (32,768 for japanese-splade-v2)
        vocab += [f"[unused{i}]" for i in range(size - len(vocab))]
    return vocab


def build_tokenizer(
    path: str | Path,
    texts: list[str] | None = None,
    max_words: int = 1500,
    vocab_size: int | None = None,
):
    """Save a `BertJapaneseTokenizer` (MeCab/unidic-lite + WordPiece) under `path`."""
    from transformers import BertJapaneseTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab_file = path / "vocab.txt"
    vocab = build_vocab(texts or sample_texts(), max_words, vocab_size)
    vocab_file.write_text("\n".join(vocab) + "\n")
    tokenizer = BertJapaneseTokenizer(
        str(vocab_file),
        word_tokenizer_type="mecab",
        subword_tokenizer_type="wordpiece",
        mecab_kwargs={"mecab_dic": "unidic_lite"},
        model_max_length=512,
    )
    tokenizer.save_pretrained(str(path))
    return tokenizer


def _bert_config(vocab_size: int, hidden: int, layers: int, heads: int):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=512,
    )


def _special_ids(tokenizer: Any) -> list[int]:
    ids = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS)
    return [ids] if isinstance(ids, int) else list(ids)


def _make_lexical(model, embeddings, special_ids: list[int]) -> None:
    """Zero what mixes tokens so that each token's output is its own (normalised) embedding."""
    import torch

    with torch.no_grad():
        # Unit-variance embeddings: with BERT's 0.02 init, self-similarity would drown in the bias.
        weight = embeddings.word_embeddings.weight
        weight.normal_(0.0, 1.0)
        # Equal norms: no "hub" token that every other token activates.
        weight.mul_(weight.shape[1] ** 0.5 / weight.norm(dim=1, keepdim=True))
        # [CLS]/[SEP] sit in every sequence: a zero embedding keeps them from activating terms.
        weight[special_ids] = 0.0
        # Small position noise: a token's weight varies a little with where it occurs, as in a
        # trained model, so that different passages rarely tie on exactly the same score.
        embeddings.position_embeddings.weight.normal_(0.0, 0.1)
        embeddings.token_type_embeddings.weight.zero_()
        for layer in model.base_model.encoder.layer:
            for param in layer.parameters():
                param.zero_()
            # Keep the LayerNorms as identity-like so the residual path survives.
            layer.attention.output.LayerNorm.weight.fill_(1.0)
            layer.output.LayerNorm.weight.fill_(1.0)


def build_splade_model(
    path: str | Path,
    *,
    lexical: bool = False,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
    tokenizer_dir: str | Path | None = None,
    vocab_size: int | None = None,
) -> Path:
    """Save a `BertForMaskedLM` + Japanese tokenizer under `path` and return it: tiny by
    default; `hidden=768, layers=12, heads=12, vocab_size=32768` is BERT-base-shaped,
    like japanese-splade-v2, for speed measurements (speed does not depend on weights)."""
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    path = Path(path)
    if tokenizer_dir is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        tokenizer.save_pretrained(str(path))
    else:
        tokenizer = build_tokenizer(path, vocab_size=vocab_size)
    torch.manual_seed(seed)
    model = BertForMaskedLM(_bert_config(len(tokenizer), hidden, layers, heads)).eval()
    if lexical:
        special_ids = _special_ids(tokenizer)
        _make_lexical(model, model.bert.embeddings, special_ids)
        with torch.no_grad():
            head = model.cls.predictions
            # logits_j = <e_j, LN(gelu(2 LN(e_i)))> + bias: about 0.8 * hidden for j == i and
            # N(0, hidden) for j != i, so a -3.5 sigma bias leaves each token mostly itself.
            head.transform.dense.weight.copy_(torch.eye(hidden) * 2.0)
            head.transform.dense.bias.zero_()
            model.config.tie_word_embeddings = True
            head.decoder.weight = model.bert.embeddings.word_embeddings.weight
            bias = torch.full((len(tokenizer),), -3.5 * hidden**0.5)
            bias[special_ids] = -1e4  # special tokens never become terms
            head.bias.copy_(bias)
            head.decoder.bias = head.bias
    model.save_pretrained(str(path))
    return path


def build_dense_model(
    path: str | Path,
    *,
    lexical: bool = False,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    seed: int = 1,
    tokenizer_dir: str | Path | None = None,
) -> Path:
    """Save a tiny mean-pooled sentence-transformers model under `path` and return it."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertModel

    path = Path(path)
    backbone = path / "backbone"
    if tokenizer_dir is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        tokenizer.save_pretrained(str(backbone))
    else:
        tokenizer = build_tokenizer(backbone)
    torch.manual_seed(seed)
    bert = BertModel(_bert_config(len(tokenizer), hidden, layers, heads)).eval()
    if lexical:
        # Mean pooling over self-only outputs is a bag of words: cosine ranks by shared words.
        _make_lexical(bert, bert.embeddings, _special_ids(tokenizer))
    bert.save_pretrained(str(backbone))
    transformer = Transformer(str(backbone), max_seq_length=512)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(path))
    return path
