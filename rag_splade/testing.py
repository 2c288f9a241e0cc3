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
import json
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
) -> Any:
    """Save a `BertJapaneseTokenizer` (MeCab/unidic-lite + WordPiece) under `path`."""
    from transformers import BertJapaneseTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab_file = path / "vocab.txt"
    vocab = build_vocab(texts or sample_texts(), max_words, vocab_size)
    vocab_file.write_text("\n".join(vocab) + "\n")
    tokenizer = BertJapaneseTokenizer(  # type: ignore[no-untyped-call]
        str(vocab_file),
        word_tokenizer_type="mecab",
        subword_tokenizer_type="wordpiece",
        mecab_kwargs={"mecab_dic": "unidic_lite"},
        model_max_length=512,
    )
    tokenizer.save_pretrained(str(path))
    return tokenizer


def _tokenizer(path: Path, tokenizer_dir: str | Path | None, vocab_size: int | None = None) -> Any:
    """A copy of the tokenizer in `tokenizer_dir` saved under `path`, or a new one."""
    if tokenizer_dir is None:
        return build_tokenizer(path, vocab_size=vocab_size)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tokenizer.save_pretrained(str(path))
    return tokenizer


def _bert_config(vocab_size: int, hidden: int, layers: int, heads: int) -> Any:
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


def _make_lexical(model: Any, embeddings: Any, special_ids: list[int]) -> None:
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
    from transformers import BertForMaskedLM

    path = Path(path)
    tokenizer = _tokenizer(path, tokenizer_dir, vocab_size)
    torch.manual_seed(seed)
    model = BertForMaskedLM(_bert_config(len(tokenizer), hidden, layers, heads)).eval()  # type: ignore[no-untyped-call]
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
    from transformers import BertModel

    path = Path(path)
    backbone = path / "backbone"
    tokenizer = _tokenizer(backbone, tokenizer_dir)
    torch.manual_seed(seed)
    bert = BertModel(_bert_config(len(tokenizer), hidden, layers, heads)).eval()  # type: ignore[no-untyped-call]
    if lexical:
        # Mean pooling over self-only outputs is a bag of words: cosine ranks by shared words.
        _make_lexical(bert, bert.embeddings, _special_ids(tokenizer))
    bert.save_pretrained(str(backbone))
    transformer = Transformer(str(backbone), max_seq_length=512)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(path))
    return path


def build_cross_encoder(
    path: str | Path,
    *,
    lexical: bool = False,
    hidden: int = 96,
    layers: int = 2,
    heads: int = 1,
    seed: int = 2,
    tokenizer_dir: str | Path | None = None,
) -> Path:
    """Save a 1-label `BertForSequenceClassification` reranker under `path`: tiny by default;
    `hidden=384, layers=12, heads=12` is the shape of a small reranker, for speed.

    `lexical=False` gives random weights. `lexical=True` (2 layers, 1 head) sets the weights
    by hand so that the
    score rises with the share of the query's tokens that occur in the passage:

    - layer 1: each query token attends to the passage token with the same word embedding
      if there is one, else to a "sink" ([CLS]); the value of a passage token is 1 on a
      signal dimension, the sink's 0, so the token's signal says "found in the passage";
    - layer 2: [CLS] averages the signal over the query segment;
    - the pooler and the classifier read [CLS]'s signal: logit = tanh(gain x share found).
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    if lexical and (layers, heads) != (2, 1):
        raise ValueError(f"the lexical reranker has 2 layers and 1 head, got {layers}, {heads}")
    path = Path(path)
    tokenizer = _tokenizer(path, tokenizer_dir)
    # A pair model tells the query from the passage by token type: ask the tokenizer for them
    # (BertJapaneseTokenizer leaves them out unless its config names them).
    config_file = path / "tokenizer_config.json"
    tokenizer_config = json.loads(config_file.read_text())
    tokenizer_config["model_input_names"] = ["input_ids", "token_type_ids", "attention_mask"]
    config_file.write_text(json.dumps(tokenizer_config, ensure_ascii=False, indent=2))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden if lexical else hidden * 4,
        max_position_embeddings=512,
    )
    config.num_labels = 1  # one relevance score per pair
    model = BertForSequenceClassification(config).eval()  # type: ignore[no-untyped-call]
    if lexical:
        _make_lexical_cross_encoder(model, _special_ids(tokenizer), hidden)
    model.save_pretrained(str(path))
    return path


def _make_lexical_cross_encoder(model: Any, special_ids: list[int], hidden: int) -> None:
    import torch

    words = hidden - 16  # dims [0, words): word identity; then roles and the signal
    type0, type1, cls_role, signal = (
        torch.zeros(hidden),
        torch.zeros(hidden),
        torch.zeros(hidden),
        words + 12,
    )
    # Role vectors with zero mean, so that LayerNorm only rescales token vectors.
    type0[words : words + 4] = torch.tensor([1.0, -1.0, 1.0, -1.0]) / 2
    type1[words + 4 : words + 8] = torch.tensor([1.0, -1.0, 1.0, -1.0]) / 2
    cls_role[words + 8 : words + 12] = torch.tensor([1.0, -1.0, 1.0, -1.0]) / 2
    bert = model.bert
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        emb = bert.embeddings
        word = torch.randn(emb.word_embeddings.weight.shape[0], words)
        word -= word.mean(dim=1, keepdim=True)
        word /= word.norm(dim=1, keepdim=True)
        emb.word_embeddings.weight[:, :words] = word
        emb.word_embeddings.weight[special_ids] = 0.0
        cls_id = special_ids[2]  # SPECIAL_TOKENS order: [PAD], [UNK], [CLS], [SEP], [MASK]
        emb.word_embeddings.weight[cls_id] = cls_role
        emb.token_type_embeddings.weight[0] = type0
        emb.token_type_embeddings.weight[1] = type1
        for layer in [*bert.encoder.layer, emb]:
            norm = layer.LayerNorm if hasattr(layer, "LayerNorm") else None
            if norm is not None:
                norm.weight.fill_(1.0)
        for layer in bert.encoder.layer:
            layer.attention.output.LayerNorm.weight.fill_(1.0)
            layer.output.LayerNorm.weight.fill_(1.0)
        unit0, unit1, unit_cls = (v / v.norm() for v in (type0, type1, cls_role))
        # LayerNorm scales a word token (word part and role part, each of norm 1) to norm
        # sqrt(hidden): each part to sqrt(hidden / 2). Attention divides by sqrt(hidden).
        match = 40.0  # attention score of a query token for the passage token of its word
        scale = (hidden / 2) ** 0.5
        # Layer 1. Keys score by word identity; every token gets the same query bias, which
        # reads two role dims of the key: the query segment (-3 matches: a query word must
        # not find itself) and [CLS] (+3.5: the sink scores half a match).
        att = bert.encoder.layer[0].attention.self
        att.query.weight[:words, :words] = torch.eye(words) * 2 * match / hidden**0.5
        att.key.weight[:words, :words] = torch.eye(words)
        att.query.bias[words] = 1.0
        att.query.bias[words + 1] = 1.0
        att.key.weight[words] = -3 * match * hidden**0.5 / scale * unit0
        att.key.weight[words + 1] = 3.5 * match * hidden**0.5 / scale * unit_cls
        att.value.weight[signal] = unit1  # passage tokens carry the signal, the sink none
        bert.encoder.layer[0].attention.output.dense.weight[signal, signal] = 1.0
        # Layer 2: [CLS] averages the signal over the query segment (passage tokens masked).
        att2 = bert.encoder.layer[1].attention.self
        att2.query.bias[words] = 1.0
        att2.key.weight[words] = -3 * match * hidden**0.5 / scale * unit1
        att2.value.weight[signal, signal] = 1.0
        bert.encoder.layer[1].attention.output.dense.weight[signal, signal] = 1.0
        bert.pooler.dense.weight[0, signal] = 0.3  # tanh stays short of saturation
        model.classifier.weight[0, 0] = 4.0
