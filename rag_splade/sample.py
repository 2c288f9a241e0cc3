"""The bundled JSQuAD sample (64 Wikipedia paragraphs with their questions, CC BY-SA 4.0):
the one loader that the demo, the tests, the benchmark and the notebooks share.

Example:
    >>> docs = sample_documents()
    >>> len(docs), docs[0].metadata["source"]
    (64, 'JSQuAD (CC BY-SA 4.0)')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rag_splade.types import Document

SAMPLE_SOURCE = "JSQuAD (CC BY-SA 4.0)"


@dataclass(frozen=True)
class SampleParagraph:
    """One paragraph: its id, article title, text (title prefix removed) and questions."""

    id: str
    title: str
    text: str
    questions: tuple[str, ...]


def sample_path() -> Path:
    """The bundled file itself (SQuAD JSON), for readers that take a path."""
    return Path(str(resources.files("rag_splade").joinpath("data/jsquad_sample.json")))


def read_squad_paragraphs(path: str | Path | None = None) -> list[SampleParagraph]:
    """The paragraphs of a JSQuAD-style file, in file order; the bundled sample by default.

    JSQuAD contexts read `"<title> [SEP] <text>"`; the title moves to its own field.
    """
    raw: dict[str, Any] = json.loads(Path(path or sample_path()).read_text("utf-8"))
    paragraphs = []
    for article in raw["data"]:
        for n, paragraph in enumerate(article["paragraphs"]):
            title, sep, text = paragraph["context"].partition(" [SEP] ")
            if not sep:
                title, text = article.get("title", ""), paragraph["context"]
            questions = tuple(qa["question"] for qa in paragraph.get("qas", []))
            paragraphs.append(SampleParagraph(f"{article['title']}-{n}", title, text, questions))
    return paragraphs


def sample_texts() -> list[str]:
    """The bundled paragraphs' texts."""
    return [p.text for p in read_squad_paragraphs()]


def sample_documents() -> list[Document]:
    """One `Document` per bundled paragraph, with its title and source in the metadata."""
    return [
        Document(id=p.id, text=p.text, metadata={"title": p.title, "source": SAMPLE_SOURCE})
        for p in read_squad_paragraphs()
    ]
