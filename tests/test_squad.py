"""One SQuAD reader: the sample, ingest, the evaluation and training read a file the same
way (ids, titles, the JSQuAD title prefix), and malformed parts are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.evaluate.datasets import load_squad
from pipelines.ingest import ReadError, read_documents
from rag_splade.sample import read_squad_paragraphs
from rag_splade.squad import JSQUAD_SEP, SquadProblem, read_squad, squad_items
from rag_splade.training.data import read_squad_pairs

DATA = {
    "data": [
        {
            "title": "梅雨",
            "paragraphs": [
                {
                    "context": "梅雨 [SEP] 北海道には梅雨がない。",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "梅雨がないのは？",
                            "answers": [{"text": "北海道"}],
                        },
                        {"id": "q2", "question": "答えのない問い", "is_impossible": True},
                    ],
                },
                {"context": "小笠原諸島にも梅雨はない。", "qas": []},
            ],
        },
        {"paragraphs": [{"context": "題のない記事。", "qas": [{"id": "q3", "question": "題?"}]}]},
    ]
}


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(DATA, ensure_ascii=False), encoding="utf-8")
    return path


def test_every_reader_agrees(squad_file: Path) -> None:
    expected = {
        "梅雨-0": ("梅雨", "北海道には梅雨がない。"),
        "梅雨-1": ("梅雨", "小笠原諸島にも梅雨はない。"),
        "article1-0": ("article1", "題のない記事。"),
    }
    read = {p.id: (p.title, p.text) for p in read_squad(squad_file)}
    sample = {p.id: (p.title, p.text) for p in read_squad_paragraphs(squad_file)}
    dataset = load_squad(squad_file)
    evaluation = {pid: (p.title, p.text) for pid, p in dataset.corpus.items()}
    ingested = {
        d.id.removeprefix("train.json#"): (d.metadata["title"], d.text)
        for d in read_documents([squad_file])
    }
    pairs = read_squad_pairs(squad_file, include_title=False)
    assert read == sample == evaluation == ingested == expected
    assert pairs.corpus == {pid: text for pid, (_, text) in expected.items()}
    # the unanswerable question is skipped wherever questions are read
    assert set(dataset.queries) == {"q1", "q3"} and dataset.qrels["q1"] == {"梅雨-0": 1}
    assert [(p.query_id, p.passage_id, p.answers) for p in pairs.pairs] == [
        ("q1", "梅雨-0", ("北海道",)),
        ("q3", "article1-0", ()),
    ]
    assert JSQUAD_SEP not in "".join(text for _, text in expected.values())


def test_malformed_parts_are_named(tmp_path: Path) -> None:
    data = {"data": [{"title": "a", "paragraphs": [{"context": 3}]}, "junk"]}
    items = list(squad_items(data))
    assert items == [
        SquadProblem("a-0", "a paragraph without a 'context' string"),
        SquadProblem("data[1]", "an article without a 'paragraphs' list"),
    ]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.json: a-0: a paragraph without a 'context'"):
        read_squad(path)
    with pytest.raises(ValueError, match="not SQuAD-style JSON"):
        list(squad_items({"rows": []}))
    questions = {"data": [{"title": "t", "paragraphs": [{"context": "x", "qas": [{"id": 1}]}]}]}
    assert list(squad_items(questions)) == [
        SquadProblem("t-0 qas[0]", "a question without a 'question' string")
    ]
    # ingest reads passages only: a malformed question does not cost the paragraph
    assert [p.id for p in squad_items(questions, with_questions=False)] == ["t-0"]  # type: ignore[union-attr]


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    twice = {"data": [{"title": "t", "paragraphs": [{"context": "x"}]}] * 2}
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(twice), encoding="utf-8")
    with pytest.raises(ValueError, match="paragraph id 't-0' appears twice"):
        read_squad(path)
    with pytest.raises(ReadError, match=r"not SQuAD-style JSON.*or a list of records"):
        bad = tmp_path / "rows.json"
        bad.write_text('{"rows": 1}', encoding="utf-8")
        list(read_documents([bad]))
