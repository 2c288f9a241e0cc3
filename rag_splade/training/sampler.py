"""Batches in which no passage is both one question's positive and another's negative.

`SparseMultipleNegativesRankingLoss` scores each question against every passage of the
batch. A passage that is the positive of two questions in one batch (JSQuAD writes about
three questions per paragraph), or one question's positive and another's hard negative,
would be pushed away from a question it answers. sentence-transformers' `NO_DUPLICATES`
sampler forbids *any* repeated text, hard negatives included, and mined negatives repeat
a lot (a popular passage is a near miss for many questions): it leaves too few batches.
This sampler forbids only the repeats that teach something false.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from sentence_transformers.base.sampler import DefaultBatchSampler


class DistinctPositivesBatchSampler(DefaultBatchSampler):
    """Shuffled batches (seeded per epoch) built greedily: a row joins the batch when its
    positive is not yet a positive or a negative there and none of its negatives is a
    positive there; rows that do not fit wait for the next batch."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        ids: dict[str, int] = {}
        self._positive = [ids.setdefault(t, len(ids)) for t in dataset["positive"]]
        negative_columns = [dataset[c] for c in dataset.column_names if c.startswith("negative_")]
        self._negatives = [
            frozenset(ids.setdefault(col[i], len(ids)) for col in negative_columns)
            for i in range(len(self._positive))
        ]

    def __len__(self) -> int:
        n, size = len(self._positive), self.batch_size
        return n // size if self.drop_last else math.ceil(n / size)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        remaining = torch.randperm(len(self._positive), generator=generator).tolist()
        while remaining:
            batch: list[int] = []
            positives: set[int] = set()
            negatives: set[int] = set()
            left = []
            for i in remaining:
                p, ns = self._positive[i], self._negatives[i]
                fits = p not in positives and p not in negatives and not (ns & positives)
                if len(batch) < self.batch_size and fits:
                    batch.append(i)
                    positives.add(p)
                    negatives |= ns
                else:
                    left.append(i)
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch
            remaining = left
