"""A progress bar for training: the step, the loss and the active dims of queries and
documents (averaged over the batches since the last log), and their history."""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else float("nan")


class TrainingProgress(TrainerCallback):
    """Records `{step, loss, query_dims, document_dims, lr}` at each log; draws a tqdm bar.

    `loss` is the object whose `query_dims` / `document_dims` lists grow by one per batch
    (the tracked ranking loss of `trainer`).
    """

    def __init__(self, loss: Any, *, enabled: bool = True) -> None:
        self.loss = loss
        self.enabled = enabled
        self.history: list[dict[str, float]] = []
        self._bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.update(state.global_step - self._bar.n)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        logs = logs or {}
        if "loss" not in logs:  # the end-of-training summary
            return
        entry = {
            "step": float(state.global_step),
            "loss": float(logs["loss"]),
            "query_dims": _mean(self.loss.query_dims),
            "document_dims": _mean(self.loss.document_dims),
            "learning_rate": float(logs.get("learning_rate", float("nan"))),
        }
        self.loss.query_dims.clear()
        self.loss.document_dims.clear()
        self.history.append(entry)
        if self._bar is not None:
            self._bar.set_postfix(
                loss=f"{entry['loss']:.4f}",
                q_dims=f"{entry['query_dims']:.0f}",
                d_dims=f"{entry['document_dims']:.0f}",
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
