"""The one reader of SQuAD-style JSON (SQuAD v1.1/v2.0, JSQuAD): articles of paragraphs,
each paragraph a passage with its questions.

Everything that reads such a file (the bundled sample, ingest, the evaluation, training)
goes through `squad_items`, so titles and ids agree everywhere:

- a paragraph's id is `<article title>-<paragraph index>`; an article without a title
  is `article<article index>`;
- JSQuAD contexts start with `"<title> [SEP] "`: that prefix is removed from the text and
  the title kept in its own field.

Example:
    >>> paragraphs = read_squad("train.json")  # doctest: +SKIP
    >>> paragraphs[0].id, paragraphs[0].questions[0].question  # doctest: +SKIP
    ('東京-0', '日本の首都はどこか。')
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "JSQUAD_SEP",
    "SquadParagraph",
    "SquadProblem",
    "SquadQuestion",
    "read_squad",
    "squad_items",
]

JSQUAD_SEP = " [SEP] "  # JSQuAD contexts start with "<title> [SEP] "


@dataclass(frozen=True)
class SquadQuestion:
    """One question: its id, text, answer texts, and whether it has no answer (SQuAD 2.0)."""

    id: str
    question: str
    answers: tuple[str, ...]
    impossible: bool = False


@dataclass(frozen=True)
class SquadParagraph:
    """One paragraph: `<title>-<index>`, its article title, its text (no title prefix),
    its index in the article, and its questions."""

    id: str
    title: str
    text: str
    index: int
    questions: tuple[SquadQuestion, ...]


@dataclass(frozen=True)
class SquadProblem:
    """A part of the file that is no paragraph: where it is and what is wrong."""

    where: str
    message: str


def squad_items(
    data: Any, *, with_questions: bool = True
) -> Iterator[SquadParagraph | SquadProblem]:
    """Each paragraph of parsed SQuAD JSON (`{"data": [...]}`), in file order, or a problem
    where an article or paragraph is malformed; the caller chooses to stop or go on.
    Without `with_questions` the `qas` are not read (ingest indexes passages only).

    Raises:
        ValueError: `data` has no top-level `data` list.
    """
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise ValueError(
            'not SQuAD-style JSON: expected {"data": [{"title": ..., "paragraphs": '
            '[{"context": ..., "qas": [...]}]}]}'
        )
    for a, article in enumerate(articles):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            yield SquadProblem(f"data[{a}]", "an article without a 'paragraphs' list")
            continue
        title = str(article.get("title") or f"article{a}")
        for n, paragraph in enumerate(article["paragraphs"]):
            where = f"{title}-{n}"
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            if not isinstance(context, str):
                yield SquadProblem(where, "a paragraph without a 'context' string")
                continue
            qas = (paragraph.get("qas") or []) if with_questions else []
            questions = _questions(qas, where)
            if isinstance(questions, SquadProblem):
                yield questions
                continue
            text = context.removeprefix(title + JSQUAD_SEP)
            yield SquadParagraph(where, title, text, n, questions)


def read_squad(path: str | Path) -> list[SquadParagraph]:
    """Every paragraph of a SQuAD-style file, strictly: a malformed part, or two paragraphs
    or questions with one id, is a `ValueError` naming the file and the place."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(path)!r} is not JSON ({e.msg}, line {e.lineno})") from e
    try:
        items = list(squad_items(data))
    except ValueError as e:
        raise ValueError(f"{str(path)!r} is {e}") from e
    paragraphs: list[SquadParagraph] = []
    seen: set[str] = set()
    questions: set[str] = set()
    for item in items:
        if isinstance(item, SquadProblem):
            raise ValueError(f"{path}: {item.where}: {item.message}")
        if item.id in seen:
            raise ValueError(f"{path}: paragraph id {item.id!r} appears twice (duplicate titles?)")
        seen.add(item.id)
        for q in item.questions:
            if q.id in questions:
                raise ValueError(f"{path}: question id {q.id!r} appears twice")
            questions.add(q.id)
        paragraphs.append(item)
    return paragraphs


def _questions(qas: Any, where: str) -> tuple[SquadQuestion, ...] | SquadProblem:
    if not isinstance(qas, list):
        return SquadProblem(where, "'qas' is not a list")
    found = []
    for k, qa in enumerate(qas):
        if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
            return SquadProblem(f"{where} qas[{k}]", "a question without a 'question' string")
        answers = tuple(
            str(x["text"]) for x in qa.get("answers") or [] if isinstance(x, dict) and x.get("text")
        )
        qid = str(qa.get("id", f"{where}-q{k}"))
        found.append(SquadQuestion(qid, qa["question"], answers, bool(qa.get("is_impossible"))))
    return tuple(found)
