"""The explanation contract (DESIGN.md): word-level matches that sum to the sparse score."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from rag_splade import Document, EdgeStore, HybridIndex
from rag_splade.context import format_context, highlight
from rag_splade.explain import explain_match, explain_query
from rag_splade.sample import sample_texts
from rag_splade.types import SearchHit, SparseVector, TermMatch
from tests.stores import new_store

QUERIES = ["日本で梅雨がないのは北海道とどこか。", "石油の主成分は何か。", "ＡＢＣ社のガス１００"]


@pytest.fixture
def index(store_kind, tmp_path, splade, dense):
    idx = HybridIndex(splade, dense, new_store(store_kind, tmp_path))
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
                    or len(t.matched_pieces) > 1
                )


def test_spans_point_at_the_terms(index) -> None:
    checked = 0
    for query in QUERIES:
        for hit in index.search(query, top_k=10, explain=True):
            for term in hit.explanation.terms:
                if term.kind == "whole":
                    assert term.spans
                    for start, end in term.spans:
                        assert hit.text[start:end] == term.term or (
                            # half-width source text, full-width-normalised term
                            _nfkc(hit.text[start:end]) == term.term
                        )
                        checked += 1
                elif term.kind == "partial":  # the characters of the matched pieces
                    assert term.spans
                    bare = {p.removeprefix("##") for p in term.matched_pieces}
                    for start, end in term.spans:
                        seen = _nfkc(hit.text[start:end])
                        assert seen in term.term and (seen in bare or len(seen) > 1)
                else:
                    assert term.spans == [] and not term.literal
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
    query = "石油の主成分は何か。"
    terms = index.explain_query(query, top_k=None)  # type: ignore[arg-type]
    own = {t.term for t in terms if not t.expansion}
    assert {"石油", "成分"} <= own
    assert any(t.expansion for t in terms)
    assert next(t for t in terms if t.term == "の").function_word
    weights = [t.weight for t in terms]
    assert weights == sorted(weights, reverse=True)
    for t in terms:
        if t.expansion:
            assert t.spans == [] and t.pieces == [t.term]
        else:
            assert [query[a:b] for a, b in t.spans] == [t.term]


# -- the reproductions of "explanations a user can trust" ------------------------------------
MAHLER = "マーラーの交響曲を聴きながらビールを飲む。"


def _ids(splade, *tokens: str) -> list[int]:
    return list(splade.tokenizer.convert_tokens_to_ids(list(tokens)))


def test_a_shared_piece_is_a_partial_match_not_a_word(splade) -> None:
    """The query shares only the long-vowel piece ##ー with マーラー: a partial match."""
    assert splade.tokenizer.tokenize("マーラー") == ["マ", "##ー", "##ラ", "##ー"]
    [long_vowel] = _ids(splade, "##ー")
    mahler = _ids(splade, "マ", "##ー", "##ラ")
    query = SparseVector.from_pairs({long_vowel: 2.0})
    doc = SparseVector.from_pairs({i: 1.0 + n for n, i in enumerate(mahler)})
    e = explain_match(splade, query, doc, MAHLER)
    [t] = e.terms
    assert (t.term, t.kind, t.literal) == ("マーラー", "partial", True)
    assert t.matched_pieces == ["##ー"] and t.pieces == ["マ", "##ー", "##ラ", "##ー"]
    # the span is the matched piece's characters, in both places the word has it
    assert [MAHLER[a:b] for a, b in t.spans] == ["ー", "ー"] and t.spans == [(1, 2), (3, 4)]
    assert t.contribution == pytest.approx(e.sparse_score) == pytest.approx(query.dot(doc))
    assert e.key_terms() == [] and e.related_terms() == []
    hit = SearchHit("d#0", "d", 0, MAHLER, {}, 1.0, explanation=e)
    assert format_context([hit]).splitlines()[0] == "[1] 出典: d (d#0)"  # no 一致語
    assert highlight(hit) == MAHLER
    assert highlight(hit, kinds=("partial",)) == "マ【ー】ラ【ー】の" + MAHLER[5:]


def test_a_whole_word_claims_a_piece_before_a_partial_one(splade) -> None:
    """##ー is in マーラー (partial) and フィルター (whole): the whole word gets it."""
    text = "マーラーとフィルター。"
    pieces = _ids(splade, "フ", "##ィ", "##ル", "##タ", "##ー")
    query = SparseVector.from_pairs({i: 1.0 for i in pieces})
    doc = SparseVector.from_pairs({i: 0.5 for i in pieces + _ids(splade, "マ", "##ラ")})
    e = explain_match(splade, query, doc, text)
    [t] = e.terms
    assert (t.term, t.kind) == ("フィルター", "whole")
    assert t.matched_pieces == ["フ", "##ィ", "##ル", "##タ", "##ー"]
    assert [text[a:b] for a, b in t.spans] == ["フィルター"]
    assert [k.term for k in e.key_terms()] == ["フィルター"]


def test_the_mahler_and_beer_reproduction_end_to_end(splade, dense, tmp_path) -> None:
    """`rag-splade search "フィルターのお手入れ方法は？" --context` over passages with
    マーラー and ビール credited both words; they share only pieces with the query."""
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "i")) as idx:
        idx.add([Document(id="m", text=MAHLER), Document(id="f", text="フィルターを洗う。")])
        hits = idx.search("フィルターのお手入れ方法は？", top_k=2, mode="sparse", explain=True)
    by_doc = {h.doc_id: h for h in hits}
    terms = {t.term: t for t in by_doc["m"].explanation.terms}
    assert terms["マーラー"].kind == "partial" and terms["ビール"].kind == "partial"
    assert set(terms["ビール"].matched_pieces) < set(terms["ビール"].pieces)
    assert "フィルター" in [t.term for t in by_doc["f"].explanation.key_terms()]
    for hit in hits:
        e = hit.explanation
        assert sum(t.contribution for t in e.terms) == pytest.approx(hit.sparse_score, rel=1e-4)
        key = {t.term for t in e.key_terms()}
        assert not key & {"マーラー", "ビール"}
        assert all(t.kind == "whole" and t.literal for t in e.key_terms())
    context = format_context(hits)
    matched = [
        term
        for line in context.splitlines()
        if " / 一致語: " in line
        for term in line.split(" / 一致語: ")[1].split(" / ")[0].split(", ")
    ]
    assert "フィルター" in matched and not {"マーラー", "ビール"} & set(matched)


def test_matched_terms_in_the_context_are_never_expansions(index) -> None:
    seen = set()
    for query in QUERIES:
        hits = index.search(query, top_k=10, explain=True)
        headers = [line for line in format_context(hits).splitlines() if line.startswith("[")]
        assert len(headers) == len(hits)
        for hit, header in zip(hits, headers, strict=True):
            kinds = {t.term: t.kind for t in hit.explanation.terms}
            for part in header.split(" / ")[1:]:
                label, terms = part.split(": ", 1)
                want = {"一致語": "whole", "関連語": "expansion"}[label]
                assert all(kinds[term] == want for term in terms.split(", "))
                seen.add(label)
    assert seen == {"一致語", "関連語"}


def test_query_terms_are_merged_words(splade) -> None:
    query = "燃費を良くするには"
    assert "##く" in splade.tokenizer.tokenize(query)
    terms = explain_query(splade, query, splade.encode_queries([query])[0], top_k=None)
    own = {t.term: t for t in terms if not t.expansion}
    assert {"燃費", "良く"} <= own.keys()
    assert own["良く"].pieces == ["良", "##く"] and own["燃費"].pieces == ["燃", "##費"]
    assert [query[a:b] for a, b in own["良く"].spans] == ["良く"]
    assert not any(t.term.startswith("##") for t in terms if not t.expansion)
    vector = splade.encode_queries([query])[0].as_dict()
    ids = dict(zip(["良", "##く"], _ids(splade, "良", "##く"), strict=True))
    assert own["良く"].weight == pytest.approx(max(vector.get(i, 0.0) for i in ids.values()))


def test_query_terms_top_k_keeps_the_strongest(splade) -> None:
    query = "石油の主成分は何か。"
    vector = splade.encode_queries([query])[0]
    every = explain_query(splade, query, vector, top_k=None)
    assert explain_query(splade, query, vector, top_k=5) == every[:5]
    assert explain_query(splade, query, vector, top_k=0) == []


def test_lazy_expansions_are_the_same_terms(random_splade) -> None:
    """A dense (random) vector: expansions are built on demand, and equal an eager build."""
    text = sample_texts()[0]
    query = random_splade.encode_queries(["日本で梅雨がないのは北海道とどこか。"])[0]
    doc = random_splade.encode_documents([text])[0]
    e = explain_match(random_splade, query, doc, text)
    related = e.related_terms(3)
    key = e.key_terms(5)
    terms = e.terms  # built now
    assert len(terms) > 500
    assert (
        related
        == [
            t
            for t in terms
            if t.kind == "expansion" and not t.function_word and not t.term.startswith("##")
        ][:3]
    )
    assert key == [t for t in terms if t.kind == "whole" and not t.function_word][:5]
    assert sum(t.contribution for t in terms) == pytest.approx(query.dot(doc), rel=1e-6)
    again = explain_match(random_splade, query, doc, text)
    assert pickle.loads(pickle.dumps(again)) == e
    assert dataclasses.asdict(again)["terms"] == [dataclasses.asdict(t) for t in terms]


def test_term_match_kind_fits_literal() -> None:
    with pytest.raises(ValueError, match="expansion"):
        TermMatch("海洋", 1.0, 1.0, 1.0, [], False)  # an expansion must say so
    with pytest.raises(ValueError, match="kind"):
        TermMatch("海洋", 1.0, 1.0, 1.0, [], True, kind="nearly")  # type: ignore[arg-type]
    assert TermMatch("海洋", 1.0, 1.0, 1.0, [], False, kind="expansion").kind == "expansion"


def test_encoder_terms_table(splade) -> None:
    ids = list(range(len(splade.tokenizer)))
    assert splade.terms(ids) == splade.tokenizer.convert_ids_to_tokens(ids)
    assert splade.terms(np.array([5, 5])) == splade.terms([5]) * 2 and splade.terms([]) == []
    with pytest.raises(IndexError, match="outside the vocabulary"):
        splade.terms([splade.vocab_size])
    assert splade.word_piece_ids("マーラー") == _ids(splade, "マ", "##ー", "##ラ", "##ー")
    splade.word_piece_ids("マーラー").append(0)  # callers get a copy of the cached ids
    assert splade.word_piece_ids("マーラー") == _ids(splade, "マ", "##ー", "##ラ", "##ー")


def _nfkc(s: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKC", s)
