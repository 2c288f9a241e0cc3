"""HybridIndex on both stores: the same suite, the same data, the same rankings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from rag_splade import Document, EdgeStore, HybridIndex, QdrantServerStore
from rag_splade.sample import sample_texts
from tests.stores import STORE_KINDS, new_store

STORES = STORE_KINDS
make_store = new_store


class OtherSize:
    """A dense encoder that says it gives vectors of another size."""

    def __init__(self, inner, dimension: int) -> None:
        self.inner, self.model_name, self.dimension = inner, inner.model_name, dimension

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)

    def encode_documents(self, texts):
        return self.inner.encode_documents(texts)


def corpus() -> list[Document]:
    texts = sample_texts()[:24]
    return [
        Document(
            id=f"doc-{i:02d}",
            text=text,
            metadata={"source": "jsquad", "part": "even" if i % 2 == 0 else "odd", "n": i},
        )
        for i, text in enumerate(texts)
    ]


@pytest.fixture(params=STORES)
def index(request, tmp_path, splade, dense) -> HybridIndex:
    idx = HybridIndex(splade, dense, make_store(request.param, tmp_path))
    idx.add(corpus())
    yield idx
    idx.close()


@pytest.fixture
def both(tmp_path, splade, dense) -> Callable[[], list[HybridIndex]]:
    made = []
    for kind in STORES:
        idx = HybridIndex(splade, dense, make_store(kind, tmp_path / kind))
        idx.add(corpus())
        made.append(idx)
    yield made
    for idx in made:
        idx.close()


QUESTIONS = ["日本で梅雨がないのは北海道とどこか。", "石油の主成分は何か。", "揚子江気団の勢力"]


@pytest.mark.parametrize("mode", ["hybrid", "sparse", "dense"])
@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_both_stores_rank_alike(both, mode, fusion) -> None:
    edge, memory = both
    for q in QUESTIONS:
        a = edge.search(q, top_k=8, mode=mode, fusion=fusion)
        b = memory.search(q, top_k=8, mode=mode, fusion=fusion)
        assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-4)
        # RRF gives exact ties (ranks 1+5 and 5+1): both break them by the same fixed key
        assert tie_groups(a) == tie_groups(b)
        assert [h.id for h in a] == [h.id for h in b]


def tie_groups(hits) -> list[set[str]]:
    groups: list[set[str]] = []
    last = None
    for h in hits:
        if last is None or abs(h.score - last) > 1e-6 * max(1.0, abs(last)):
            groups.append(set())
        groups[-1].add(h.id)
        last = h.score
    return groups[:-1]  # the last group may be cut by top_k differently


def test_lexical_match_ranks_first(index) -> None:
    texts = {d.id: d.text for d in corpus()}
    target = next(i for i, t in texts.items() if "小笠原諸島" in t)
    assert index.search("小笠原諸島", top_k=3, mode="sparse")[0].doc_id == target
    # DBSF fuses scores, so the lexical model's wide margin carries through.
    assert index.search("小笠原諸島", top_k=3, fusion="dbsf")[0].doc_id == target
    # RRF sees ranks only. The tiny dense model puts the target 4th, and the sparse
    # list past rank 2 is a tie on function words whose order the engine may pick
    # freely; a passage drawing rank 3 there with dense rank 1 outscores the target.
    assert target in [h.doc_id for h in index.search("小笠原諸島", top_k=2, fusion="rrf")]


def test_hybrid_hits_report_each_retriever(index) -> None:
    hits = index.search("石油の主成分は何か。", top_k=10, candidates=50)
    sparse = index.search("石油の主成分は何か。", top_k=50, mode="sparse")
    dense = index.search("石油の主成分は何か。", top_k=50, mode="dense")
    sparse_rank = {h.id: (r, h.score) for r, h in enumerate(sparse, 1)}
    dense_rank = {h.id: (r, h.score) for r, h in enumerate(dense, 1)}
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for hit in hits:
        assert (hit.sparse_rank, hit.sparse_score) == pytest.approx(
            sparse_rank.get(hit.id, (None, None))
        )
        assert (hit.dense_rank, hit.dense_score) == pytest.approx(
            dense_rank.get(hit.id, (None, None))
        )
        # RRF in Qdrant's convention: the top of a list scores 1/k
        expected = sum(1 / (61 + r - 1) for r in (hit.sparse_rank, hit.dense_rank) if r)
        assert hit.score == pytest.approx(expected, rel=1e-5)


def test_rrf_weights_shift_the_fusion(index) -> None:
    q = "石油の主成分は何か。"
    sparse_first = index.search(q, top_k=5, weights=(1.0, 0.0))
    sparse_only = index.search(q, top_k=5, mode="sparse")
    assert [h.id for h in sparse_first] == [h.id for h in sparse_only]
    dense_first = index.search(q, top_k=5, weights=(0.0, 1.0))
    assert [h.id for h in dense_first] == [h.id for h in index.search(q, top_k=5, mode="dense")]


def test_filters_narrow_results(index) -> None:
    hits = index.search("梅雨", top_k=30, filters={"part": "even"})
    assert hits and all(h.metadata["part"] == "even" for h in hits)
    hits = index.search("梅雨", top_k=30, filters={"doc_id": ["doc-01", "doc-02"]}, mode="dense")
    assert sorted(h.doc_id for h in hits) == ["doc-01", "doc-02"]
    hits = index.search("梅雨", top_k=30, filters={"n": {"gte": 5, "lt": 8}}, mode="sparse")
    assert {h.metadata["n"] for h in hits} <= {5, 6, 7} and hits
    assert index.count({"part": "odd"}) == 12
    assert index.count({"n": [1, 2, 3]}) == 3
    assert index.count() == 24


def test_readd_replaces_and_removes_stale_chunks(index, splade) -> None:
    long_text = "\n".join(sample_texts()[30:42])
    index.add([Document(id="long", text=long_text, metadata={"v": 1})])
    first = index.get("long")
    assert len(first) > 1 and [c.chunk_index for c in first] == list(range(len(first)))
    total = index.count()
    # idempotent: the same document again changes nothing
    index.add([Document(id="long", text=long_text, metadata={"v": 1})])
    assert index.count() == total
    assert [c.id for c in index.get("long")] == [c.id for c in first]
    # shorter: leftover chunks go away
    index.add([Document(id="long", text="短くなった文書。", metadata={"v": 2})])
    [only] = index.get("long")
    assert only.text == "短くなった文書。" and only.metadata == {"v": 2}
    assert index.count() == total - len(first) + 1


def test_delete(index) -> None:
    assert index.delete("doc-03") == 1
    assert index.get("doc-03") == []
    assert index.delete("doc-03") == 0
    assert all(h.doc_id != "doc-03" for h in index.search("梅雨", top_k=30))
    assert index.count() == 23


def test_stored_chunk_offsets_point_into_the_document(index) -> None:
    text = "\n".join(sample_texts()[40:52])
    index.add([Document(id="offsets", text=text)])
    for chunk in index.get("offsets"):
        assert text[chunk.start : chunk.end] == chunk.text


def test_edge_persists_across_reopen(tmp_path, splade, dense) -> None:
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "idx")) as idx:
        idx.add(corpus())
        before = {m: idx.search("梅雨前線", top_k=8, mode=m) for m in ("hybrid", "sparse", "dense")}
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "idx")) as idx:
        assert idx.count() == 24
        for mode, hits in before.items():
            again = idx.search("梅雨前線", top_k=8, mode=mode)
            assert [h.score for h in again] == pytest.approx([h.score for h in hits], rel=1e-6)
            assert tie_groups(again) == tie_groups(hits)  # RRF ties may swap order


def test_edge_refuses_an_index_built_for_other_vectors(
    tmp_path, splade, dense, random_dense_path
) -> None:
    from rag_splade import DenseEncoder

    with HybridIndex(splade, dense, EdgeStore(tmp_path / "idx")):
        pass
    same_size = DenseEncoder(str(random_dense_path), device="cpu")
    # the same size, but another model: its fingerprint tells it apart
    with pytest.raises(ValueError, match="another dense model"):
        HybridIndex(splade, same_size, EdgeStore(tmp_path / "idx"))
    wider = OtherSize(same_size, 128)  # a dense encoder with another size
    with pytest.raises(ValueError, match="size 64 in the index but the dense encoder gives 128"):
        HybridIndex(splade, wider, EdgeStore(tmp_path / "idx"))


def test_server_store_refuses_other_vectors(splade, dense) -> None:
    store = QdrantServerStore(location=":memory:", collection="c")
    HybridIndex(splade, dense, store)
    wider = OtherSize(dense, 32)
    with pytest.raises(ValueError, match="size 64 in the index but the dense encoder gives 32"):
        HybridIndex(splade, wider, store)


def test_edge_optimizes_after_bulk_writes(tmp_path, splade, dense) -> None:
    store = EdgeStore(tmp_path / "idx", optimize_after=10)
    with HybridIndex(splade, dense, store) as idx:
        idx.add(corpus()[:5])
        assert store._written == 5  # below the threshold: left for later
        idx.add(corpus()[5:])
        assert store._written == 0  # crossed it: optimised at the end of add()
        assert idx.count() == 24


def test_documents_lists_every_document(index) -> None:
    docs = index.documents()
    assert sorted(docs) == [d.id for d in corpus()]
    info = docs["doc-05"]
    assert info.chunks == 1 and info.complete
    assert info.metadata == {"source": "jsquad", "part": "odd", "n": 5}
    assert sorted(index.documents({"part": "even"})) == [f"doc-{i:02d}" for i in range(0, 24, 2)]


def test_documents_flags_a_document_cut_short(index) -> None:
    from rag_splade.store import ChunkPoint

    long_text = "\n".join(sample_texts()[30:42])
    index.add([Document(id="long", text=long_text, metadata={"v": 1})])
    info = index.documents()["long"]
    assert info.chunks > 1 and info.complete and info.metadata == {"v": 1}
    # a replacement that stopped after its first chunk: chunk 0 carries the new metadata
    first = index.chunk(Document(id="long", text=long_text))[0]
    sparse = index.sparse.encode_documents([first.text])[0]
    dense = index.dense.encode_documents([first.text])[0]
    index.store.upsert(
        [ChunkPoint("long", 0, first.text, first.start, first.end, {"v": 2}, sparse, dense, 3)]
    )
    assert not index.documents()["long"].complete
    assert index.documents()["doc-00"].complete


def test_documents_flags_a_first_write_cut_short(index) -> None:
    long_text = "\n".join(sample_texts()[30:42])
    doc = Document(id="long", text=long_text, metadata={"v": 1})
    chunks = index.chunk(doc)
    assert len(chunks) > 1
    # only the first batch landed: chunk 0 alone, numbered right, the right metadata
    index.add([doc], chunks=[chunks], batch_size=1)
    index.store.delete_stale_chunks("long", keep=1)
    info = index.documents()["long"]
    assert (info.chunks, info.metadata, info.complete) == (1, {"v": 1}, False)


def test_add_takes_the_chunks_it_was_given(index) -> None:
    doc = Document(id="given", text="\n".join(sample_texts()[30:36]))
    chunks = index.chunk(doc)
    index.chunk = None  # type: ignore[method-assign]  # add must not chunk again
    try:
        added = index.add([doc], chunks=[chunks])
    finally:
        del index.chunk
    assert added.chunks == len(chunks) and index.documents()["given"].complete
    assert [c.text for c in index.get("given")] == [c.text for c in chunks]
    other = Document(id="other", text="石炭は燃える石です。")
    with pytest.raises(ValueError, match="one list per document: got 1 for 2 documents"):
        index.add([doc, other], chunks=[chunks])
    with pytest.raises(ValueError, match="chunks for document 'other' must be what"):
        index.add([other], chunks=[chunks])  # another document's chunks: past its end
    mine = index.chunk(other)
    with pytest.raises(ValueError, match="item 0 is Chunk"):
        index.add([other], chunks=[[replace(mine[0], index=1)]])
    with pytest.raises(ValueError, match="has no text to index"):
        index.add([other], chunks=[[]])
    # a chunk must hold its span's text: another text, or none, is refused before any write
    third = Document(id="third", text="石油は燃える。 \n")
    for bad in (
        replace(mine[0], text="全く別の文章"),
        replace(mine[0], text=""),
        replace(index.chunk(third)[0], start=7, end=9, text=" \n"),
    ):
        owner = third if bad.text == " \n" else other
        with pytest.raises(ValueError, match="each the text of its span"):
            index.add([doc, owner], chunks=[chunks, [bad]], batch_size=1)
    assert index.get("other") == [] and index.get("third") == []
    assert [c.text for c in index.get("given")] == [c.text for c in chunks]  # as before


def test_chunk_metadata_is_per_chunk(index) -> None:
    doc = Document("long", "。".join(["石油の主成分は炭化水素です"] * 80) + "。", {"kind": "x"})

    def numbered(document: Document, chunk) -> dict[str, int]:
        return {"part": chunk.index + 1}

    added = index.add([doc], chunk_metadata=numbered)
    assert added.chunks > 1
    chunks = index.get("long")
    assert [c.metadata["part"] for c in chunks] == list(range(1, added.chunks + 1))
    assert all(c.metadata["kind"] == "x" for c in chunks)
    info = index.documents()["long"]
    assert info.complete and info.metadata == {"kind": "x"}
    hits = index.search("石油", top_k=5, filters={"part": 2})
    assert [h.metadata["part"] for h in hits] == [2]
    other = Document("other", "石炭は燃える石です。")
    with pytest.raises(ValueError, match=r"repeats document metadata keys \['kind'\]"):
        index.add([other, doc], chunk_metadata=lambda d, c: {"kind": "y"} if d.metadata else {})
    assert index.get("other") == []  # checked before anything was written
    assert [c.metadata["part"] for c in index.get("long")] == list(range(1, added.chunks + 1))


@pytest.mark.parametrize("weights", [(2.0, 1.0), (0.5, 1.0)])
def test_weighted_rrf_follows_qdrants_formula(index, weights) -> None:
    # Qdrant: a point at 1-based rank n of a source with weight w scores 1 / (n / w + k - 1)
    hits = index.search("石油の主成分は何か。", top_k=10, weights=weights, candidates=50)
    for hit in hits:
        expected = sum(
            1 / (rank / w + 61 - 1)
            for rank, w in ((hit.sparse_rank, weights[0]), (hit.dense_rank, weights[1]))
            if rank
        )
        assert hit.score == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kind", STORES)
def test_float16_sparse_storage(tmp_path, splade, dense, kind) -> None:
    def store(datatype: str):
        if kind == "edge":
            return EdgeStore(tmp_path / "index", sparse_datatype=datatype)
        return QdrantServerStore(location=":memory:", collection=datatype, sparse_datatype=datatype)

    with HybridIndex(splade, dense, store("float16")) as half:
        half.add(corpus())
        hits = half.search("小笠原諸島", top_k=5, mode="sparse", explain=True)
        target = next(d.id for d in corpus() if "小笠原諸島" in d.text)
        assert hits[0].doc_id == target
        for hit in hits:  # explanations use the stored (half-precision) weights: sums still hold
            total = sum(t.contribution for t in hit.explanation.terms)
            assert total == pytest.approx(hit.sparse_score, rel=1e-3)
    with pytest.raises(ValueError, match="sparse_datatype must be one of"):
        EdgeStore(tmp_path / "other", sparse_datatype="int8")


@pytest.mark.parametrize("kind", STORES)
def test_a_passage_pruned_to_nothing_is_still_stored(tmp_path, lexical_splade_path, dense, kind):
    from rag_splade import SpladeEncoder

    # every weight of this model is under 10: the sparse vectors come out empty
    strict = SpladeEncoder(str(lexical_splade_path), device="cpu", document_min_weight=10.0)
    with HybridIndex(strict, dense, make_store(kind, tmp_path)) as idx:
        idx.add(corpus()[:4])
        assert idx.count() == 4
        assert idx.search("小笠原諸島", mode="sparse") == []
        dense_hits = idx.search("小笠原諸島", top_k=4, mode="dense", explain=True)
        assert len(dense_hits) == 4 and all(h.explanation.terms == [] for h in dense_hits)


def test_reopening_with_another_datatype_is_refused(tmp_path, splade, dense) -> None:
    stores = {
        "edge": lambda datatype: EdgeStore(tmp_path / "edge", sparse_datatype=datatype),
        "local": lambda datatype: QdrantServerStore(
            location=str(tmp_path / "local"), collection="c", sparse_datatype=datatype
        ),
    }
    for make in stores.values():
        HybridIndex(splade, dense, make("float16")).close()
        with pytest.raises(ValueError, match="stores sparse weights as float16"):
            HybridIndex(splade, dense, make("float32"))
        HybridIndex(splade, dense, make("float16")).close()  # the same datatype reopens
