"""The embedded index on disk: a creation cut short starts over, damage is found on open
(with what to do), and a full disk refuses writes cleanly while the index stays readable."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import qdrant_edge as qe
from fastapi.testclient import TestClient

from rag_splade import Document, EdgeStore, HybridIndex
from rag_splade.api.app import create_app
from rag_splade.errors import IndexMismatchError
from rag_splade.pipelines.cli import main
from rag_splade.sample import sample_texts
from rag_splade.store import edge
from rag_splade.store.edge import MANIFEST, SHARD_DIR, DiskFullError, IndexDamagedError
from tests.api_support import service_settings, wait_ready


def docs(n: int, start: int = 0) -> list[Document]:
    return [Document(id=f"d{i}", text=sample_texts()[i]) for i in range(start, start + n)]


def test_a_creation_cut_short_starts_over(tmp_path, splade, dense) -> None:
    path = tmp_path / "index"
    path.mkdir()
    (path / edge.CREATING).touch()  # killed after the shard was made, before its manifest
    config = qe.EdgeConfig(vectors={"dense": qe.EdgeVectorParams(4, qe.Distance.Cosine)})
    qe.EdgeShard.create(str(path / SHARD_DIR), config).close()
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        idx.add(docs(3))
        assert idx.count() >= 3
    assert not (path / edge.CREATING).exists()
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        assert idx.count() >= 3


def test_a_shard_without_manifest_or_marker_is_still_refused(tmp_path, splade, dense) -> None:
    path = tmp_path / "index"
    config = qe.EdgeConfig(vectors={"dense": qe.EdgeVectorParams(4, qe.Distance.Cosine)})
    shard = qe.EdgeShard.create(str(path / SHARD_DIR), config)
    shard.update(qe.UpdateOperation.upsert_points([qe.Point(1, {"dense": [1.0, 0, 0, 0]}, {})]))
    shard.close()
    with pytest.raises(ValueError, match="holds data but no"):
        HybridIndex(splade, dense, EdgeStore(path))


def _closed_index(path: Path, splade, dense, batches: int = 3) -> int:
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        for b in range(batches):  # separate writes: several segments on disk
            idx.add(docs(8, start=8 * b))
            idx.optimize()
        return idx.count()


def test_a_clean_close_records_the_count_and_open_checks_it(tmp_path, splade, dense) -> None:
    path = tmp_path / "index"
    points = _closed_index(path, splade, dense)
    manifest = json.loads((path / MANIFEST).read_text())
    assert (manifest["points"], manifest["clean"]) == (points, True)
    manifest["points"] = points + 5  # what was closed is not what is there
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexDamagedError, match=r"holds \d+ points but was closed with") as e:
        EdgeStore(path).open(_spec(splade, dense))
    assert "snapshot restore latest" in str(e.value)


def _spec(splade, dense):
    from rag_splade.store.base import VectorSpec

    return VectorSpec(dense_size=dense.dimension, sparse_vocab_size=splade.vocab_size)


def test_a_lost_segment_is_found_and_the_cli_says_what_to_do(
    tmp_path, splade, dense, monkeypatch, capsys, lexical_splade_path, lexical_dense_path
) -> None:
    path = tmp_path / "index"
    _closed_index(path, splade, dense)
    segments = sorted((path / SHARD_DIR / "segments").iterdir())
    shutil.rmtree(segments[0])  # a partial index would otherwise open silently
    with pytest.raises(IndexDamagedError, match="damaged"):
        HybridIndex(splade, dense, EdgeStore(path))
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(lexical_splade_path))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(lexical_dense_path))
    monkeypatch.delenv("RAG_SPLADE_QDRANT_URL", raising=False)
    assert main(["search", "梅雨", "--index-path", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "snapshot restore" in err and "Traceback" not in err


def _full_disk(monkeypatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(edge.shutil, "disk_usage", lambda p: usage(10**12, 10**12 - 10**6, 10**6))


def test_a_full_disk_refuses_the_write_and_keeps_the_index(
    tmp_path, splade, dense, monkeypatch
) -> None:
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "index")) as idx:
        idx.add(docs(2))
        before = idx.count()
        _full_disk(monkeypatch)
        with pytest.raises(DiskFullError, match=r"nothing of these \d+ points was written"):
            idx.add(docs(4, start=10))
        assert idx.count() == before
        assert idx.search("梅雨", top_k=1)  # still readable


def test_a_full_disk_is_a_507(tmp_path, lexical_splade_path, lexical_dense_path, monkeypatch):
    settings = service_settings(lexical_splade_path, lexical_dense_path, tmp_path / "index")
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        _full_disk(monkeypatch)
        r = c.post("/v1/documents", json={"documents": [{"id": "a", "text": "本文です。"}]})
        assert r.status_code == 507 and r.json()["error"] == "insufficient_storage"
        assert str(tmp_path) not in r.text
        assert c.post("/v1/search", json={"query": "本文"}).status_code == 200


# -- damaged files, found before the engine reads them ---------------------------------------


def _segment_file(path: Path, suffix: str) -> Path:
    [file] = [
        p for p in (path / SHARD_DIR / "segments").rglob("*") if p.as_posix().endswith(suffix)
    ]
    return file


def _garble(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[: min(len(data), 64)] = bytes(255 - b for b in data[:64])
    file.write_bytes(bytes(data))


DAMAGE = {
    # each opened before with the same point count and other vectors, or failed only in use
    "garbled dense vectors": ("vector_storage-dense/vectors/chunk_0.mmap", _garble),
    "zeroed dense vectors": (
        "vector_storage-dense/vectors/chunk_0.mmap",
        lambda f: f.write_bytes(bytes(f.stat().st_size)),
    ),
    "zeroed vector status": (
        "vector_storage-dense/vectors/status.dat",
        lambda f: f.write_bytes(bytes(f.stat().st_size)),
    ),
    "deleted vector status": ("vector_storage-dense/vectors/status.dat", Path.unlink),
    "garbled sparse page": ("vector_storage-sparse/store/page_0.dat", _garble),
    "garbled payload page": ("payload_storage/page_0.dat", _garble),
    "random id tracker": (
        "mutable_id_tracker.mappings",
        lambda f: f.write_bytes(f.read_bytes()[:8] + bytes(range(256))),
    ),
    "truncated tracker": ("payload_storage/tracker.dat", lambda f: f.write_bytes(b"")),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_changed_file_is_refused_at_open(tmp_path, splade, dense, damage) -> None:
    path = tmp_path / "index"
    _closed_index(path, splade, dense, batches=1)
    suffix, change = DAMAGE[damage]
    change(_segment_file(path, suffix))
    with pytest.raises(IndexDamagedError, match=r"damaged or was changed.*differ from") as e:
        EdgeStore(path).open(_spec(splade, dense))
    assert suffix.split("/")[-1] in str(e.value) and "snapshot restore latest" in str(e.value)


def _crashed(path: Path) -> None:
    """What a killed process leaves: the manifest says the index is open."""
    manifest = json.loads((path / MANIFEST).read_text())
    (path / MANIFEST).write_text(json.dumps({**manifest, "clean": False, "checksums": None}))


def test_a_damaged_index_after_a_crash_is_refused_without_killing_the_process(
    tmp_path, splade, dense
) -> None:
    path = tmp_path / "index"
    _closed_index(path, splade, dense, batches=1)
    _crashed(path)
    _, change = DAMAGE["random id tracker"]
    change(_segment_file(path, "mutable_id_tracker.mappings"))  # made the engine abort here
    with pytest.raises(IndexDamagedError, match="not closed cleanly and does not read back"):
        EdgeStore(path).open(_spec(splade, dense))


def test_the_reading_child_has_its_heap_capped(tmp_path, splade, dense, monkeypatch) -> None:
    """A damaged size can make the engine allocate tens of GB before it aborts: the child
    that reads a shard gets a heap limit sized from the shard's disk use. The limit is real:
    far too small, the same sound shard cannot be read; sized as the library sizes it, it is."""
    import resource

    from rag_splade.store import probe

    path = tmp_path / "index"
    points = _closed_index(path, splade, dense, batches=1)
    manifest = json.loads((path / MANIFEST).read_text())
    [(dense_name, dense_size)] = manifest["dense"].items()
    layout = probe.ShardLayout(dense_name, dense_size, manifest["sparse"][0], splade.vocab_size)
    assert probe.check_shard(path / SHARD_DIR, layout).points == points
    limit = probe.memory_limit(path / SHARD_DIR)
    assert probe.MEMORY_FLOOR < limit < probe.MEMORY_FLOOR + 64 * (1 << 30)
    if resource.getrlimit(resource.RLIMIT_DATA)[1] != resource.RLIM_INFINITY:
        pytest.skip("this process already runs under a hard RLIMIT_DATA")
    monkeypatch.setattr(probe, "MEMORY_FLOOR", 1 << 20)
    monkeypatch.setattr(probe, "MEMORY_PER_DISK_BYTE", 0)
    starved = probe.check_shard(path / SHARD_DIR, layout)
    assert starved.points is None and starved.problem


@pytest.mark.parametrize("damage", ["zeroed dense vectors", "garbled payload page"])
def test_a_crash_with_damaged_data_is_found_by_reading_it_whole(
    tmp_path, splade, dense, damage
) -> None:
    path = tmp_path / "index"
    _closed_index(path, splade, dense, batches=1)
    _crashed(path)
    suffix, change = DAMAGE[damage]
    change(_segment_file(path, suffix))
    with pytest.raises(IndexDamagedError, match="does not read back"):
        EdgeStore(path).open(_spec(splade, dense))


def test_after_a_crash_the_index_opens_and_says_so(
    tmp_path, lexical_splade_path, lexical_dense_path, splade, dense
) -> None:
    path = tmp_path / "index"
    points = _closed_index(path, splade, dense, batches=1)
    _crashed(path)
    store = EdgeStore(path)
    store.open(_spec(splade, dense))
    assert store.integrity == "not_closed_cleanly" and store.count() == points
    store.close()  # a clean close records the checksums again
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["clean"] and set(manifest["checksums"]) == {
        p.relative_to(path / SHARD_DIR).as_posix()
        for p in (path / SHARD_DIR).rglob("*")
        if p.is_file()
    }
    _crashed(path)
    settings = service_settings(lexical_splade_path, lexical_dense_path, path)
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        ready = c.get("/readyz").json()
        assert ready["index_integrity"] == "not_closed_cleanly" and str(tmp_path) not in str(ready)
        assert c.get("/v1/stats").json()["index_integrity"] == "not_closed_cleanly"
    with TestClient(create_app(settings)) as c:  # closed cleanly by the service's stop
        wait_ready(c)
        assert c.get("/v1/stats").json()["index_integrity"] == "verified"


def test_an_index_from_before_checksums_opens_and_gets_them(tmp_path, splade, dense) -> None:
    path = tmp_path / "index"
    points = _closed_index(path, splade, dense, batches=1)
    manifest = json.loads((path / MANIFEST).read_text())
    del manifest["checksums"], manifest["dense_fingerprint"]
    (path / MANIFEST).write_text(json.dumps(manifest))
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:  # read whole once, then trusted
        assert idx.count() == points and idx.store.integrity == "verified"
    assert json.loads((path / MANIFEST).read_text())["checksums"]


MANIFESTS = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "garbled bytes": lambda text: text,  # written as bytes that are no UTF-8, below
    "a list": lambda text: "[]",
    "a string": lambda text: '"index"',
    "no dense": lambda text: json.dumps({**json.loads(text), "dense": None}),
    "two dense": lambda text: json.dumps({**json.loads(text), "dense": {"a": 4, "b": 4}}),
    "points true": lambda text: json.dumps({**json.loads(text), "points": True}),
    "checksums a list": lambda text: json.dumps({**json.loads(text), "checksums": [1]}),
    "format 9": lambda text: json.dumps({**json.loads(text), "format": 9}),
}


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_a_damaged_manifest_is_index_damaged(tmp_path, splade, dense, kind, capsys) -> None:
    path = tmp_path / "index"
    _closed_index(path, splade, dense, batches=1)
    text = (path / MANIFEST).read_text()
    changed = MANIFESTS[kind](text)
    if kind == "garbled bytes":
        (path / MANIFEST).write_bytes(b"\xff\xfe" + text.encode()[5:])
    else:
        (path / MANIFEST).write_text(changed)
    with pytest.raises(IndexDamagedError, match=f"its {MANIFEST} "):
        EdgeStore(path).open(_spec(splade, dense))
    assert main(["snapshot", "create", "--index-path", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and MANIFEST in err


def test_search_with_other_models_is_one_line(
    tmp_path, monkeypatch, capsys, splade, dense, random_splade_path, lexical_dense_path
) -> None:
    path = tmp_path / "index"
    _closed_index(path, splade, dense, batches=1)
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(random_splade_path))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(lexical_dense_path))
    monkeypatch.delenv("RAG_SPLADE_QDRANT_URL", raising=False)
    assert main(["search", "梅雨", "--index-path", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "does not fit the encoders" in err and "--reindex" in err
    messages = [ln for ln in err.splitlines() if ln.strip() and "Loading weights" not in ln]
    assert "Traceback" not in err and len(messages) == 1  # the models' progress bars aside


def test_another_dense_model_of_the_same_size_is_refused(
    tmp_path, splade, dense, random_dense
) -> None:
    assert random_dense.dimension == dense.dimension
    path = tmp_path / "index"
    _closed_index(path, splade, dense, batches=1)
    with pytest.raises(IndexMismatchError, match=r"another dense model.*--reindex"):
        HybridIndex(splade, random_dense, EdgeStore(path))
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["dense_fingerprint"] == dense.fingerprint != random_dense.fingerprint
    del manifest["dense_fingerprint"]  # an index from before dense fingerprints: not checked
    (path / MANIFEST).write_text(json.dumps(manifest))
    with HybridIndex(splade, random_dense, EdgeStore(path)) as idx:
        assert idx.count() > 0
