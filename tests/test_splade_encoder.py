"""SpladeEncoder against a direct transformers computation of SPLADE-max."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from rag_splade import SpladeEncoder
from rag_splade.encoders.device import resolve_device, resolve_dtype
from rag_splade.encoders.splade_forward import encode_sparse, mlm_parts, token_budget_batches

TEXTS = [
    "梅雨は北海道と小笠原諸島を除く日本でみられる気象現象である。",
    "石油は炭化水素を主成分とする。",
    "ＡＢＣ半角と全角が混ざった文、そして長い文。" * 8,
]


def direct_splade(path, texts: list[str], max_length: int) -> list[dict[int, float]]:
    """SPLADE-max written out: max over tokens of log(1 + relu(logits)) * mask."""
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForMaskedLM.from_pretrained(str(path)).eval()
    enc = tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    with torch.no_grad():
        logits = model(**enc).logits
    weights = torch.log1p(torch.relu(logits)) * enc["attention_mask"].unsqueeze(-1)
    pooled = weights.max(dim=1).values
    return [{int(i): float(row[i]) for i in row.nonzero().flatten()} for row in pooled]


def assert_same(vectors, expected) -> None:
    for vector, exp in zip(vectors, expected, strict=True):
        got = vector.as_dict()
        assert set(got) == set(exp)
        diff = max(abs(got[i] - exp[i]) for i in exp)
        assert diff < 1e-4


def test_documents_match_direct_formula(random_splade, random_splade_path) -> None:
    vectors = random_splade.encode_documents(TEXTS)
    assert_same(vectors, direct_splade(random_splade_path, TEXTS, 512))
    assert all(v.indices.dtype == np.int32 and v.values.dtype == np.float32 for v in vectors)


def test_queries_truncate_at_query_max_length(random_splade_path) -> None:
    encoder = SpladeEncoder(str(random_splade_path), device="cpu", query_max_length=12)
    long_query = TEXTS[2]
    assert encoder.count_tokens(long_query) > 12
    assert_same(
        encoder.encode_queries([long_query]), direct_splade(random_splade_path, [long_query], 12)
    )
    # documents keep their own, longer limit
    assert_same(
        encoder.encode_documents([long_query]), direct_splade(random_splade_path, [long_query], 512)
    )


def test_lexical_model_is_sparse_and_decodes(splade) -> None:
    [vector] = splade.encode_queries(["石油の主成分は何か。"])
    assert 0 < len(vector) < 40
    decoded = splade.decode(vector, top_k=5)
    assert len(decoded) == 5
    weights = [w for _, w in decoded]
    assert weights == sorted(weights, reverse=True)
    assert {"石油", "成分"} <= {t for t, _ in splade.decode(vector)}


def test_document_pruning_keeps_the_strongest_terms(random_splade) -> None:
    full = random_splade.encode_documents(TEXTS[:1])[0]
    pruned = random_splade.encode_documents(TEXTS[:1], top_k=10)[0]
    assert len(pruned) == 10
    strongest = set(full.top_k(10).indices.tolist())
    assert set(pruned.indices.tolist()) == strongest


def test_document_pruning_by_weight(splade_path_pair) -> None:
    full_encoder, pruning = splade_path_pair
    full = full_encoder.encode_documents(TEXTS[:3])
    pruned = pruning.encode_documents(TEXTS[:3])
    queries = pruning.encode_queries(TEXTS[:1])[0]
    assert len(queries) == len(full_encoder.encode_queries(TEXTS[:1])[0])  # queries unpruned
    for f, p in zip(full, pruned, strict=True):
        expected = f.drop_below(1.0)
        assert 0 < len(p) < len(f)
        assert p.as_dict() == pytest.approx(expected.as_dict(), abs=1e-5)
    both = pruning.encode_documents(TEXTS[:1], top_k=5)[0]
    assert both.as_dict() == pytest.approx(full[0].drop_below(1.0).top_k(5).as_dict(), abs=1e-5)


@pytest.fixture(scope="module")
def splade_path_pair(lexical_splade_path):
    return (
        SpladeEncoder(str(lexical_splade_path), device="cpu"),
        SpladeEncoder(str(lexical_splade_path), device="cpu", document_min_weight=1.0),
    )


def test_empty_batch_and_bad_input(splade) -> None:
    assert splade.encode_documents([]) == []
    with pytest.raises(TypeError, match="single str"):
        splade.encode_queries("石油")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        splade.encode_documents(["a", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="top_k"):
        splade.decode(splade.encode_queries(["石油"])[0], top_k=0)


def test_device_and_dtype_resolution() -> None:
    assert resolve_device("auto") in ("cpu", "mps", "cuda")
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("int3", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_constructor_validates(random_splade_path) -> None:
    with pytest.raises(ValueError, match="query_max_length"):
        SpladeEncoder(str(random_splade_path), device="cpu", query_max_length=0)
    with pytest.raises(ValueError, match="document_top_k"):
        SpladeEncoder(str(random_splade_path), device="cpu", document_top_k=0)
    for bad in (0, -1.0, True, "0.5"):
        with pytest.raises(ValueError, match="document_min_weight must be None or a number > 0"):
            SpladeEncoder(str(random_splade_path), device="cpu", document_min_weight=bad)


def test_token_budget_batches_cover_every_text_once() -> None:
    lengths = [5, 100, 7, 90, 512, 3, 64, 64]
    batches = token_budget_batches(lengths, max_batch_tokens=200)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 200
        assert lengths[batch[0]] == longest  # longest first: padding is to the first row
    assert all(len(b) <= 2 for b in token_budget_batches(lengths, 10**6, max_batch_size=2))


@pytest.mark.parametrize("budget,head_chunk", [(1, 1), (64, 7), (10**6, 3), (10**6, 10**6)])
def test_batching_and_head_chunking_do_not_change_vectors(
    random_splade_path, budget: int, head_chunk: int
) -> None:
    """One text per batch, odd head chunks, or everything at once: the same vectors."""
    reference = SpladeEncoder(str(random_splade_path), device="cpu").encode_documents(TEXTS)
    encoder = SpladeEncoder(
        str(random_splade_path),
        device="cpu",
        max_batch_tokens=budget,
        head_chunk_tokens=head_chunk,
        batch_size=1000,
    )
    for got, exp in zip(encoder.encode_documents(TEXTS), reference, strict=True):
        assert np.array_equal(got.indices, exp.indices)
        assert np.abs(got.values - exp.values).max() < 1e-5


def test_budget_arguments_are_validated(random_splade_path) -> None:
    with pytest.raises(ValueError, match="max_batch_tokens"):
        SpladeEncoder(str(random_splade_path), device="cpu", max_batch_tokens=0)
    with pytest.raises(ValueError, match="head_chunk_tokens"):
        SpladeEncoder(str(random_splade_path), device="cpu", head_chunk_tokens=-1)


def test_unknown_head_layout_falls_back_to_full_logits(random_splade_path) -> None:
    """A masked LM without a `cls`/`lm_head` module still pools correctly (whole logits)."""
    model = AutoModelForMaskedLM.from_pretrained(str(random_splade_path)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(random_splade_path))

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, **kwargs):
            return self.inner(**kwargs)

    assert mlm_parts(Wrapped()) is None
    vectors = encode_sparse(
        Wrapped(),
        tokenizer,
        TEXTS,
        max_length=512,
        device="cpu",
        max_batch_tokens=128,
        head_chunk_tokens=16,
    )
    assert_same(vectors, direct_splade(random_splade_path, TEXTS, 512))
