"""SPLADE fine-tuning on a user's own (question, passage) pairs (extra `train`).

Data (`read_pairs`, `PairSet.from_qrels`) -> a held-out split by passage
(`split_by_passage`, `separate_eval`) -> hard negatives mined with the current models
(`mine_hard_negatives`) -> `train_splade` (sentence-transformers' `SparseEncoderTrainer`,
`SpladeLoss` + FLOPS) -> a model folder that `SpladeEncoder` loads as is.
`rag-splade train` runs the whole loop and evaluates before and after.

Example:
    >>> from rag_splade.training import read_pairs, split_by_passage  # doctest: +SKIP
    >>> split = split_by_passage(read_pairs("valid-v1.3.json"), 0.1)  # doctest: +SKIP
"""

from __future__ import annotations

from .data import PairSet, TrainingPair, read_pairs, read_squad_pairs
from .mining import MinedNegatives, MiningStats, mine_hard_negatives, training_examples
from .split import Split, leaked_passages, separate_eval, split_by_passage
from .trainer import TrainConfig, TrainingExample, TrainResult, train_splade

__all__ = [
    "MinedNegatives",
    "MiningStats",
    "PairSet",
    "Split",
    "TrainConfig",
    "TrainResult",
    "TrainingExample",
    "TrainingPair",
    "leaked_passages",
    "mine_hard_negatives",
    "read_pairs",
    "read_squad_pairs",
    "separate_eval",
    "split_by_passage",
    "train_splade",
    "training_examples",
]
