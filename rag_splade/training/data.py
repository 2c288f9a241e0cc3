"""Training pairs: (query, positive passage), read from JSONL, CSV or SQuAD-style JSON, or
built from a retrieval dataset's qrels (BEIR folders).

A `PairSet` holds the pairs and the corpus they come from (every passage, also those no
question points to: they are the pool hard negatives are mined from). Passage ids are the
file's own where it has them (SQuAD: `<title>-<paragraph>`, as the evaluation reads them),
else a hash of the passage text, so the same passage written twice is one passage.
"""

from __future__ import annotations

import csv
import hashlib
import json
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_splade.squad import read_squad

PAIR_FORMATS = ("jsonl", "csv", "squad")


@dataclass(frozen=True)
class TrainingPair:
    """One question and the passage that answers it (`answers`: answer strings, if known)."""

    query_id: str
    query: str
    passage_id: str
    passage: str
    answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class PairSet:
    """Pairs plus the corpus (`{passage_id: text}`) they were drawn from.

    Example:
        >>> ps = read_pairs("rag_splade/data/jsquad_sample.json")  # doctest: +SKIP
        >>> len(ps.pairs), len(ps.corpus)  # doctest: +SKIP
        (227, 64)
    """

    name: str
    pairs: list[TrainingPair]
    corpus: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for p in self.pairs:
            if self.corpus.get(p.passage_id, p.passage) != p.passage:
                raise ValueError(
                    f"passage {p.passage_id!r} has two different texts (pair {p.query_id!r})"
                )
            self.corpus.setdefault(p.passage_id, p.passage)

    @property
    def passage_ids(self) -> set[str]:
        return {p.passage_id for p in self.pairs}

    def summary(self) -> dict[str, int | str]:
        return {
            "name": self.name,
            "pairs": len(self.pairs),
            "passages_with_pairs": len(self.passage_ids),
            "corpus": len(self.corpus),
        }

    @classmethod
    def from_qrels(
        cls,
        name: str,
        corpus: Mapping[str, str],
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
    ) -> PairSet:
        """Pairs from a retrieval dataset: one per (query, passage judged relevant > 0)."""
        pairs = []
        for qid, query in queries.items():
            for pid, rel in qrels.get(qid, {}).items():
                if rel > 0 and pid in corpus:
                    pairs.append(TrainingPair(f"{qid}|{pid}", query, pid, corpus[pid]))
        if not pairs:
            raise ValueError(f"{name}: no query has a relevant passage in the corpus")
        return cls(name, pairs, dict(corpus))


def normalize(text: str) -> str:
    """NFKC with whitespace collapsed: what makes two passages the same passage."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def text_id(text: str) -> str:
    return "p-" + hashlib.sha1(normalize(text).encode("utf-8")).hexdigest()[:16]


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".json":
        return "squad"
    raise ValueError(
        f"cannot tell the format of {str(path)!r} from its suffix: use .jsonl, .csv/.tsv or a "
        f"SQuAD-style .json, or name the format ({', '.join(PAIR_FORMATS)})"
    )


def read_pairs(
    path: str | Path,
    *,
    format: str = "auto",
    query_field: str = "query",
    passage_field: str = "passage",
    answer_field: str | None = None,
    include_title: bool = True,
) -> PairSet:
    """Read (query, passage) pairs from one file.

    Args:
        format: `auto` (from the suffix), `jsonl`, `csv` (`.tsv`: tab-separated) or `squad`.
        query_field, passage_field: the columns (JSONL keys) of the question and passage.
        answer_field: an optional column holding the answer (a string or, in JSONL, a list
            of strings); mining skips candidates that contain it.
        include_title: SQuAD passages are `title + "\\n" + text`, as the evaluation
            indexes them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training data {str(path)!r} is not a file")
    if format == "auto":
        format = detect_format(path)
    if format == "squad":
        return read_squad_pairs(path, include_title=include_title)
    if format not in PAIR_FORMATS:
        raise ValueError(
            f"format must be one of ('auto', {', '.join(PAIR_FORMATS)}), got {format!r}"
        )
    rows = _jsonl_rows(path) if format == "jsonl" else _csv_rows(path)
    pairs = [_pair(row, f"{path}:{n}", query_field, passage_field, answer_field) for n, row in rows]
    if not pairs:
        raise ValueError(f"{str(path)!r} holds no pairs")
    return PairSet(path.stem, pairs)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{n}: each line must be a JSON object")
            yield n, row


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8", newline="") as f:
        yield from enumerate(csv.DictReader(f, delimiter=delimiter), start=2)


def _pair(row: dict[str, Any], where: str, qf: str, pf: str, af: str | None) -> TrainingPair:
    values = []
    for name in (qf, pf):
        value = row.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"{where}: field {name!r} must be a non-empty string, got {value!r:.60} "
                f"(fields there: {sorted(row)}; choose with --query-field/--passage-field)"
            )
        values.append(value)
    answers: tuple[str, ...] = ()
    if af is not None:
        raw = row.get(af)
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(a, str) and a.strip() for a in items):
            raise ValueError(f"{where}: answer field {af!r} must hold text, got {raw!r:.60}")
        answers = tuple(str(a) for a in items)
    query, passage = values
    return TrainingPair(where, query, text_id(passage), passage, answers)


def read_squad_pairs(path: str | Path, *, include_title: bool = True) -> PairSet:
    """A SQuAD-style file (SQuAD v1.1, JSQuAD): each question with its paragraph and answers.

    Read by `rag_splade.squad.read_squad` (ids `<title>-<n>`, as the evaluation reads them);
    unanswerable questions are skipped.
    """
    path = Path(path)
    corpus: dict[str, str] = {}
    pairs: list[TrainingPair] = []
    for paragraph in read_squad(path):
        text = f"{paragraph.title}\n{paragraph.text}" if include_title else paragraph.text
        corpus[paragraph.id] = text
        for q in paragraph.questions:
            if not q.impossible:
                pairs.append(TrainingPair(q.id, q.question, paragraph.id, text, q.answers))
    if not pairs:
        raise ValueError(f"{str(path)!r} holds no answerable questions")
    return PairSet(path.stem, pairs, corpus)


def unique_queries(pairs: Iterable[TrainingPair]) -> dict[str, str]:
    return {p.query_id: p.query for p in pairs}
