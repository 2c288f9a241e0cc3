"""Tenants in the library and the CLI: no path shows one tenant another's passages.

The same document id is written to two tenants with different texts; every read through
one tenant's view (search with every option, get, documents, count, the LLM context,
ingest's bookkeeping) must come back with that tenant's text only."""

from __future__ import annotations

import json

import pytest

from pipelines.ingest import ingest
from rag_splade import Document, HybridIndex
from rag_splade.context import format_context
from rag_splade.sample import sample_texts
from rag_splade.store.edge import EdgeStore
from tests.stores import new_store

TEXTS = sample_texts()
ACME, GLOBEX = TEXTS[:12], TEXTS[12:24]
QUERY = "日本で梅雨がないのは北海道とどこか。"


@pytest.fixture
def index(store_kind, tmp_path, splade, dense, reranker):
    idx = HybridIndex(splade, dense, new_store(store_kind, tmp_path), reranker=reranker)
    for name, texts in (("acme", ACME), ("globex", GLOBEX)):
        idx.tenant(name).add(
            [Document(f"d{i}", t, {"team": name, "n": i}) for i, t in enumerate(texts)]
        )
    yield idx
    idx.close()


def texts_of(hits) -> set[str]:
    return {h.text for h in hits}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"mode": "sparse"},
        {"mode": "dense"},
        {"fusion": "dbsf"},
        {"rerank": True, "rerank_candidates": 30},
        {"group_by_document": 1, "top_k": 20},
        {"offset": 5, "top_k": 10},
        {"filters": {"team": "globex"}},  # a filter naming the other tenant's values
        {"filters": {"doc_id": ["d0", "d1", "d2"]}},
        {"min_score": 0.0, "top_k": 50},
    ],
    ids=lambda o: ",".join(o) or "default",
)
def test_search_sees_one_tenant(index, options) -> None:
    for name, own in (("acme", ACME), ("globex", GLOBEX)):
        view = index.tenant(name)
        hits = view.search(QUERY, **{"top_k": 10, **options})
        assert texts_of(hits) <= set(own)
        for hit in hits:
            assert hit.metadata["team"] == name
            assert hit.explanation is None or hit.explanation.sparse_score >= 0
        if "team" not in options.get("filters", {}) or options["filters"]["team"] == name:
            assert hits or options.get("offset"), f"{name} found nothing: the check is empty"
        assert format_context(hits).count("[") >= len(hits)
        for other in set(TEXTS[:24]) - set(own):
            assert other not in format_context(hits)


def test_batch_and_requests_stay_in_the_tenant(index) -> None:
    results = index.tenant("acme").search_batch([QUERY, "石油の主成分は何か。"], top_k=8)
    assert all(texts_of(hits) <= set(ACME) for hits in results)


def test_reads_and_writes_by_id(index) -> None:
    acme, globex = index.tenant("acme"), index.tenant("globex")
    assert [c.text for c in acme.get("d0")] == [c.text for c in acme.get("d0")]
    assert acme.get("d0")[0].text != globex.get("d0")[0].text
    assert index.get("d0") == []  # the default tenant has nothing
    assert set(acme.documents()) == {f"d{i}" for i in range(12)}
    assert acme.count() == acme.count({"team": "acme"}) and acme.count({"team": "globex"}) == 0
    assert index.count() == 0 and index.count_all_tenants() == acme.count() + globex.count()
    before = globex.count()
    assert acme.delete("d0") > 0
    assert acme.get("d0") == [] and globex.count() == before and globex.get("d0")


def test_the_tenant_cannot_be_named_or_widened(index) -> None:
    acme = index.tenant("acme")
    for filters in ({"tenant": "globex"}, {"tenant": ["acme", "globex"]}, {"tenant.x": 1}):
        with pytest.raises(ValueError, match="'tenant' is reserved"):
            acme.search(QUERY, filters=filters)
        with pytest.raises(ValueError, match="'tenant' is reserved"):
            acme.documents(filters)
    with pytest.raises(ValueError, match="key 'tenant' is reserved"):
        acme.add([Document("x", "本文", {"tenant": "globex"})])
    for bad in ("*", "", "a/b", "../x", "ａｃｍｅ", "x" * 65, " acme"):
        with pytest.raises(ValueError, match="not a tenant id"):
            index.tenant(bad)
    assert index.tenant("acme").count() == 12  # nothing was written by the refusals


def test_a_view_shares_the_store_and_does_not_close_it(index) -> None:
    with index.tenant("acme") as view:
        assert view.store is index.store
    assert index.tenant("acme").count() == 12  # still open
    assert "tenant='acme'" in repr(index.tenant("acme"))


def test_ingest_bookkeeping_is_per_tenant(tmp_path, splade, dense) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"{i}.txt").write_text(TEXTS[i], encoding="utf-8")
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "index")) as idx:
        acme, globex = idx.tenant("acme"), idx.tenant("globex")
        assert ingest([docs], acme).added == 3
        assert ingest([docs], globex).added == 3  # the same ids are new in another tenant
        assert ingest([docs], acme).unchanged == 3
        (docs / "2.txt").unlink()
        report = ingest([docs], acme, delete_missing=True)
        assert report.ids["deleted"] == ["2.txt"]
        assert set(acme.documents()) == {"0.txt", "1.txt"}
        assert set(globex.documents()) == {"0.txt", "1.txt", "2.txt"}  # untouched


def test_an_index_from_before_tenants_opens_as_the_default_tenant(tmp_path, splade, dense) -> None:
    """An index written before tenants: points without a tenant field and no tenant
    payload index (removed here to make one). It opens as the default tenant, gets its
    tenant index, and a new tenant added beside it does not see its documents."""
    import qdrant_edge as qe

    path = tmp_path / "old"
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        idx.add([Document(f"old-{i}", t) for i, t in enumerate(TEXTS[:6])])
        shard = idx.store._require()  # type: ignore[attr-defined]
        shard.update(qe.UpdateOperation.delete_field_index("tenant"))
        assert "tenant" not in idx.store.payload_indexes()
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        assert idx.store.payload_indexes()["tenant"] == "tenant"
        assert set(idx.documents()) == {f"old-{i}" for i in range(6)}
        assert idx.search(QUERY, top_k=3)
        assert idx.tenant("new").count() == 0
        idx.tenant("new").add([Document("old-0", TEXTS[10])])
        assert idx.get("old-0")[0].text == TEXTS[0]


def test_declared_fields_are_checked_when_written(tmp_path, splade, dense) -> None:
    declared = {"year": "integer", "source": "keyword", "when": "datetime", "ok": "bool"}
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "i"), payload_indexes=declared) as idx:
        assert {"metadata.year", "metadata.source", "metadata.when"} <= set(idx.payload_indexes())
        idx.add([Document("a", TEXTS[0], {"year": 2024, "when": "2024-05-01T10:00:00Z"})])
        for when in ("2024-05-01", "2024-05-01 10:00", "2024-05-01T10:00:00.123456789+09:00"):
            idx.add([Document("ok", TEXTS[2], {"when": when})])  # forms Qdrant reads
        assert idx.delete("ok") == 1
        for metadata, field in (
            ({"year": "2024"}, "year"),
            ({"year": True}, "year"),
            ({"source": 3}, "source"),
            ({"when": "yesterday"}, "when"),
            # ISO 8601 that Python reads but Qdrant does not index (a range would miss them)
            ({"when": "20240501"}, "when"),
            ({"when": "2024-W18-3"}, "when"),
            ({"when": "2024-05-01T10"}, "when"),
            ({"when": "2024-05-01T10:00+09:00"}, "when"),
            ({"when": "2024-02-30"}, "when"),  # the form, but no such day
            ({"ok": "yes"}, "ok"),
            ({"year": [2020, "x"]}, "year"),
        ):
            with pytest.raises(ValueError, match=f"document 'b': metadata '{field}' is declared"):
                idx.add([Document("b", TEXTS[1], metadata)])
        assert set(idx.documents()) == {"a"}  # refused whole, nothing written
        assert idx.count({"year": {"gte": 2024}}) == idx.count()


def test_cli_takes_a_tenant(tmp_path, monkeypatch, capsys, lexical_splade_path, lexical_dense_path):
    from rag_splade.pipelines.cli import main

    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(lexical_splade_path))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(lexical_dense_path))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(TEXTS[0], encoding="utf-8")
    index = str(tmp_path / "index")
    assert main(["ingest", str(docs), "--index-path", index, "--tenant", "acme"]) == 0
    assert main(["search", "梅雨", "--index-path", index, "--tenant", "acme", "--json"]) == 0
    found = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert found and all(h["doc_id"] == "a.txt" for h in found)
    assert main(["search", "梅雨", "--index-path", index, "--tenant", "globex"]) == 1
    assert "empty" in capsys.readouterr().err
    assert main(["search", "梅雨", "--index-path", index, "--tenant", "a/b"]) == 2
    assert "not a tenant id" in capsys.readouterr().err
    assert main(["ingest", str(docs), "--index-path", index, "--tenant", "acme", "--reindex"]) == 2
    assert "every tenant" in capsys.readouterr().err
    bad = ["ingest", str(docs), "--index-path", index, "--payload-index", "year:number"]
    assert main(bad) == 2
    assert "not one of" in capsys.readouterr().err


def test_a_snapshot_keeps_the_tenants_apart(tmp_path, splade, dense) -> None:
    from rag_splade.snapshots import EdgeSnapshots

    path = tmp_path / "index"
    snapshots = EdgeSnapshots(path, tmp_path / "snaps")
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        idx.tenant("acme").add([Document("d", TEXTS[0])])
        idx.tenant("globex").add([Document("d", TEXTS[1])])
        made = snapshots.create(idx.store)
        idx.tenant("acme").delete("d")
    snapshots.restore(made.name)
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        assert [c.text for c in idx.tenant("acme").get("d")] == [TEXTS[0]]
        assert [c.text for c in idx.tenant("globex").get("d")] == [TEXTS[1]]
        assert idx.get("d") == [] and idx.store.payload_indexes()["tenant"] == "tenant"


def test_a_llama_index_retriever_over_a_tenant_view(index) -> None:
    pytest.importorskip("llama_index.core")
    from rag_splade.llama_index import SpladeHybridRetriever

    nodes = SpladeHybridRetriever(index.tenant("globex"), similarity_top_k=8).retrieve(QUERY)
    assert nodes and {n.node.get_content() for n in nodes} <= set(GLOBEX)
