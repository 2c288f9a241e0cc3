"""Properties of every explanation over JSQuAD questions and paragraphs, with a vocabulary
the size of japanese-splade-v2's (32,768 pieces).

The bundled sample (64 paragraphs, 227 questions) always runs; the full JSQuAD valid set
runs too when RAG_SPLADE_JSQUAD_DIR points at it.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from rag_splade import DenseEncoder, Document, EdgeStore, HybridIndex, SpladeEncoder
from rag_splade.context import format_context
from rag_splade.explain import explain_match, explain_query
from rag_splade.sample import read_squad_paragraphs
from rag_splade.testing import build_dense_model, build_splade_model, build_tokenizer
from rag_splade.text.mecab import normalize_with_offsets, segment
from rag_splade.types import Explanation, SearchHit, SparseVector, TermMatch

JSQUAD_DIR = Path(os.environ.get("RAG_SPLADE_JSQUAD_DIR", "/nonexistent"))
VOCAB_SIZE = 32768


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


@pytest.fixture(scope="module")
def big_splade(tmp_path_factory: pytest.TempPathFactory) -> SpladeEncoder:
    """Lexical, 32,768 pieces; only the 200 commonest words of the sample are one piece, so
    that many words split into pieces and some share only some of them (partial matches)."""
    where = tmp_path_factory.mktemp("big")
    build_tokenizer(where / "tokenizer", max_words=200, vocab_size=VOCAB_SIZE)
    path = build_splade_model(where / "splade", lexical=True, tokenizer_dir=where / "tokenizer")
    encoder = SpladeEncoder(str(path), device="cpu")
    assert encoder.vocab_size == VOCAB_SIZE and len(encoder.tokenizer) == VOCAB_SIZE
    return encoder


@pytest.fixture(scope="module")
def big_dense(tmp_path_factory: pytest.TempPathFactory, big_splade: SpladeEncoder) -> DenseEncoder:
    path = build_dense_model(
        tmp_path_factory.mktemp("big") / "dense", tokenizer_dir=big_splade.model_name
    )
    return DenseEncoder(str(path), device="cpu")


class Checker:
    """The explanation contract, checked on one (query, passage) pair at a time."""

    def __init__(self, vocab: SpladeEncoder) -> None:
        self.vocab = vocab
        self.kinds: Counter[str] = Counter()

    def piece_ids(self, pieces: list[str]) -> list[int]:
        return list(self.vocab.tokenizer.convert_tokens_to_ids(pieces))

    def passage_ids(self, text: str) -> set[int]:
        """Every vocabulary id the passage's words produce (what it literally says)."""
        seen = normalize_with_offsets(text)[0] if self.vocab.normalizes_text else text
        return {i for w in segment(seen) for i in self.vocab.word_piece_ids(w.surface)}

    def match(self, query: SparseVector, doc: SparseVector, text: str, e: Explanation) -> None:
        shared = set(query.indices.tolist()) & set(doc.indices.tolist())
        total = sum(t.contribution for t in e.terms)
        assert total == pytest.approx(query.dot(doc), rel=1e-5, abs=1e-5)
        assert e.sparse_score == pytest.approx(query.dot(doc), rel=1e-5, abs=1e-5)
        # every shared id is claimed by exactly one match
        claimed = Counter(i for t in e.terms for i in self.piece_ids(t.matched_pieces))
        assert claimed == Counter(shared)
        said = self.passage_ids(text)
        for t in e.terms:
            self.kinds[t.kind] += 1
            pieces = set(self.piece_ids(t.pieces))
            matched = set(self.piece_ids(t.matched_pieces))
            assert matched and matched <= pieces & shared
            if t.kind == "expansion":
                assert not t.literal and t.spans == [] and t.pieces == [t.term]
                assert not matched & said, f"{t.term!r} is said by the passage"
                continue
            assert t.literal and t.spans
            assert t.pieces == self.vocab.terms(self.vocab.word_piece_ids(t.term))
            if t.kind == "whole":  # no piece of the word that is not shared
                assert pieces <= shared
                assert all(spells(text, span, t.term) for span in t.spans), t
            else:
                assert t.kind == "partial" and not pieces <= shared
                for a, b in t.spans:
                    assert spells(text, (a, b), t.term) or spells_matched_pieces(nfkc(text[a:b]), t)

    def context(self, hits: list[SearchHit]) -> None:
        """一致語 lists only whole matches, 関連語 only expansions; one header per hit."""
        lines = format_context(hits).split("\n")
        headers = [line for line in lines if re.match(r"\[\d+\] 出典: ", line)]
        assert len(headers) == len(hits)
        for hit, header in zip(hits, headers, strict=True):
            assert hit.explanation is not None
            kind = {t.term: t.kind for t in hit.explanation.terms}
            for part in header.split(" / ")[1:]:
                label, terms = part.split(": ", 1)
                want = {"一致語": "whole", "関連語": "expansion"}[label]
                assert {kind[term] for term in terms.split(", ")} == {want}

    def query(self, text: str, vector: SparseVector) -> None:
        terms = explain_query(self.vocab, text, vector, top_k=None)
        words = {w.surface for w in segment(nfkc(text))}
        assert {t.term for t in terms if t.expansion}.isdisjoint(
            {t.term for t in terms if not t.expansion}
        )
        own = {i for w in words for i in self.vocab.word_piece_ids(w)}
        for t in terms:
            if t.expansion:  # a term the query never says (maybe a ## piece), flagged
                assert t.spans == [] and t.pieces == [t.term]
                assert not set(self.piece_ids(t.pieces)) & own
            else:  # a word of the query, pieces merged: never a bare ## piece
                assert t.term in words and not t.term.startswith("##")
                assert t.spans and all(spells(text, span, t.term) for span in t.spans)
            self.kinds["query " + ("expansion" if t.expansion else "word")] += 1
            self.kinds["query ## expansion"] += t.expansion and t.term.startswith("##")
        weights = [t.weight for t in terms]
        assert weights == sorted(weights, reverse=True)


def spells(text: str, span: tuple[int, int], word: str) -> bool:
    """Whether `text[span]` NFKC-equals `word`; or, where the word begins or ends inside one
    character that NFKC expands (℃ -> °C, MeCab words ° and C), covers that character."""
    seen = text[span[0] : span[1]]
    if nfkc(seen) == word:
        return True
    return bool(seen) and word in nfkc(seen) and max(len(nfkc(seen[0])), len(nfkc(seen[-1]))) > 1


def spells_matched_pieces(seen: str, t: TermMatch) -> bool:
    """Whether `seen` is a run of adjacent pieces of the word, all of them matched."""
    bare = [p.removeprefix("##") for p in t.pieces]
    for start in range(len(bare)):
        run = ""
        for piece, bare_piece in zip(t.pieces[start:], bare[start:], strict=True):
            if piece not in t.matched_pieces:
                break
            run += bare_piece
            if run == seen:
                return True
    return False


def check_pairs(
    vocab: SpladeEncoder,
    texts: list[str],
    pairs: list[tuple[str, int]],
    encoded: dict[str, SparseVector] | None = None,
) -> Checker:
    """Check every query term of the questions, and each (question, text index) pair;
    `encoded` holds vectors already encoded (texts as documents, questions as queries)."""
    checker = Checker(vocab)
    questions = sorted({q for q, _ in pairs})
    if encoded is None:
        docs = vocab.encode_documents(texts)
        queries = dict(zip(questions, vocab.encode_queries(questions), strict=True))
    else:
        docs, queries = [encoded[t] for t in texts], {q: encoded[q] for q in questions}
    for question, vector in queries.items():
        checker.query(question, vector)
    for question, n in pairs:
        e = explain_match(vocab, queries[question], docs[n], texts[n])
        checker.match(queries[question], docs[n], texts[n], e)
    return checker


@pytest.fixture(scope="module")
def sample_vectors(big_splade: SpladeEncoder) -> dict[str, SparseVector]:
    """The sample's paragraphs (as documents) and questions (as queries), encoded once."""
    paragraphs = read_squad_paragraphs()
    texts = [p.text for p in paragraphs]
    questions = sorted({q for p in paragraphs for q in p.questions})
    documents = dict(zip(texts, big_splade.encode_documents(texts), strict=True))
    return documents | dict(zip(questions, big_splade.encode_queries(questions), strict=True))


def test_explanations_of_the_sample(
    big_splade: SpladeEncoder, sample_vectors: dict[str, SparseVector]
) -> None:
    paragraphs = read_squad_paragraphs()
    # every question with its own paragraph and three others
    pairs = [
        (q, (n + m * (k + 7)) % len(paragraphs))
        for n, p in enumerate(paragraphs)
        for k, q in enumerate(p.questions)
        for m in range(4)
    ]
    checker = check_pairs(big_splade, [p.text for p in paragraphs], pairs, sample_vectors)
    # the sample exercises every kind of match and of query term
    assert min(checker.kinds[k] for k in ("whole", "partial", "expansion")) > 50, checker.kinds
    assert checker.kinds["query word"] > 500 and checker.kinds["query expansion"] > 100


def test_hits_sum_to_qdrant_scores_and_contexts_tell_the_truth(
    big_splade: SpladeEncoder,
    big_dense: DenseEncoder,
    sample_vectors: dict[str, SparseVector],
    tmp_path: Path,
) -> None:
    checker = Checker(big_splade)
    paragraphs = read_squad_paragraphs()
    questions = [p.questions[0] for p in paragraphs]
    stored = dict(sample_vectors)  # chunk text -> its vector, as the store holds it
    with HybridIndex(big_splade, big_dense, EdgeStore(tmp_path / "i")) as index:
        index.add([Document(id=p.id, text=p.text) for p in paragraphs])
        for question in questions:
            hits = index.search(question, top_k=5, mode="sparse", explain=True)
            assert hits
            new = [h.text for h in hits if h.text not in stored]
            stored |= dict(zip(new, big_splade.encode_documents(new), strict=True))
            for hit in hits:
                e = hit.explanation
                assert e is not None and hit.sparse_score is not None
                total = sum(t.contribution for t in e.terms)
                assert total == pytest.approx(hit.sparse_score, rel=1e-4, abs=1e-5)  # Qdrant's
                checker.match(sample_vectors[question], stored[hit.text], hit.text, e)
            checker.context(hits)
    assert checker.kinds["partial"] > 0 and checker.kinds["whole"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not JSQUAD_DIR.is_dir(), reason="set RAG_SPLADE_JSQUAD_DIR to JSQuAD v1.3")
def test_explanations_of_jsquad_valid(big_splade: SpladeEncoder) -> None:
    paragraphs = read_squad_paragraphs(JSQUAD_DIR / "valid-v1.3.json")
    # a few hundred questions (the first of every 4th paragraph) with their own paragraph,
    # and every paragraph with one of those questions
    asked = [(p.questions[0], n) for n, p in enumerate(paragraphs) if n % 4 == 0 and p.questions]
    pairs = asked + [(asked[n % len(asked)][0], n) for n in range(len(paragraphs))]
    checker = check_pairs(big_splade, [p.text for p in paragraphs], pairs)
    assert min(checker.kinds[k] for k in ("whole", "partial", "expansion")) > 100
