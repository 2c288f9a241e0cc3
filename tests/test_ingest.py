"""Ingestion: every input format, incremental re-runs, interruptions, bad inputs, the CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rag_splade import EdgeStore, HybridIndex, QdrantServerStore, SpladeEncoder
from rag_splade.pipelines.cli import main
from rag_splade.pipelines.ingest import (
    CONTENT_HASH,
    PAGE_STARTS,
    Problem,
    ReadError,
    ReadOptions,
    add_arguments,
    ingest,
    pages_of,
    read_documents,
    run,
)
from rag_splade.sample import sample_texts

TEXTS = sample_texts()


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal PDF by hand: each page shows its lines in Helvetica (ASCII text only)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, written once the pages are known
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for lines in pages:
        ops = ["BT /F1 12 Tf 14 TL 72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % len(objects)
        )
        kids.append(len(objects))
    refs = b" ".join(b"%d 0 R" % k for k in kids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


PDF_PAGES = [
    ["Rain falls in June in most of Japan.", "The season is called tsuyu."],
    ["Oil is mostly carbon (and hydrogen).", "Salmon swim up rivers to spawn."],
    ["The third page is short."],
]


def write_corpus(root: Path, n: int = 5) -> dict[str, str]:
    """`n` text files under `root` (one in a sub-folder); returns id -> text."""
    files = {}
    for i in range(n):
        rel = f"sub/doc{i}.txt" if i == 0 else f"doc{i}.txt"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TEXTS[i], encoding="utf-8")
        files[rel] = TEXTS[i]
    return files


def make_index(kind: str, tmp_path: Path, splade, dense) -> HybridIndex:
    if kind == "edge":
        return HybridIndex(splade, dense, EdgeStore(tmp_path / "index"))
    return HybridIndex(splade, dense, QdrantServerStore(location=":memory:", collection="t"))


@pytest.fixture(params=["edge", "memory"])
def index(request, tmp_path, splade, dense):
    idx = make_index(request.param, tmp_path, splade, dense)
    yield idx
    idx.close()


# -- reading ---------------------------------------------------------------------------------
def test_reads_every_format(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "notes").mkdir(parents=True)
    (root / "a.txt").write_text(TEXTS[0], encoding="utf-8")
    (root / "notes" / "b.md").write_text(f"# 梅雨の話\n\n{TEXTS[1]}", encoding="utf-8")
    (root / ".hidden.txt").write_text("見えない", encoding="utf-8")
    (root / "ignored.docx").write_bytes(b"not read")
    records = [
        {"id": "r1", "text": TEXTS[2], "lang": "ja", "year": 2020},
        {"text": TEXTS[3], "lang": "ja"},  # no id: file#line
    ]
    (root / "rows.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n", encoding="utf-8"
    )
    (root / "table.csv").write_text(
        f'id,text,lang\nc1,"{TEXTS[4]}",ja\nc2,二行目の本文。,en\n', encoding="utf-8"
    )
    squad = {
        "data": [
            {"title": "梅雨", "paragraphs": [{"context": f"梅雨 [SEP] {TEXTS[5]}"}]},
            {"title": "石油", "paragraphs": [{"context": TEXTS[6]}, {"context": TEXTS[7]}]},
        ]
    }
    (root / "squad.json").write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    (root / "paper.pdf").write_bytes(make_pdf(PDF_PAGES))

    docs = {d.id: d for d in read_documents([root])}
    assert sorted(docs) == sorted(
        [
            "a.txt",
            "notes/b.md",
            "paper.pdf",
            "r1",
            "rows.jsonl#2",
            "c1",
            "c2",
            "梅雨-0",
            "石油-0",
            "石油-1",
        ]
    )
    assert docs["a.txt"].text == TEXTS[0] and docs["a.txt"].metadata == {"source": "a.txt"}
    assert docs["notes/b.md"].metadata == {"source": "notes/b.md", "title": "梅雨の話"}
    assert docs["r1"].metadata == {"lang": "ja", "year": 2020, "source": "rows.jsonl"}
    assert docs["rows.jsonl#2"].text == TEXTS[3]
    assert docs["c1"].text == TEXTS[4] and docs["c2"].metadata["lang"] == "en"
    assert docs["梅雨-0"].text == TEXTS[5]  # the JSQuAD "<title> [SEP] " prefix is dropped
    assert docs["石油-1"].metadata == {"title": "石油", "source": "squad.json"}
    pdf = docs["paper.pdf"]
    assert "tsuyu" in pdf.text and pdf.metadata["pages"] == 3
    for number, lines in enumerate(PDF_PAGES, start=1):
        start = pdf.metadata[PAGE_STARTS][number - 1]
        assert pdf.text[start:].startswith(lines[0])

    # record field flags; a file given directly is named by its file name
    options = ReadOptions(id_field="lang", text_field="text", metadata_fields=("id",))
    [first, second] = read_documents([root / "table.csv"], options)
    assert (first.id, first.metadata) == ("ja", {"id": "c1", "source": "table.csv"})
    assert second.id == "en"


def test_pdf_chunks_know_their_pages(tmp_path, lexical_splade_path, dense) -> None:
    (tmp_path / "paper.pdf").write_bytes(make_pdf(PDF_PAGES))
    short = SpladeEncoder(str(lexical_splade_path), device="cpu", document_max_length=24)
    with HybridIndex(short, dense, EdgeStore(tmp_path / "index")) as index:
        report = ingest([tmp_path / "paper.pdf"], index)
        assert report.added == 1 and report.chunks > 2
        [doc] = read_documents([tmp_path / "paper.pdf"])
        pages = [p.strip() for p in doc.text.split("\n\n")]
        chunks = index.get("paper.pdf")
        assert len(chunks) == report.chunks
        for chunk in chunks:
            found = pages_of(chunk)
            assert found and all(1 <= p <= 3 for p in found)
            # the chunk's text lies on exactly the pages it names
            assert chunk.text.split("\n")[0] in pages[found[0] - 1]
            assert chunk.text.split("\n")[-1] in pages[found[-1] - 1]
        assert {p for c in chunks for p in pages_of(c)} == {1, 2, 3}
        for chunk in chunks:  # each chunk's own metadata names its first and last page
            assert [chunk.metadata["page"], chunk.metadata["page_end"]] == [
                pages_of(chunk)[0],
                pages_of(chunk)[-1],
            ]
        on_two = index.search("Oil carbon", top_k=20, filters={"page": 2}, mode="sparse")
        assert on_two and all(h.metadata["page"] == 2 for h in on_two)
        info = index.documents()["paper.pdf"]
        assert info.complete and "page" not in info.metadata and info.metadata["pages"] == 3
        again = ingest([tmp_path / "paper.pdf"], index)  # per-chunk pages are no change
        assert (again.unchanged, again.chunks) == (1, 0)
    assert pages_of(type("Hit", (), {"metadata": {}, "start": 0, "end": 5})()) == []


# -- incremental runs ------------------------------------------------------------------------
def test_rerun_skips_replaces_and_deletes(tmp_path, index) -> None:
    root = tmp_path / "docs"
    files = write_corpus(root, 5)
    first = ingest([root], index, batch_size=2)
    assert (first.added, first.replaced, first.unchanged, first.failed) == (5, 0, 0, 0)
    assert first.chunks == index.count() and first.ok
    stored = index.documents()
    assert sorted(stored) == sorted(files)
    info = stored["sub/doc0.txt"]
    assert info.complete and len(info.metadata[CONTENT_HASH]) == 64

    again = ingest([root], index)
    assert (again.added, again.replaced, again.unchanged, again.chunks) == (0, 0, 5, 0)

    (root / "doc1.txt").write_text(TEXTS[10], encoding="utf-8")  # changed
    (root / "doc2.txt").unlink()  # gone
    (root / "doc9.txt").write_text(TEXTS[11], encoding="utf-8")  # new
    third = ingest([root], index, delete_missing=True)
    assert (third.added, third.replaced, third.unchanged, third.deleted) == (1, 1, 3, 1)
    assert sorted(index.documents()) == sorted(
        ["sub/doc0.txt", "doc1.txt", "doc3.txt", "doc4.txt", "doc9.txt"]
    )
    assert index.get("doc2.txt") == []
    assert index.get("doc1.txt")[0].text.startswith(TEXTS[10][:10])
    assert index.count() == sum(i.chunks for i in index.documents().values())

    forced = ingest([root], index, force=True)
    assert (forced.replaced, forced.unchanged) == (5, 0)


def test_each_document_is_chunked_once(tmp_path, index, monkeypatch) -> None:
    root = tmp_path / "docs"
    write_corpus(root, 4)
    (root / "long.txt").write_text("\n".join(TEXTS[30:42]), encoding="utf-8")
    calls: list[str] = []
    real_chunk = index.chunk

    def counting_chunk(doc):
        calls.append(doc.id)
        return real_chunk(doc)

    monkeypatch.setattr(index, "chunk", counting_chunk)
    report = ingest([root], index, batch_size=3)
    assert report.added == 5 and index.documents()["long.txt"].chunks > 1
    assert sorted(calls) == sorted(index.documents())  # once each, not again inside add


def test_metadata_change_is_a_change(tmp_path, index) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "x", "text": TEXTS[0], "tag": "a"}), encoding="utf-8")
    assert ingest([rows], index).added == 1
    rows.write_text(json.dumps({"id": "x", "text": TEXTS[0], "tag": "b"}), encoding="utf-8")
    assert ingest([rows], index).replaced == 1
    assert index.get("x")[0].metadata["tag"] == "b"


@pytest.fixture
def interrupted(tmp_path, index, monkeypatch):
    """An index where a run over 6 documents stopped at its third commit."""
    from rag_splade.pipelines.ingest import IngestReport

    root = tmp_path / "docs"
    write_corpus(root, 6)
    real_add = index.add
    calls = []

    def flaky_add(docs, **kwargs):
        calls.append([d.id for d in docs])
        if len(calls) == 3:
            raise RuntimeError("power cut")
        return real_add(docs, **kwargs)

    monkeypatch.setattr(index, "add", flaky_add)
    report = IngestReport()
    with pytest.raises(RuntimeError, match="power cut"):
        ingest([root], index, batch_size=1, report=report)
    monkeypatch.setattr(index, "add", real_add)
    return root, report, calls


def test_interrupted_run_keeps_what_was_committed(interrupted, index) -> None:
    root, report, calls = interrupted
    assert report.interrupted and not report.ok and report.added == 2
    written = calls[0] + calls[1]
    assert sorted(index.documents()) == sorted(written)

    resumed = ingest([root], index, batch_size=1)
    assert (resumed.unchanged, resumed.added, resumed.replaced) == (2, 4, 0)
    docs = index.documents()
    assert len(docs) == 6 and all(d.complete for d in docs.values())
    assert index.count() == sum(d.chunks for d in docs.values())  # no duplicate chunks


def test_a_document_cut_short_is_written_again(tmp_path, index) -> None:
    path = tmp_path / "long.txt"
    path.write_text("\n".join(TEXTS[30:42]), encoding="utf-8")
    ingest([path], index)
    n = index.documents()["long.txt"].chunks
    assert n > 1
    index.store.delete_stale_chunks("long.txt", keep=1)  # as if only chunk 0 got written
    report = ingest([path], index)
    assert (report.replaced, report.unchanged) == (1, 0)
    assert index.documents()["long.txt"].chunks == n


# -- bad inputs ------------------------------------------------------------------------------
def bad_folder(root: Path) -> None:
    root.mkdir()
    (root / "good.txt").write_text(TEXTS[0], encoding="utf-8")
    (root / "latin1.txt").write_bytes("café".encode("latin-1"))
    (root / "link.txt").symlink_to(root / "missing.txt")  # unreadable
    (root / "empty.txt").write_text("", encoding="utf-8")
    (root / "blank.md").write_text("  \n\n", encoding="utf-8")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (root / "rows.jsonl").write_text(
        "\n".join(
            [
                json.dumps({"id": "ok", "text": TEXTS[1]}, ensure_ascii=False),
                "{not json",
                json.dumps({"id": "no-text", "body": "x"}),
                json.dumps({"id": "blank", "text": ""}),
            ]
        ),
        encoding="utf-8",
    )


def test_bad_inputs_are_reported_and_skipped(tmp_path, index) -> None:
    root = tmp_path / "in"
    bad_folder(root)
    problems: list[Problem] = []
    report = ingest([root, tmp_path / "nowhere"], index, on_problem=problems.append)
    assert (report.added, report.failed, report.empty) == (2, 6, 3)
    assert sorted(index.documents()) == ["good.txt", "ok"]
    failed = {p.where: p.reason for p in problems if p.kind == "failed"}
    assert "not valid utf-8" in failed[str(root / "latin1.txt")]
    assert "cannot read" in failed[str(root / "link.txt")]
    assert "not a readable PDF" in failed[str(root / "broken.pdf")]
    assert "invalid JSON" in failed[f"{root / 'rows.jsonl'} (line 2)"]
    assert "'text' field" in failed[f"{root / 'rows.jsonl'} (line 3)"]
    assert "no such file" in failed[str(tmp_path / "nowhere")]
    empty = {p.where for p in problems if p.kind == "empty"}
    assert empty == {
        str(root / "empty.txt"),
        str(root / "blank.md"),
        f"{root / 'rows.jsonl'} (line 4)",
    }
    assert not report.ok


def test_failed_inputs_block_delete_missing(tmp_path, index) -> None:
    root = tmp_path / "docs"
    write_corpus(root, 3)
    ingest([root], index)
    (root / "doc1.txt").write_bytes(b"\xff\xfe broken now")
    report = ingest([root], index, delete_missing=True, on_problem=lambda p: None)
    assert report.deletion_skipped and report.deleted == 0 and report.failed == 1
    assert "doc1.txt" in index.documents()  # not lost to a read error


def test_read_documents_raises_on_failure_by_default(tmp_path) -> None:
    (tmp_path / "x.txt").write_bytes(b"\xff")
    with pytest.raises(ReadError, match=r"x\.txt: not valid utf-8"):
        list(read_documents([tmp_path]))
    [doc] = read_documents([tmp_path], ReadOptions(encoding="latin-1"))
    assert doc.text == "ÿ"


def test_duplicate_ids_across_files_fail(tmp_path, index) -> None:
    (tmp_path / "in").mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / "in" / name).write_text(json.dumps({"id": "same", "text": TEXTS[0]}))
    problems = []
    report = ingest([tmp_path], index, on_problem=problems.append)  # the Edge index is skipped
    assert report.added == 1 and report.failed == 1
    assert "duplicate document id 'same'" in problems[0].reason


# -- command line ----------------------------------------------------------------------------
@pytest.fixture
def cli_env(monkeypatch, lexical_splade_path, lexical_dense_path):
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(lexical_splade_path))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(lexical_dense_path))
    monkeypatch.delenv("RAG_SPLADE_QDRANT_URL", raising=False)


def test_cli_end_to_end(tmp_path, cli_env, capsys) -> None:
    root = tmp_path / "docs"
    write_corpus(root, 3)
    (root / "rows.csv").write_text(f'key,body,lang,skip\nk1,"{TEXTS[20]}",ja,x\n', encoding="utf-8")
    index_path = tmp_path / "index"
    argv = [str(root), "--index-path", str(index_path), "--device", "cpu", "--batch-size", "2"]
    flags = ["--id-field", "key", "--text-field", "body", "--metadata-fields", "lang"]
    assert main(["ingest", *argv, *flags]) == 0
    out = capsys.readouterr()
    assert "4 added, 0 replaced, 0 unchanged (skipped), 0 deleted, 0 failed" in out.out
    assert "chunks/s" in out.out and "ingest" in out.err  # the progress bar

    # wired as a sub-command, as `rag-splade ingest` does
    parser = argparse.ArgumentParser(prog="rag-splade")
    add_arguments(parser.add_subparsers(dest="command").add_parser("ingest"))
    args = parser.parse_args(["ingest", *argv, *flags, "--no-progress", "--delete-missing"])
    assert run(args) == 0
    assert "0 added, 0 replaced, 4 unchanged (skipped)" in capsys.readouterr().out

    (root / "doc1.txt").write_text(TEXTS[21], encoding="utf-8")  # tokenized in a worker
    assert main(["ingest", *argv, *flags, "--no-progress", "--tokenizer-workers", "1"]) == 0
    assert "0 added, 1 replaced, 3 unchanged (skipped)" in capsys.readouterr().out

    (root / "bad.txt").write_bytes(b"\xff\xff")
    assert main(["ingest", *argv, *flags, "--no-progress"]) == 1
    out = capsys.readouterr()
    assert f"FAILED: {root / 'bad.txt'}: not valid utf-8" in out.err
    assert "1 failed" in out.out

    with HybridIndex.from_settings(_settings(index_path)) as index:
        assert index.get("k1")[0].metadata["lang"] == "ja"
        assert "skip" not in index.get("k1")[0].metadata
        assert sorted(index.documents()) == ["doc1.txt", "doc2.txt", "k1", "sub/doc0.txt"]


def _settings(index_path: Path):
    from rag_splade import Settings

    return Settings(index_path=index_path, device="cpu")


def test_cli_interrupt_exits_130_and_resumes(tmp_path, cli_env, capsys, monkeypatch) -> None:
    root = tmp_path / "docs"
    write_corpus(root, 4)
    argv = [str(root), "--index-path", str(tmp_path / "i"), "--batch-size", "1", "--no-progress"]
    real_add = HybridIndex.add
    calls = []

    def interrupting_add(self, docs, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_add(self, docs, **kwargs)

    monkeypatch.setattr(HybridIndex, "add", interrupting_add)
    assert main(["ingest", *argv]) == 130
    assert "interrupted: what was written is kept" in capsys.readouterr().out
    monkeypatch.setattr(HybridIndex, "add", real_add)
    assert main(["ingest", *argv]) == 0
    assert "3 added, 0 replaced, 1 unchanged" in capsys.readouterr().out


def test_cli_rejects_bad_settings(tmp_path, cli_env, capsys) -> None:
    assert (
        main(["ingest", str(tmp_path), "--device", "gpu0", "--index-path", str(tmp_path / "i")])
        == 2
    )
    assert "gpu0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ingest", str(tmp_path), "--batch-size", "0"])
    with pytest.raises(SystemExit):
        main(["ingest", str(tmp_path), "--tokenizer-workers", "-1"])
    assert "must be an integer >= 0, got '-1'" in capsys.readouterr().err
