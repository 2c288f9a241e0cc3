"""Held-out splits that never leak: by passage, not by question.

Several questions are often written on one passage (JSQuAD: about 3 per paragraph). A split
by question would train on a paragraph and then test on another question about it, and
the score would measure memorisation. Here a passage and all its questions go to one
side, and passages that are the same text (after NFKC and whitespace) count as one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .data import PairSet, normalize


@dataclass(frozen=True)
class Split:
    """Training pairs, held-out pairs, and how many training pairs were dropped as leaks."""

    train: PairSet
    heldout: PairSet
    dropped: int = 0


def split_by_passage(pairs: PairSet, eval_fraction: float, *, seed: int = 42) -> Split:
    """Hold out about `eval_fraction` of the passages (with every question on them).

    The held-out set keeps the whole corpus as its search corpus (training passages stay
    as distractors, as they would in the index); its questions' own passages are never
    trained on.
    """
    if isinstance(eval_fraction, bool) or not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be a number between 0 and 1, got {eval_fraction!r}")
    groups: dict[str, list[str]] = {}  # normalised text -> passage ids
    for pid in sorted(pairs.passage_ids):
        groups.setdefault(normalize(pairs.corpus[pid]), []).append(pid)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_heldout = max(1, round(len(keys) * eval_fraction))
    if n_heldout >= len(keys):
        raise ValueError(
            f"{pairs.name}: {len(keys)} passages with questions are too few to hold out "
            f"{eval_fraction:.0%} and still train; lower eval_fraction or add data"
        )
    held = {pid for k in keys[:n_heldout] for pid in groups[k]}
    train = [p for p in pairs.pairs if p.passage_id not in held]
    heldout = [p for p in pairs.pairs if p.passage_id in held]
    # Held-out passages stay out of the training corpus too: not even mined as negatives.
    train_corpus = {pid: t for pid, t in pairs.corpus.items() if pid not in held}
    return Split(
        PairSet(f"{pairs.name}/train", train, train_corpus),
        PairSet(f"{pairs.name}/heldout", heldout, dict(pairs.corpus)),
    )


def separate_eval(train: PairSet, heldout: PairSet) -> Split:
    """Use a separate held-out set: training pairs on a passage that the held-out corpus
    also holds (same text) are dropped, and so are those passages from the training corpus."""
    seen = {normalize(t) for t in heldout.corpus.values()}
    kept = [p for p in train.pairs if normalize(p.passage) not in seen]
    if not kept:
        raise ValueError(
            f"every training pair's passage is also in the held-out set {heldout.name!r}: "
            "nothing is left to train on"
        )
    corpus = {pid: t for pid, t in train.corpus.items() if normalize(t) not in seen}
    return Split(PairSet(train.name, kept, corpus), heldout, len(train.pairs) - len(kept))


def leaked_passages(split: Split) -> set[str]:
    """Normalised passage texts that are both trained on and held out (empty when clean)."""
    trained = {normalize(p.passage) for p in split.train.pairs}
    return trained & {normalize(p.passage) for p in split.heldout.pairs}
