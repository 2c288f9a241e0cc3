"""The bundled JSQuAD sample (64 Wikipedia paragraphs with their questions, CC BY-SA 4.0):
the one loader that the demo, the tests, the benchmark and the notebooks share.

Example:
    >>> docs = sample_documents()
    >>> len(docs), docs[0].metadata["source"]
    (64, 'JSQuAD (CC BY-SA 4.0)')
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rag_splade.squad import read_squad
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
    """The paragraphs of a JSQuAD-style file, in file order; the bundled sample by default
    (read by `rag_splade.squad.read_squad`: the title in its own field, ids `<title>-<n>`)."""
    return [
        SampleParagraph(p.id, p.title, p.text, tuple(q.question for q in p.questions))
        for p in read_squad(path or sample_path())
    ]


def sample_texts() -> list[str]:
    """The bundled paragraphs' texts."""
    return [p.text for p in read_squad_paragraphs()]


def sample_documents() -> list[Document]:
    """One `Document` per bundled paragraph, with its title and source in the metadata."""
    return [
        Document(id=p.id, text=p.text, metadata={"title": p.title, "source": SAMPLE_SOURCE})
        for p in read_squad_paragraphs()
    ]
