"""Ingestion: every input format, incremental re-runs, interruptions, bad inputs, the CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rag_splade import EdgeStore, HybridIndex, SpladeEncoder
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
from tests.stores import new_store

TEXTS = sample_texts()


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal PDF by hand: each page shows its lines in Helvetica (ASCII text only);
    `title` becomes its /Title."""
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
    info = b""
    if title is not None:
        objects.append(b"<< /Title (%s) >>" % title.encode("latin-1"))
        info = b" /Info %d 0 R" % len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        info,
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
    return HybridIndex(splade, dense, new_store(kind, tmp_path))


@pytest.fixture
def index(store_kind, tmp_path, splade, dense):
    idx = make_index(store_kind, tmp_path, splade, dense)
    yield idx
    idx.close()


# -- reading ---------------------------------------------------------------------------------
def test_reads_every_format(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "notes").mkdir(parents=True)
    (root / "a.txt").write_text(TEXTS[0], encoding="utf-8")
    (root / "notes" / "b.md").write_text(f"# 梅雨の話\n\n{TEXTS[1]}", encoding="utf-8")
    (root / ".hidden.txt").write_text("見えない", encoding="utf-8")
    (root / "ignored.xlsx").write_bytes(b"not read")
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
            "squad.json#梅雨-0",
            "squad.json#石油-0",
            "squad.json#石油-1",
        ]
    )
    assert docs["a.txt"].text == TEXTS[0] and docs["a.txt"].metadata == {"source": "a.txt"}
    assert docs["notes/b.md"].metadata == {"source": "notes/b.md", "title": "梅雨の話"}
    assert docs["r1"].metadata == {"lang": "ja", "year": 2020, "source": "rows.jsonl"}
    assert docs["rows.jsonl#2"].text == TEXTS[3]
    assert docs["c1"].text == TEXTS[4] and docs["c2"].metadata["lang"] == "en"
    # the JSQuAD "<title> [SEP] " prefix is dropped
    assert docs["squad.json#梅雨-0"].text == TEXTS[5]
    assert docs["squad.json#石油-1"].metadata == {"title": "石油", "source": "squad.json"}
    pdf = docs["paper.pdf"]
    assert "tsuyu" in pdf.text and pdf.metadata["pages"] == 3
    assert pdf.metadata["title"] == "paper"  # no /Title: the file name
    for number, lines in enumerate(PDF_PAGES, start=1):
        start = pdf.metadata[PAGE_STARTS][number - 1]
        assert pdf.text[start:].startswith(lines[0])

    # record field flags; a file given directly is named by its file name
    options = ReadOptions(id_field="lang", text_field="text", metadata_fields=("id",))
    [first, second] = read_documents([root / "table.csv"], options)
    assert (first.id, first.metadata) == ("ja", {"id": "c1", "source": "table.csv"})
    assert second.id == "en"


def test_pdf_chunks_stay_on_their_page(tmp_path, lexical_splade_path, dense) -> None:
    """No chunk crosses a page: each cites exactly one page, and a page filter finds it."""
    (tmp_path / "paper.pdf").write_bytes(make_pdf(PDF_PAGES))
    [doc] = read_documents([tmp_path / "paper.pdf"])
    pages = [p.strip() for p in doc.text.split("\n\n")]
    for max_length in (24, 512):  # several chunks a page; and one chunk a page at most
        short = SpladeEncoder(
            str(lexical_splade_path), device="cpu", document_max_length=max_length
        )
        with HybridIndex(short, dense, EdgeStore(tmp_path / f"index{max_length}")) as index:
            report = ingest([tmp_path / "paper.pdf"], index)
            assert report.added == 1 and report.chunks >= 3
            chunks = index.get("paper.pdf")
            assert len(chunks) == report.chunks
            assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
            for chunk in chunks:
                [page] = pages_of(chunk)
                assert chunk.metadata["page"] == chunk.metadata["page_end"] == page
                assert chunk.text in pages[page - 1]  # the chunk's text lies on that page
                assert doc.text[chunk.start : chunk.end] == chunk.text  # exact offsets
            assert {pages_of(c)[0] for c in chunks} == {1, 2, 3}
            # the reproduction: page-3 text is found on page 3, not as pages 1-3
            on_three = index.search("third page short", top_k=20, filters={"page": 3})
            assert on_three and all(h.metadata["page"] == 3 for h in on_three)
            assert "The third page is short." in " ".join(h.text for h in on_three)
            on_two = index.search("Oil carbon", top_k=20, filters={"page": 2}, mode="sparse")
            assert on_two and all(h.metadata["page"] == 2 for h in on_two)
            info = index.documents()["paper.pdf"]
            assert info.complete and "page" not in info.metadata and info.metadata["pages"] == 3
            again = ingest([tmp_path / "paper.pdf"], index)  # per-chunk pages are no change
            assert (again.unchanged, again.chunks) == (1, 0)
    assert pages_of(type("Hit", (), {"metadata": {}, "start": 0, "end": 5})()) == []


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (None, "report-2024"),
        ("", "report-2024"),
        ("  ", "report-2024"),
        ("untitled", "report-2024"),
        ("Untitled document", "report-2024"),
        ("Rainy seasons", "Rainy seasons"),
    ],
)
def test_pdf_title_or_file_name(tmp_path, title, expected) -> None:
    (tmp_path / "report-2024.pdf").write_bytes(make_pdf(PDF_PAGES[:1], title=title))
    [doc] = read_documents([tmp_path / "report-2024.pdf"])
    assert doc.metadata["title"] == expected


def test_csv_values_are_typed(tmp_path) -> None:
    (tmp_path / "r.csv").write_text(
        "id,text,rating,score,ok,code,size,note,empty\n"
        "a,一つ目。,4,4.5,true,007,1e3,4 stars,\n"
        "b,二つ目。,-2,.5,FALSE,0,1,nan,\n",
        encoding="utf-8",
    )
    a, b = read_documents([tmp_path / "r.csv"])
    assert a.metadata == {
        "rating": 4,
        "score": 4.5,
        "ok": True,
        "code": "007",  # a leading zero: a code, not a number
        "size": 1000.0,
        "note": "4 stars",
        "empty": "",
        "source": "r.csv",
    }
    assert (b.metadata["rating"], b.metadata["score"], b.metadata["ok"]) == (-2, 0.5, False)
    assert (b.metadata["code"], b.metadata["note"]) == (0, "nan")
    assert a.id == "a" and a.text == "一つ目。"
    [plain, _] = read_documents([tmp_path / "r.csv"], ReadOptions(infer_types=False))
    assert plain.metadata["rating"] == "4" and plain.metadata["ok"] == "true"


def test_typed_csv_answers_range_filters(tmp_path, index) -> None:
    """The issue's reproduction: `rating >= 4` found nothing while ratings were strings."""
    rows = "".join(f'r{i},"{TEXTS[i]}",{i}\n' for i in range(6))
    (tmp_path / "r.csv").write_text("id,text,rating\n" + rows, encoding="utf-8")
    ingest([tmp_path / "r.csv"], index)
    found = index.search(TEXTS[4][:20], top_k=10, filters={"rating": {"gte": 4}})
    assert sorted(h.doc_id for h in found) == ["r4", "r5"]


def test_squad_ids_are_namespaced_by_file(tmp_path, index) -> None:
    for name in ("a.json", "b.json"):  # the same title in two files
        squad = {"data": [{"title": "梅雨", "paragraphs": [{"context": TEXTS[0]}]}]}
        (tmp_path / name).write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    report = ingest([tmp_path / "a.json", tmp_path / "b.json"], index)
    assert (report.added, report.failed) == (2, 0)
    assert sorted(index.documents()) == ["a.json#梅雨-0", "b.json#梅雨-0"]


def test_docx_and_html(tmp_path) -> None:
    docx = pytest.importorskip("docx")
    pytest.importorskip("bs4")
    word = docx.Document()
    word.core_properties.title = "梅雨の資料"
    word.add_heading("梅雨", level=1)
    word.add_paragraph(TEXTS[0])
    table = word.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "地域", "北海道"
    word.add_paragraph(TEXTS[1])
    word.save(str(tmp_path / "notes.docx"))
    html = (
        "<html><head><meta charset='shift_jis'><title>石油 - 百科</title>"
        "<style>p { color: red }</style><script>var x = '見えない';</script></head>"
        f"<body><h1>石油</h1><p>{TEXTS[2][:10]}<b>{TEXTS[2][10:20]}</b>{TEXTS[2][20:]}</p>"
        "<ul><li>一</li><li>二</li></ul></body></html>"
    )
    (tmp_path / "page.html").write_bytes(html.encode("shift_jis"))
    (tmp_path / "broken.docx").write_bytes(b"PK not really a zip")
    problems: list[Problem] = []
    docs = {d.id: d for d in read_documents([tmp_path], on_problem=problems.append)}
    assert sorted(docs) == ["notes.docx", "page.html"]
    word_doc = docs["notes.docx"]
    assert word_doc.metadata == {"source": "notes.docx", "title": "梅雨の資料"}
    assert word_doc.text.splitlines() == ["梅雨", TEXTS[0], "地域\t北海道", TEXTS[1]]
    page = docs["page.html"]
    assert page.metadata == {"source": "page.html", "title": "石油 - 百科"}
    assert page.text.splitlines() == ["石油", "", TEXTS[2], "", "一", "", "二"]
    assert "見えない" not in page.text and "color" not in page.text
    [broken] = problems
    assert broken.kind == "failed" and "not a readable .docx" in broken.reason


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


def test_cli_checks_inputs_before_loading_models(tmp_path, cli_env, capsys, monkeypatch) -> None:
    def no_models(*args, **kwargs):
        raise AssertionError("models loaded before the inputs were checked")

    monkeypatch.setattr(HybridIndex, "from_settings", no_models)
    (tmp_path / "table.xlsx").write_bytes(b"x")
    argv = ["ingest", str(tmp_path / "nowhere"), str(tmp_path / "table.xlsx")]
    assert main([*argv, "--index-path", str(tmp_path / "i")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"rag-splade ingest: no such file or folder: {tmp_path / 'nowhere'}"
    assert err[1].startswith(f"rag-splade ingest: {tmp_path / 'table.xlsx'}: unsupported file")
    assert not (tmp_path / "i").exists()


def test_cli_delete_missing_not_applied_is_said_once(tmp_path, cli_env, capsys) -> None:
    root = tmp_path / "docs"
    write_corpus(root, 2)
    (root / "bad.txt").write_bytes(b"\xff\xff")
    argv = [str(root), "--index-path", str(tmp_path / "i"), "--no-progress", "--delete-missing"]
    assert main(["ingest", *argv]) == 1
    out = capsys.readouterr()
    both = out.out + out.err
    assert both.count("--delete-missing not applied") == 1
    assert "--delete-missing not applied: 1 input failed to read" in out.out
    assert "1 failed input:" in out.out and "inputs failed" not in both


def test_cli_dry_run_writes_nothing(tmp_path, cli_env, capsys) -> None:
    root = tmp_path / "docs"
    write_corpus(root, 3)
    index_path = tmp_path / "i"
    base = [str(root), "--index-path", str(index_path), "--no-progress"]
    assert main(["ingest", *base, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"No index at {index_path} yet" in out and "dry run: nothing written" in out
    assert "3 to add, 0 to replace, 0 unchanged, 0 to delete" in out
    assert "would add: doc1.txt, doc2.txt, sub/doc0.txt" in out
    assert not index_path.exists()  # no index created

    assert main(["ingest", *base]) == 0
    capsys.readouterr()
    (root / "doc1.txt").write_text(TEXTS[40], encoding="utf-8")  # changed
    (root / "doc2.txt").unlink()  # gone
    (root / "new.txt").write_text(TEXTS[41], encoding="utf-8")
    with HybridIndex.from_settings(_settings(index_path)) as index:
        before = (index.count(), {k: v.metadata for k, v in index.documents().items()})
    assert main(["ingest", *base, "--dry-run", "--delete-missing"]) == 0
    out = capsys.readouterr().out
    assert "1 to add, 1 to replace, 1 unchanged, 1 to delete, 0 failed" in out
    assert "would add: new.txt" in out and "would replace: doc1.txt" in out
    assert "would delete: doc2.txt" in out
    with HybridIndex.from_settings(_settings(index_path)) as index:
        after = (index.count(), {k: v.metadata for k, v in index.documents().items()})
    assert after == before


def test_cli_reindex_rebuilds_with_other_models(
    tmp_path, cli_env, capsys, monkeypatch, lexical_splade_path
) -> None:
    from rag_splade.testing import build_dense_model

    root = tmp_path / "docs"
    write_corpus(root, 3)
    index_path = tmp_path / "i"
    base = [str(root), "--index-path", str(index_path), "--no-progress"]
    assert main(["ingest", *base]) == 0
    capsys.readouterr()
    # another dense model, of another dimension: the old index does not fit it
    other = build_dense_model(tmp_path / "dense32", hidden=32, tokenizer_dir=lexical_splade_path)
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(other))
    assert main(["ingest", *base]) == 2
    assert "does not fit the encoders" in capsys.readouterr().err

    (root / "bad.txt").write_bytes(b"\xff")  # a failed input: nothing is deleted
    assert main(["ingest", *base, "--reindex"]) == 1
    assert "--reindex not applied: 1 input failed to read; nothing deleted" in (
        capsys.readouterr().err
    )
    assert (index_path / "rag_splade.json").exists()
    (root / "bad.txt").unlink()

    assert main(["ingest", *base, "--reindex", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"--reindex: would delete the index at {index_path}" in out
    assert "3 to add" in out

    assert main(["ingest", *base, "--reindex"]) == 0
    out = capsys.readouterr().out
    said, summary = out.index("--reindex: deleting the index"), out.index("3 added")
    assert said < summary and f"dense={other}" in out
    with HybridIndex.from_settings(_settings(index_path)) as index:
        assert index.dense.dimension == 32 and len(index.documents()) == 3


def test_drop_index_deletes_only_an_index(tmp_path) -> None:
    from rag_splade import Settings
    from rag_splade.factories import drop_index, index_exists

    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "thesis.txt").write_text("大事な原稿。", encoding="utf-8")
    settings = Settings(index_path=folder)
    assert not index_exists(settings)
    with pytest.raises(ValueError, match="not an index this library wrote"):
        drop_index(settings)
    assert (folder / "thesis.txt").exists()
    drop_index(Settings(index_path=tmp_path / "nothing-here"))  # nothing there: nothing to do


def test_the_plan_alone_decides_without_an_index(tmp_path: Path) -> None:
    """IngestPlan is the dry run: new and edited documents come out, unchanged ones and
    duplicate ids do not, and what the inputs lost is named for deletion."""
    from pipelines.ingest.plan import IngestPlan, content_hash
    from rag_splade import Document
    from rag_splade.index import DocumentInfo

    root = tmp_path / "in"
    root.mkdir()
    (root / "same.txt").write_text(TEXTS[0], encoding="utf-8")
    (root / "edited.txt").write_text(TEXTS[1], encoding="utf-8")
    (root / "twice.jsonl").write_text(
        '{"id": "same.txt", "text": "別の本文"}\n{"id": "new", "text": "新しい"}\n',
        encoding="utf-8",
    )
    same = Document("same.txt", TEXTS[0], {"source": "same.txt"})

    def stored(doc_id: str, digest: str) -> DocumentInfo:
        return DocumentInfo(doc_id, chunks=1, complete=True, metadata={"content_hash": digest})

    existing = {
        "same.txt": stored("same.txt", content_hash(same)),
        "edited.txt": stored("edited.txt", "old"),
        "gone.txt": stored("gone.txt", "x"),
    }
    problems, unchanged = [], []
    plan = IngestPlan([root], existing, note=problems.append, on_unchanged=unchanged.append)
    planned = [(p.document.id, p.replaces) for p in plan]
    assert planned == [("edited.txt", True), ("new", False)]
    assert all("content_hash" in p.document.metadata for p in IngestPlan(
        [root / "twice.jsonl"], {}, note=lambda p: None, on_unchanged=lambda i: None
    ))  # fmt: skip
    assert unchanged == ["same.txt"]
    assert [p.doc_id for p in problems] == ["same.txt"] and "duplicate" in problems[0].reason
    assert plan.deletions() == ["gone.txt"]
