"""Retrieval datasets: BEIR folders, TREC qrels with JSONL files, SQuAD-style JSON.

Every loader returns a `RetrievalDataset`: a corpus of passages, queries, and graded
relevance judgments (qrels). Only queries with at least one relevant passage
(relevance > 0) are kept, in the order of the queries file, as BEIR's own loader does.

SQuAD-style JSON (SQuAD v1.1, JSQuAD) is read as a retrieval task: the corpus is every
paragraph, and a question's one relevant passage is the paragraph it was written on.
Paragraph ids are `"<article title>-<paragraph index>"` (the ids the demo uses); the
title is kept as metadata. JSQuAD contexts start with `"<title> [SEP] "`: that prefix is
removed from the text (the title goes back in front when `include_title` is set).
Questions marked `is_impossible` (SQuAD v2) have no answer in their paragraph and are
skipped.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_splade.checks import check_choice
from rag_splade.squad import read_squad
from rag_splade.types import Document

logger = logging.getLogger(__name__)

FORMATS = ("auto", "beir", "trec", "squad")
TREC_QRELS_NAMES = ("qrels.txt", "qrels.trec")


@dataclass(frozen=True)
class Passage:
    """One corpus entry: id, text, optional title, extra metadata."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrievalDataset:
    """A corpus, queries and qrels (`{query_id: {doc_id: relevance}}`).

    Example:
        >>> ds = load_dataset("rag_splade/data/jsquad_sample.json")  # doctest: +SKIP
        >>> len(ds.corpus), len(ds.queries)  # doctest: +SKIP
        (64, 227)
    """

    name: str
    corpus: dict[str, Passage]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def __post_init__(self) -> None:
        missing = [q for q in self.queries if q not in self.qrels]
        if missing:
            raise ValueError(f"queries without qrels: {missing[:5]} ({len(missing)} in all)")

    def limit(self, queries: int | None = None, corpus: int | None = None) -> RetrievalDataset:
        """A smaller copy: the first `queries` queries and, when `corpus` is given, the
        passages judged for them plus the first `corpus` other passages (in file order).

        Metrics on a reduced corpus are higher than on the full one (fewer distractors):
        use it for quick checks, not for numbers to report.
        """
        for name, value in (("queries", queries), ("corpus", corpus)):
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ValueError(f"limit {name} must be a non-negative int or None, got {value!r}")
        qids = list(self.queries)[:queries] if queries is not None else list(self.queries)
        kept_queries = {q: self.queries[q] for q in qids}
        kept_qrels = {q: dict(self.qrels[q]) for q in qids}
        kept_corpus = self.corpus
        if corpus is not None:
            judged = {d for q in qids for d in kept_qrels[q] if d in self.corpus}
            others = [d for d in self.corpus if d not in judged][:corpus]
            keep = judged | set(others)
            kept_corpus = {d: p for d, p in self.corpus.items() if d in keep}
        return RetrievalDataset(self.name, kept_corpus, kept_queries, kept_qrels)

    def documents(self, include_title: bool = True) -> list[Document]:
        """The corpus as `Document`s to index; the title goes first when `include_title`."""
        docs = []
        for p in self.corpus.values():
            text = f"{p.title}\n{p.text}" if include_title and p.title else p.text
            docs.append(Document(id=p.id, text=text, metadata={"title": p.title, **p.metadata}))
        return docs

    def summary(self) -> dict[str, int | str]:
        """Sizes, for reports."""
        judged = sum(len(r) for r in self.qrels.values())
        return {
            "name": self.name,
            "documents": len(self.corpus),
            "queries": len(self.queries),
            "judgments": judged,
        }


def load_dataset(
    path: str | Path,
    *,
    split: str = "test",
    format: str = "auto",
    qrels: str | Path | None = None,
    name: str | None = None,
) -> RetrievalDataset:
    """Load a retrieval dataset.

    Args:
        path: a BEIR folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`); a
            folder with `corpus.jsonl`, `queries.jsonl` and TREC qrels (`qid 0 docid rel`
            in `qrels/<split>.txt`, `qrels/<split>.trec`, `qrels.txt` or `qrels.trec`, or
            given as `qrels`); a SQuAD-style JSON file; or a folder holding one
            `<split>*.json` SQuAD-style file (e.g. JSQuAD's `valid-v1.3.json`).
        split: qrels split (BEIR, TREC) or file name prefix (SQuAD folder).
        format: `auto` (detect), `beir`, `trec` or `squad`.
        qrels: an explicit qrels file (BEIR TSV or TREC), overriding the folder's.
        name: dataset name for reports (default: the folder or file name).
    """
    check_choice("format", format, FORMATS)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset path {str(path)!r} does not exist")
    if format == "auto":
        format = _detect(path, split, qrels)
    if format == "squad":
        file = path if path.is_file() else _squad_file(path, split)
        return load_squad(file, name=name or _name(path, split))
    if not path.is_dir():
        raise ValueError(f"a {format} dataset is a folder, got the file {str(path)!r}")
    qrels_path = Path(qrels) if qrels is not None else _qrels_file(path, split, format)
    return _load_jsonl_dataset(path, qrels_path, name or _name(path, split))


def _name(path: Path, split: str) -> str:
    return path.stem if path.is_file() else f"{path.name}/{split}"


def _detect(path: Path, split: str, qrels: str | Path | None) -> str:
    if path.is_file():
        if path.suffix == ".json":
            return "squad"
        raise ValueError(
            f"cannot tell the format of the file {str(path)!r}: a dataset is a SQuAD-style "
            ".json file or a folder (BEIR or TREC layout)"
        )
    if qrels is not None:
        return "trec" if _looks_trec(Path(qrels)) else "beir"
    if (path / "qrels" / f"{split}.tsv").exists():
        return "beir"
    if any(p.exists() for p in _trec_candidates(path, split)):
        return "trec"
    if list(path.glob(f"{split}*.json")):
        return "squad"
    raise ValueError(
        f"{str(path)!r} is not a dataset folder this loader knows: expected qrels/{split}.tsv "
        f"(BEIR), qrels/{split}.txt or qrels.txt (TREC), or a {split}*.json SQuAD-style file; "
        "pass format= and qrels= to be explicit"
    )


def _trec_candidates(path: Path, split: str) -> list[Path]:
    return [path / "qrels" / f"{split}.txt", path / "qrels" / f"{split}.trec"] + [
        path / n for n in TREC_QRELS_NAMES
    ]


def _qrels_file(path: Path, split: str, format: str) -> Path:
    candidates = [path / "qrels" / f"{split}.tsv"] if format == "beir" else []
    candidates += _trec_candidates(path, split) if format == "trec" else []
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"no {format} qrels for split {split!r} in {str(path)!r}: looked for "
        + ", ".join(str(c.relative_to(path)) for c in candidates)
    )


def _squad_file(path: Path, split: str) -> Path:
    matches = sorted(path.glob(f"{split}*.json"))
    if len(matches) != 1:
        found = sorted(p.name for p in path.glob("*.json"))
        raise FileNotFoundError(
            f"expected one {split}*.json file in {str(path)!r}, found {len(matches)}; "
            f"JSON files there: {found}"
        )
    return matches[0]


def _looks_trec(path: Path) -> bool:
    with path.open(encoding="utf-8") as f:
        first = f.readline().split()
    return len(first) == 4 and first[0] != "query-id"


# -- BEIR / TREC ----------------------------------------------------------------------------
def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.exists():
        raise FileNotFoundError(f"missing {path.name} in {str(path.parent)!r}")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from e


def _field(row: dict[str, Any], names: tuple[str, ...], where: str) -> str:
    for key in names:
        if key in row and row[key] is not None:
            return str(row[key])
    raise ValueError(f"{where}: needs one of the fields {names}, found {sorted(row)}")


def read_corpus(path: Path) -> dict[str, Passage]:
    """BEIR `corpus.jsonl`: `_id` (or `id`), `text`, optional `title` and `metadata`."""
    corpus: dict[str, Passage] = {}
    for n, row in _read_jsonl(path):
        where = f"{path}:{n}"
        doc_id = _field(row, ("_id", "id", "docid"), where)
        if doc_id in corpus:
            raise ValueError(f"{where}: document id {doc_id!r} appears twice")
        given = row.get("metadata")
        metadata: dict[str, Any] = given if isinstance(given, dict) else {}
        text = _field(row, ("text", "contents"), where)
        corpus[doc_id] = Passage(doc_id, text, str(row.get("title") or ""), metadata)
    return corpus


def read_queries(path: Path) -> dict[str, str]:
    """BEIR `queries.jsonl`: `_id` (or `id`) and `text` (or `query`)."""
    queries: dict[str, str] = {}
    for n, row in _read_jsonl(path):
        where = f"{path}:{n}"
        queries[_field(row, ("_id", "id", "qid"), where)] = _field(row, ("text", "query"), where)
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR TSV qrels (header `query-id corpus-id score`) or TREC (`qid 0 docid rel`)."""
    if not path.exists():
        raise FileNotFoundError(f"qrels file {str(path)!r} does not exist")
    trec = _looks_trec(path)
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        rows = (line.split() for line in f) if trec else csv.reader(f, delimiter="\t")
        for n, row in enumerate(rows, start=1):
            if not row or (not trec and n == 1 and row[0] == "query-id"):
                continue
            if len(row) not in ((4,) if trec else (3, 4)):
                layout = "qid 0 docid relevance" if trec else "query-id corpus-id score"
                raise ValueError(f"{path}:{n}: expected `{layout}`, got {row!r}")
            qid, did, rel = (row[0], row[2], row[3]) if trec else (row[0], row[1], row[-1])
            try:
                qrels.setdefault(qid, {})[did] = int(float(rel))
            except ValueError as e:
                raise ValueError(f"{path}:{n}: relevance must be a number, got {rel!r}") from e
    return qrels


def _load_jsonl_dataset(path: Path, qrels_path: Path, name: str) -> RetrievalDataset:
    corpus = read_corpus(path / "corpus.jsonl")
    all_queries = read_queries(path / "queries.jsonl")
    raw = read_qrels(qrels_path)
    positive = {q: {d: r for d, r in docs.items() if r > 0} for q, docs in raw.items()}
    queries = {q: t for q, t in all_queries.items() if positive.get(q)}
    unknown_q = [q for q in positive if positive[q] and q not in all_queries]
    if unknown_q:
        raise ValueError(
            f"{qrels_path}: {len(unknown_q)} query ids are not in queries.jsonl, "
            f"e.g. {unknown_q[:3]}"
        )
    unknown_d = {d for q in queries for d in raw[q] if d not in corpus}
    if unknown_d:
        logger.warning(
            "%s: %d judged documents are not in corpus.jsonl (e.g. %s); they count as misses",
            qrels_path,
            len(unknown_d),
            sorted(unknown_d)[:3],
        )
    return RetrievalDataset(name, corpus, queries, {q: raw[q] for q in queries})


def write_beir(dataset: RetrievalDataset, path: str | Path, split: str = "test") -> Path:
    """Write `dataset` as a BEIR folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`).

    Converters for hub datasets build a `RetrievalDataset` from their rows and call this;
    `load_dataset(path, split=split)` reads it back.
    """
    root = Path(path)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for p in dataset.corpus.values():
            row: dict[str, Any] = {"_id": p.id, "title": p.title, "text": p.text}
            if p.metadata:
                row["metadata"] = p.metadata
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, text in dataset.queries.items():
            f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with (root / "qrels" / f"{split}.tsv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["query-id", "corpus-id", "score"])
        for qid, docs in dataset.qrels.items():
            writer.writerows([qid, did, rel] for did, rel in docs.items())
    return root


# -- SQuAD ----------------------------------------------------------------------------------
def load_squad(path: str | Path, *, name: str | None = None) -> RetrievalDataset:
    """A SQuAD-style JSON file as retrieval: every paragraph a passage, each question's
    relevant passage its own paragraph (read by `rag_splade.squad.read_squad`)."""
    path = Path(path)
    corpus: dict[str, Passage] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for paragraph in read_squad(path):
        pid = paragraph.id
        corpus[pid] = Passage(pid, paragraph.text, paragraph.title, {"paragraph": paragraph.index})
        for q in paragraph.questions:
            if not q.impossible:
                queries[q.id] = q.question
                qrels[q.id] = {pid: 1}
    return RetrievalDataset(name or path.stem, corpus, queries, qrels)
