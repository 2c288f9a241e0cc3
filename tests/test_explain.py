"""The explanation contract (DESIGN.md): word-level matches that sum to the sparse score."""

from __future__ import annotations

import pytest

from rag_splade import Document, EdgeStore, HybridIndex, QdrantServerStore
from rag_splade.explain import explain_match
from rag_splade.sample import sample_texts
from rag_splade.types import SparseVector

QUERIES = ["日本で梅雨がないのは北海道とどこか。", "石油の主成分は何か。", "ＡＢＣ社のガス１００"]


@pytest.fixture(params=["edge", "memory"])
def index(request, tmp_path, splade, dense):
    store = (
        EdgeStore(tmp_path / "i")
        if request.param == "edge"
        else QdrantServerStore(location=":memory:")
    )
    idx = HybridIndex(splade, dense, store)
    docs = [Document(id=f"d{i}", text=t) for i, t in enumerate(sample_texts()[:20])]
    docs.append(Document(id="wide", text="ＡＢＣ社のｶﾞｽ１００円。ABC社はガスを売る。"))
    idx.add(docs)
    yield idx
    idx.close()


@pytest.mark.parametrize("mode", ["hybrid", "sparse", "dense"])
def test_contributions_sum_to_the_sparse_score(index, mode) -> None:
    for query in QUERIES:
        hits = index.search(query, top_k=10, mode=mode, explain=True)
        assert hits
        for hit in hits:
            e = hit.explanation
            total = sum(t.contribution for t in e.terms)
            assert total == pytest.approx(e.sparse_score, rel=1e-5, abs=1e-5)
            if hit.sparse_score is not None:  # Qdrant's own sparse dot product
                assert e.sparse_score == pytest.approx(hit.sparse_score, rel=1e-4)
            for t in e.terms:
                assert (
                    t.contribution == pytest.approx(t.query_weight * t.document_weight, rel=1e-6)
                    or len(t.pieces) > 1
                )


def test_spans_point_at_the_terms(index) -> None:
    checked = 0
    for query in QUERIES:
        for hit in index.search(query, top_k=10, explain=True):
            for term in hit.explanation.terms:
                if term.literal:
                    assert term.spans
                    for start, end in term.spans:
                        assert hit.text[start:end] == term.term or (
                            # half-width source text, full-width-normalised term
                            _nfkc(hit.text[start:end]) == term.term
                        )
                        checked += 1
                else:
                    assert term.spans == []
    assert checked > 20


def test_half_width_text_spans_map_to_the_original(index) -> None:
    [hit] = [
        h for h in index.search("ガス", top_k=25, mode="sparse", explain=True) if h.doc_id == "wide"
    ]
    gas = next(t for t in hit.explanation.terms if t.term == "ガス")
    assert [hit.text[a:b] for a, b in gas.spans] == ["ｶﾞｽ", "ガス"]


def test_expansion_terms_and_function_words(splade) -> None:
    text = "石油は炭化水素を主成分とする。"
    query = splade.encode_queries(["石油の主成分"])[0]
    doc = splade.encode_documents([text])[0]
    e = explain_match(splade, query, doc, text)
    literal = {t.term for t in e.terms if t.literal}
    assert {"石油", "成分"} <= literal
    expansions = [t for t in e.terms if not t.literal]
    assert expansions, "the lexical model activates a few terms the text never says"
    for t in expansions:
        assert t.term not in text and t.spans == []
    by_term = {t.term: t for t in e.terms}
    if "は" in by_term:
        assert by_term["は"].function_word
    assert not by_term["石油"].function_word
    assert all(not t.function_word for t in e.key_terms())
    contributions = [t.contribution for t in e.terms]
    assert contributions == sorted(contributions, reverse=True)


def test_no_overlap_is_an_empty_explanation(splade) -> None:
    e = explain_match(
        splade, SparseVector.from_pairs({1: 1.0}), SparseVector.from_pairs({2: 1.0}), "x"
    )
    assert e.terms == [] and e.sparse_score == 0.0


def test_query_terms_mark_expansions(index) -> None:
    terms = index.explain_query("石油の主成分は何か。", top_k=None)  # type: ignore[arg-type]
    own = {t.term for t in terms if not t.expansion}
    assert {"石油", "成分"} <= own
    assert any(t.expansion for t in terms)
    assert next(t for t in terms if t.term == "の").function_word
    weights = [t.weight for t in terms]
    assert weights == sorted(weights, reverse=True)


def _nfkc(s: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKC", s)
