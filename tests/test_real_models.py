"""The real default models from the Hugging Face hub (run with: pytest -m network)."""

from __future__ import annotations

import pytest

from rag_splade import DenseEncoder, Document, EdgeStore, HybridIndex, SpladeEncoder

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    import os

    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ.pop("TRANSFORMERS_OFFLINE", None)
    sparse = SpladeEncoder("hotchpotch/japanese-splade-v2")
    dense = DenseEncoder("cl-nagoya/ruri-v3-130m")
    return HybridIndex(sparse, dense, EdgeStore(tmp_path_factory.mktemp("real")))


def test_japanese_splade_v2_is_sparse_with_expansions(real_index) -> None:
    [vector] = real_index.sparse.encode_queries(["車の燃費を向上させる方法は？"])
    assert real_index.sparse.vocab_size == 32768
    assert 5 < len(vector) < 200
    terms = [t for t, _ in real_index.sparse.decode(vector, top_k=10)]
    assert "燃費" in terms


def test_real_hybrid_search_explains(real_index) -> None:
    real_index.add(
        [
            Document(id="car", text="車の燃費を良くするには、タイヤの空気圧を保つことが大切です。"),
            Document(id="rain", text="梅雨は北海道を除く日本で見られる気象現象である。"),
        ]
    )
    [top, *_] = real_index.search("燃費を向上させる方法", top_k=2, explain=True)
    assert top.doc_id == "car"
    assert any(t.term == "燃費" and t.literal for t in top.explanation.terms)
    assert sum(t.contribution for t in top.explanation.terms) == pytest.approx(
        top.sparse_score, rel=1e-3
    )
