"""Hard negatives mined from an index of the training corpus with the current models.

Each training question is searched sparse-only and dense-only; its negatives are the best
passages of the two lists taken in turns (sparse 1, dense 1, sparse 2, ...) minus:

- its positives (every passage paired with the same question text),
- passages that are the positive's duplicate (same text after NFKC and whitespace),
- passages that contain one of its answers (likely *false* negatives: they answer the
  question too, and training would push them away).

A question with fewer survivors than asked is topped up with random corpus passages that
pass the same guard, so every example has the same number of columns. The result is
cached in a JSON file keyed by the data, both models' fingerprints and the settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rag_splade.checks import check_positive_int
from rag_splade.fingerprint import model_fingerprint
from rag_splade.types import Document

from .data import PairSet, TrainingPair, normalize
from .trainer import TrainingExample

if TYPE_CHECKING:
    from rag_splade.encoders import DenseEncoder, SpladeEncoder

logger = logging.getLogger(__name__)
SEARCH_BATCH = 256  # questions per search_batch call (a progress step)


@dataclass
class MiningStats:
    """What mining kept and skipped, summed over questions."""

    questions: int = 0
    mined: int = 0
    random_fill: int = 0
    skipped_positive: int = 0
    skipped_duplicate: int = 0
    skipped_answer: int = 0


@dataclass
class MinedNegatives:
    """`{query_id: [passage_id, ...]}` (best first) and the mining statistics."""

    negatives: dict[str, list[str]]
    stats: MiningStats = field(default_factory=MiningStats)
    cached: bool = False


def mine_hard_negatives(
    pairs: PairSet,
    sparse: SpladeEncoder,
    dense: DenseEncoder,
    *,
    negatives: int = 4,
    depth: int = 30,
    seed: int = 42,
    cache: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MinedNegatives:
    """Mine `negatives` hard negatives per training question (see the module docstring).

    Args:
        depth: how many passages each retriever returns per question.
        cache: a JSON file: reused when it was mined from the same data, models and
            settings, else (re)written.
        progress: called as `progress(done, total)` after each batch of questions.
    """
    check_positive_int("negatives", negatives)
    check_positive_int("depth", depth)
    if negatives >= len(pairs.corpus):
        raise ValueError(
            f"negatives={negatives} needs a corpus of more than {negatives} passages; "
            f"{pairs.name} has {len(pairs.corpus)}"
        )
    key = _cache_key(pairs, sparse, dense, negatives, depth, seed)
    cache_path = Path(cache) if cache is not None else None
    if cache_path is not None and cache_path.is_file():
        stored = json.loads(cache_path.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            logger.info("hard negatives reused from %s", cache_path)
            return MinedNegatives(stored["negatives"], MiningStats(**stored["stats"]), True)
    questions = _questions(pairs.pairs)
    ranked = _search(pairs, sparse, dense, list(questions), depth, progress)
    rng = random.Random(seed)
    pool = sorted(pairs.corpus)
    stats = MiningStats(questions=len(questions))
    out: dict[str, list[str]] = {}
    for query, group in questions.items():
        keep = _Guard(pairs, group, stats)
        chosen = [pid for pid in ranked[query] if keep(pid)][:negatives]
        stats.mined += len(chosen)
        tries = 0
        while len(chosen) < negatives and tries < 50 * negatives:
            tries += 1
            pid = rng.choice(pool)
            if pid not in chosen and keep(pid, count=False):
                chosen.append(pid)
                stats.random_fill += 1
        if len(chosen) < negatives:
            raise ValueError(
                f"question {group[0].query_id!r}: fewer than {negatives} passages of the corpus "
                "are neither its positive nor contain its answer; lower --negatives"
            )
        for p in group:
            out[p.query_id] = chosen
    result = MinedNegatives(out, stats)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"key": key, "stats": asdict(stats), "negatives": out}
        cache_path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return result


def _questions(pairs: Sequence[TrainingPair]) -> dict[str, list[TrainingPair]]:
    """Pairs grouped by question text (one search per distinct question)."""
    grouped: dict[str, list[TrainingPair]] = {}
    for p in pairs:
        grouped.setdefault(p.query, []).append(p)
    return grouped


class _Guard:
    """Whether a candidate may be a negative of one question."""

    def __init__(self, pairs: PairSet, group: list[TrainingPair], stats: MiningStats) -> None:
        self.corpus = pairs.corpus
        self.positives = {p.passage_id for p in group}
        self.positive_texts = {normalize(p.passage) for p in group}
        self.answers = {normalize(a) for p in group for a in p.answers if normalize(a)}
        self.stats = stats

    def __call__(self, pid: str, *, count: bool = True) -> bool:
        if pid in self.positives:
            self.stats.skipped_positive += count
            return False
        text = normalize(self.corpus[pid])
        if text in self.positive_texts:
            self.stats.skipped_duplicate += count
            return False
        if any(a in text for a in self.answers):
            self.stats.skipped_answer += count
            return False
        return True


def _search(
    pairs: PairSet,
    sparse: SpladeEncoder,
    dense: DenseEncoder,
    queries: list[str],
    depth: int,
    progress: Callable[[int, int], None] | None,
) -> dict[str, list[str]]:
    """Each question's candidate passage ids: sparse and dense lists interleaved."""
    from rag_splade.index import HybridIndex
    from rag_splade.store import EdgeStore

    ranked: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="rag-splade-mine-") as tmp:
        index = HybridIndex(sparse, dense, EdgeStore(Path(tmp) / "index"))
        try:
            index.add(Document(id=pid, text=text) for pid, text in pairs.corpus.items())
            index.optimize()
            top_k = min(depth, len(pairs.corpus))
            for start in range(0, len(queries), SEARCH_BATCH):
                batch = queries[start : start + SEARCH_BATCH]
                lists = [
                    index.search_batch(batch, top_k, mode=mode, explain=False, group_by_document=1)
                    for mode in ("sparse", "dense")
                ]
                for query, s_hits, d_hits in zip(batch, *lists, strict=True):
                    merged: dict[str, None] = {}
                    for i in range(max(len(s_hits), len(d_hits))):
                        for hits in (s_hits, d_hits):
                            if i < len(hits):
                                merged.setdefault(hits[i].doc_id)
                    ranked[query] = list(merged)
                if progress is not None:
                    progress(min(start + SEARCH_BATCH, len(queries)), len(queries))
        finally:
            index.close()
    return ranked


def _cache_key(
    pairs: PairSet,
    sparse: SpladeEncoder,
    dense: DenseEncoder,
    negatives: int,
    depth: int,
    seed: int,
) -> str:
    digest = hashlib.sha256()
    for p in pairs.pairs:
        digest.update("\x00".join((p.query_id, p.query, p.passage_id, *p.answers)).encode())
    for pid in sorted(pairs.corpus):
        digest.update(pid.encode() + b"\x01" + pairs.corpus[pid].encode() + b"\x02")
    settings = json.dumps(
        {
            "sparse": sparse.fingerprint,
            "dense": model_fingerprint(dense.model),
            "negatives": negatives,
            "depth": depth,
            "seed": seed,
        },
        sort_keys=True,
    )
    digest.update(settings.encode())
    return digest.hexdigest()


def training_examples(pairs: PairSet, mined: MinedNegatives | None = None) -> list[TrainingExample]:
    """One `TrainingExample` per pair, with its mined negatives' texts (none without)."""
    out = []
    for p in pairs.pairs:
        ids = mined.negatives[p.query_id] if mined is not None else []
        out.append(TrainingExample(p.query, p.passage, tuple(pairs.corpus[i] for i in ids)))
    return out
