"""The notebook views (`rag_splade.views`): the marks sit at the explanation's spans, the
three match kinds carry their own classes, the bar adds up to the sparse score, and every
string from a passage, a term or metadata is escaped."""

from __future__ import annotations

import math
from html.parser import HTMLParser

import pytest

from rag_splade import Document, EdgeStore, HybridIndex, SearchHit
from rag_splade.types import Explanation, QueryTerm, TermMatch
from rag_splade.views import BAR_TERMS, show, stylesheet

HOSTILE = '<script>alert(1)</script>\u202e"フィルター"&の掃除'
ASTRAL = "𠮷野家😀のフィルターを洗う。"
MAHLER = "マーラーの交響曲を聴きながらビールを飲む。"


class Markup(HTMLParser):
    """Elements with their attributes and the text inside each (nesting tracked)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict] = []
        self.open: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in ("br", "img", "input", "meta", "link"):
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.open:
            if self.open.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element["text"] += data

    def having(self, cls: str) -> list[dict]:
        return [e for e in self.elements if cls in (e["attrs"].get("class") or "").split()]


def parse(markup: str) -> Markup:
    parser = Markup()
    parser.feed(markup)
    return parser


@pytest.fixture(scope="module")
def searched(splade, dense, tmp_path_factory):
    index = HybridIndex(splade, dense, EdgeStore(tmp_path_factory.mktemp("views") / "index"))
    index.add(
        [
            Document(id="mahler", text=MAHLER, metadata={"title": "音楽"}),
            Document(id="astral", text=ASTRAL, metadata={"title": "掃除"}),
            Document(
                id="hostile", text=HOSTILE, metadata={"title": "<img src=x onerror=alert(1)>"}
            ),
            Document(id="other", text="富士山は日本で一番高い山です。"),
        ]
    )
    query = "フィルターのお手入れ方法は？"
    hits = index.search(query, top_k=4, mode="sparse", explain=True)
    terms = index.explain_query(query, 15)
    yield hits, terms
    index.close()


def passage_marks(hit_element_markup: Markup) -> list[dict]:
    return [e for e in hit_element_markup.having("rs-match") if "data-spans" in e["attrs"]]


def test_marks_sit_at_the_spans_of_the_explanation(searched) -> None:
    hits, _ = searched
    for hit in hits:
        assert hit.explanation is not None
        markup = parse(show([hit])._repr_html_())
        covered: dict[tuple[int, int, int], str] = {}
        for mark in passage_marks(markup):
            for entry in mark["attrs"]["data-spans"].split():
                i, s, e = map(int, entry.split(":"))
                covered[(i, s, e)] = covered.get((i, s, e), "") + mark["text"]
        terms = hit.explanation.terms
        expected = {(i, s, e) for i, t in enumerate(terms) for s, e in t.spans}
        assert set(covered) == expected, hit.id
        for (i, s, e), text in covered.items():
            assert text == hit.text[s:e], (hit.id, terms[i].term)
        [passage] = markup.having("rs-passage")
        assert passage["text"] == hit.text  # escaped text reads back as the passage


def test_an_astral_character_before_a_match_does_not_shift_it(searched) -> None:
    hits, _ = searched
    [hit] = [h for h in hits if h.doc_id == "astral"]
    marks = passage_marks(parse(show([hit])._repr_html_()))
    assert "フィルター" in [m["text"] for m in marks]
    [filter_term] = [t for t in hit.explanation.terms if t.term == "フィルター"]
    assert filter_term.spans == [(5, 10)]  # code points: 𠮷 and 😀 count one each


def test_the_three_kinds_have_their_own_classes(searched) -> None:
    hits, _ = searched
    markup = parse(show(hits)._repr_html_())
    marks = passage_marks(markup)
    kinds = {m["attrs"]["data-kind"] for m in marks}
    assert kinds == {"whole", "partial"}
    for mark in marks:
        classes = set(mark["attrs"]["class"].split())
        kind = mark["attrs"]["data-kind"]
        assert (
            f"rs-{kind}" in classes and not ({"rs-whole", "rs-partial"} - {f"rs-{kind}"}) & classes
        )
    chips = [
        e for e in markup.having("rs-expansion") if e["tag"] == "li" and "data-terms" in e["attrs"]
    ]
    assert chips and all(c["attrs"]["data-kind"] == "expansion" for c in chips)
    [mahler] = [h for h in hits if h.doc_id == "mahler"]
    partial = [t for t in mahler.explanation.terms if t.kind == "partial"]
    assert partial, "the test data must hold a partial match"
    # the stylesheet tells the kinds apart by line style, not by colour alone
    css = stylesheet()
    assert "2px solid" in css.split(".rs-match.rs-whole")[1].split("}")[0]
    assert "dotted" in css.split(".rs-match.rs-partial")[1].split("}")[0]
    assert "dashed" in css.split(".rs-term.rs-expansion {")[1].split("}")[0]


def test_the_bar_adds_up_to_the_sparse_score(searched) -> None:
    hits, _ = searched
    markup = parse(show(hits)._repr_html_())
    bars = [e for e in markup.elements if "rs-seg" in (e["attrs"].get("class") or "")]
    assert bars
    for hit in hits:
        own = parse(show([hit])._repr_html_())
        segments = own.having("rs-seg")
        total = sum(float(s["attrs"]["data-contribution"]) for s in segments)
        assert math.isclose(total, hit.sparse_score, rel_tol=1e-4), hit.id


def test_a_long_explanation_is_drawn_as_its_strongest_terms_and_the_rest() -> None:
    terms = [
        TermMatch(f"語{i}", 1.0, 0.1, 0.1, [], False, pieces=[f"語{i}"], kind="expansion")
        for i in range(BAR_TERMS + 5)
    ]
    hit = SearchHit("a#0", "a", 0, "本文", {}, 1.0, 4.5, explanation=Explanation(terms, 4.5))
    segments = parse(hit._repr_html_()).having("rs-seg")
    assert len(segments) == BAR_TERMS + 1 and "rs-omitted" in segments[-1]["attrs"]["class"]
    assert math.isclose(sum(float(s["attrs"]["data-contribution"]) for s in segments), 4.5)


def test_a_hit_found_by_dense_only_gets_the_bar_its_explanation_sums_to() -> None:
    """No sparse_score (the sparse list did not return it), yet its explanation has terms:
    the bar is the explanation's sum, scaled with the other hits, and says so."""
    terms = [TermMatch("山", 1.0, 2.0, 2.0, [(0, 1)], True, pieces=["山"], kind="whole")]
    in_list = SearchHit("a#0", "a", 0, "山", {}, 1.0, 4.0, explanation=Explanation(terms, 2.0))
    dense_only = SearchHit("b#0", "b", 0, "山", {}, 0.9, None, explanation=Explanation(terms, 2.0))
    markup = parse(show([in_list, dense_only])._repr_html_())
    widths = [e["attrs"]["style"] for e in markup.having("rs-bar")]
    assert widths == ["width: 100.00%", "width: 50.00%"]  # 2.0 against the strongest, 4.0
    captions = [e["text"] for e in markup.having("rs-bar-caption")]
    assert "sparse score 2.0000" in captions[1] and "found by dense" in captions[1]
    assert "found by dense" not in captions[0]
    # dense mode with explain: no hit has a sparse_score, the bars still scale to each other
    weaker = [TermMatch("山", 1.0, 1.0, 1.0, [(0, 1)], True, pieces=["山"], kind="whole")]
    other = SearchHit("c#0", "c", 0, "山", {}, 0.8, None, explanation=Explanation(weaker, 1.0))
    markup = parse(show([dense_only, other])._repr_html_())
    assert [e["attrs"]["style"] for e in markup.having("rs-bar")] == [
        "width: 100.00%",
        "width: 50.00%",
    ]


def test_hostile_text_is_escaped(searched) -> None:
    hits, _ = searched
    [hit] = [h for h in hits if h.doc_id == "hostile"]
    markup_text = hit._repr_html_()
    markup = parse(markup_text)
    assert not [e for e in markup.elements if e["tag"] in ("script", "img")]
    assert "<script>" not in markup_text and "&lt;script&gt;" in markup_text
    [source] = markup.having("rs-source")
    assert source["text"] == "<img src=x onerror=alert(1)>"


def test_query_terms_chart_marks_expansions(searched) -> None:
    _, terms = searched
    markup = parse(show(query_terms=terms)._repr_html_())
    items = markup.having("rs-qterm")
    assert [i["attrs"]["data-term"] for i in items] == [
        t.term for t in sorted(terms, key=lambda t: -t.weight)
    ]
    for item, term in zip(items, sorted(terms, key=lambda t: -t.weight), strict=True):
        assert ("rs-expansion" in item["attrs"]["class"].split()) == term.expansion
    assert any(t.expansion for t in terms) and any(not t.expansion for t in terms)


def test_a_hit_without_explanation_shows_its_text() -> None:
    hit = SearchHit("a#0", "a", 0, "富士山<b>", {}, 0.5)
    markup = parse(hit._repr_html_())
    assert markup.having("rs-passage")[0]["text"] == "富士山<b>"
    assert not markup.having("rs-match") or all(
        "data-spans" not in m["attrs"] for m in markup.having("rs-match")
    )


def test_show_names_a_wrong_argument() -> None:
    hit = SearchHit("a#0", "a", 0, "本文", {}, 0.5)
    with pytest.raises(TypeError, match=r"show\(\) takes a list for hits.*\[hit\]"):
        show(hit)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="query_terms"):
        show([], "語")  # type: ignore[arg-type]
    assert "rs-qterm" in show(query_terms=[QueryTerm("語", 1.0, False)])._repr_html_()
