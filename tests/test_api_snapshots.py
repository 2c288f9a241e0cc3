"""Snapshots over HTTP (`/v1/admin/snapshots`) and on the command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile

import pytest
from fastapi.testclient import TestClient

from rag_splade import Document, EdgeStore, HybridIndex
from rag_splade.api.app import create_app
from rag_splade.pipelines.cli import main
from rag_splade.sample import sample_texts
from rag_splade.snapshots import EdgeSnapshots
from tests.api_support import api_documents, service_settings, wait_ready


def test_snapshot_round_trip_over_http(lexical_splade_path, lexical_dense_path, tmp_path) -> None:
    settings = service_settings(
        lexical_splade_path, lexical_dense_path, tmp_path / "index", api_key="k"
    )
    key = {"x-api-key": "k"}
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        assert c.post("/v1/documents", json={"documents": api_documents(8)}, headers=key).is_success
        assert c.post("/v1/admin/snapshots").status_code == 401  # behind the key
        made = c.post("/v1/admin/snapshots", headers=key)
        assert made.status_code == 200, made.text
        snapshot = made.json()
        assert (
            "path" not in snapshot
            and snapshot["points"] == c.get("/v1/stats", headers=key).json()["chunks"]
        )
        extra = [{"id": "later", "text": "後から足した文書です。"}]
        assert c.post("/v1/documents", json={"documents": extra}, headers=key).is_success
        listed = c.get("/v1/admin/snapshots", headers=key).json()["snapshots"]
        assert [s["name"] for s in listed] == [snapshot["name"]]
        restored = c.post(f"/v1/admin/snapshots/{snapshot['name']}/restore", headers=key)
        assert restored.status_code == 200, restored.text
        assert restored.json()["previous_index"]
        assert c.get("/readyz").status_code == 200
        assert c.get("/v1/documents/later", headers=key).status_code == 404
        assert c.get("/v1/stats", headers=key).json()["documents"] == 8
        hits = c.post("/v1/search", json={"query": "梅雨"}, headers=key).json()["hits"]
        assert hits  # the reopened index serves
        missing = c.post("/v1/admin/snapshots/nope/restore", headers=key)
        assert missing.status_code == 422 and "no snapshot 'nope'" in missing.text
        # the server's folders are named by what they are, not by their paths
        assert "in the snapshot folder" in missing.text and str(tmp_path) not in missing.text


@pytest.fixture
def cli_index(tmp_path, monkeypatch, lexical_splade_path, lexical_dense_path):
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(lexical_splade_path))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(lexical_dense_path))
    monkeypatch.setenv("RAG_SPLADE_DEVICE", "cpu")
    monkeypatch.delenv("RAG_SPLADE_QDRANT_URL", raising=False)
    monkeypatch.delenv("RAG_SPLADE_SNAPSHOT_DIR", raising=False)
    return tmp_path / "index"


def test_snapshot_commands(cli_index, splade, dense, capsys) -> None:
    with HybridIndex(splade, dense, EdgeStore(cli_index)) as idx:
        idx.add([Document(id=f"d{i}", text=t) for i, t in enumerate(sample_texts()[:6])])
    flags = ["--index-path", str(cli_index)]
    assert main(["snapshot", "list", *flags]) == 0
    assert "no snapshots" in capsys.readouterr().out
    assert main(["snapshot", "create", *flags, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)["created"]
    assert created["points"] == 6
    assert (cli_index.parent / "index.snapshots" / f"{created['name']}.tar").is_file()
    with HybridIndex(splade, dense, EdgeStore(cli_index)) as idx:
        idx.delete("d0")
    assert main(["snapshot", "verify", *flags]) == 0
    assert main(["snapshot", "restore", "latest", *flags]) == 0
    assert "the replaced index was kept at" in capsys.readouterr().out
    with HybridIndex(splade, dense, EdgeStore(cli_index)) as idx:
        assert "d0" in idx.documents()
    assert main(["snapshot", "restore", "nope", *flags]) == 2
    assert "no snapshot 'nope'" in capsys.readouterr().err


def test_restore_refuses_an_index_in_use(cli_index, splade, dense, capsys) -> None:
    with HybridIndex(splade, dense, EdgeStore(cli_index)) as idx:
        idx.add([Document(id="a", text=sample_texts()[0])])
    assert main(["snapshot", "create", "--index-path", str(cli_index)]) == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from rag_splade.store.snapshots import open_for_snapshot\n"
            f"s = open_for_snapshot({str(cli_index)!r})\n"
            "print('open', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        capsys.readouterr()
        assert main(["snapshot", "restore", "--index-path", str(cli_index)]) == 2
        assert "open in another process" in capsys.readouterr().err
        assert not list(cli_index.parent.glob("index.before-restore-*"))
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert main(["snapshot", "restore", "--index-path", str(cli_index)]) == 0


def test_refused_restores_over_http_leave_the_service_serving(
    lexical_splade_path, lexical_dense_path, random_splade, dense, tmp_path, monkeypatch
) -> None:
    from collections import namedtuple

    from rag_splade.store import snapshots as store_snapshots

    settings = service_settings(lexical_splade_path, lexical_dense_path, tmp_path / "index")
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        assert c.post("/v1/documents", json={"documents": api_documents(6)}).is_success
        good = c.post("/v1/admin/snapshots").json()["name"]
        snapshot_dir = tmp_path / "index.snapshots"
        # a snapshot of an index built with another SPLADE model
        other = tmp_path / "other"
        with HybridIndex(random_splade, dense, EdgeStore(other)) as idx:
            idx.add([Document(id="x", text=sample_texts()[0])])
            EdgeSnapshots(other, snapshot_dir).create(idx.store)
        newest = EdgeSnapshots(other, snapshot_dir).list()[-1].name
        r = c.post(f"/v1/admin/snapshots/{newest}/restore")
        assert r.status_code == 422 and "another SPLADE model" in r.text
        # a record that is no object: skipped in the listing, refused by name
        with tarfile.open(snapshot_dir / "broken.tar", "w") as tar:
            member = tarfile.TarInfo("snapshot.json")
            member.size = 6
            tar.addfile(member, io.BytesIO(b"[1, 2]"))
        listed = c.get("/v1/admin/snapshots").json()["snapshots"]
        assert "broken" not in [s["name"] for s in listed] and good in [s["name"] for s in listed]
        r = c.post("/v1/admin/snapshots/broken/restore")
        assert r.status_code == 422 and "not an object" in r.text
        r = c.post(f"/v1/admin/snapshots/{'n' * 300}/restore")
        assert r.status_code == 422 and "1 to 128 letters" in r.text
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr(store_snapshots.shutil, "disk_usage", lambda p: usage(1, 1, 200 << 20))
        r = c.post("/v1/admin/snapshots")
        assert r.status_code == 507 and "only 200 MiB free" in r.text
        monkeypatch.undo()
        assert not list(snapshot_dir.glob("*.partial"))
        assert c.get("/readyz").status_code == 200
        assert c.get("/v1/stats").json()["chunks"] > 1  # still the service's own index
        assert c.post(f"/v1/admin/snapshots/{good}/restore").status_code == 200


def test_cli_restore_and_verify_check_the_models(
    cli_index, random_splade, dense, capsys, tmp_path
) -> None:
    with HybridIndex(random_splade, dense, EdgeStore(cli_index)) as idx:  # other models
        idx.add([Document(id="a", text=sample_texts()[0])])
    flags = ["--index-path", str(cli_index)]
    assert main(["snapshot", "create", *flags]) == 0
    capsys.readouterr()
    for action in ("verify", "restore"):
        assert main(["snapshot", action, *flags]) == 2
        err = capsys.readouterr().err
        messages = [ln for ln in err.splitlines() if ln.strip() and "Loading weights" not in ln]
        assert "another SPLADE model" in err and "Traceback" not in err and len(messages) == 1
    assert not list(cli_index.parent.glob("index.before-restore-*"))
    assert main(["snapshot", "restore", "x" * 300, *flags]) == 2
    assert "1 to 128 letters" in capsys.readouterr().err
