"""Fine-tune a SPLADE model with sentence-transformers' sparse trainer.

The model is the one `SpladeEncoder` loads (`build_splade_model`: a fill-mask `Transformer`
with query and document lengths, then `SpladePooling` max/relu), trained with `SpladeLoss` around
`SparseMultipleNegativesRankingLoss` (in-batch negatives plus the mined hard negatives)
and FLOPS regularisers on queries and documents, and saved so that `SpladeEncoder` loads
the folder as it is. Batches never hold the same text twice (a passage with several
questions would otherwise be its own in-batch negative).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_splade.checks import check_positive_int

EXTRAS_HINT = 'pip install "rag-splade[train]"'
CHECKPOINTS = "checkpoints"  # subfolder of the output folder


@dataclass(frozen=True)
class TrainingExample:
    """A question, its positive passage and its hard negatives (may be empty)."""

    query: str
    positive: str
    negatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults suit a short CPU run on the tiny model.

    Example:
        >>> TrainConfig(base_model="./models/tiny/splade", output_dir=Path("./out"),
        ...             learning_rate=3e-3, epochs=1)  # doctest: +SKIP
    """

    base_model: str
    output_dir: Path
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 32
    gradient_accumulation: int = 1
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    query_regularizer: float = 5e-5
    document_regularizer: float = 3e-5
    query_max_length: int = 64
    document_max_length: int = 512
    seed: int = 42
    save_steps: int = 500
    logging_steps: int = 10
    device: str = "auto"
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_size", "gradient_accumulation", "query_max_length",
                     "document_max_length", "save_steps", "logging_steps"):  # fmt: skip
            check_positive_int(name, getattr(self, name))
        check_positive_int("max_steps", self.max_steps, optional=True)
        for name in ("epochs", "learning_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        for name in ("query_regularizer", "document_regularizer", "warmup_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if self.warmup_ratio >= 1:
            raise ValueError(f"warmup_ratio must be below 1, got {self.warmup_ratio!r}")


@dataclass
class TrainResult:
    """What a run did: steps, seconds, and the logged loss and active dims per step."""

    model_dir: Path
    steps: int
    epochs: float
    seconds: float
    examples: int
    device: str
    precision: str
    history: list[dict[str, float]] = field(default_factory=list)

    def first_and_last_loss(self) -> tuple[float, float]:
        losses = [h["loss"] for h in self.history if "loss" in h]
        if not losses:
            raise ValueError("no loss was logged (fewer steps than logging_steps?)")
        return losses[0], losses[-1]


def _require_extras() -> None:
    import importlib.util

    missing = [m for m in ("datasets", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"training needs {' and '.join(missing)}: {EXTRAS_HINT}")


def train_splade(config: TrainConfig, examples: Sequence[TrainingExample]) -> TrainResult:
    """Fine-tune `config.base_model` on `examples`; save the model to `config.output_dir`.

    Every example must have the same number of negatives (0: in-batch negatives only).
    Checkpoints go to `output_dir/checkpoints`; `config.resume` continues from the last.
    """
    if not examples:
        raise ValueError("no training examples")
    widths = {len(e.negatives) for e in examples}
    if len(widths) != 1:
        raise ValueError(f"every example needs the same number of negatives, got {sorted(widths)}")
    _require_extras()
    import torch
    import transformers
    from datasets import Dataset  # type: ignore[import-untyped]
    from sentence_transformers.sparse_encoder import (
        SparseEncoderTrainer,
        SparseEncoderTrainingArguments,
    )
    from sentence_transformers.sparse_encoder.callbacks.splade_callbacks import (
        SpladeRegularizerWeightSchedulerCallback,
    )
    from sentence_transformers.sparse_encoder.losses import (
        SparseMultipleNegativesRankingLoss,
        SpladeLoss,
    )

    from rag_splade.encoders.device import resolve_device
    from rag_splade.encoders.splade_model import build_splade_model

    from .progress import TrainingProgress
    from .sampler import DistinctPositivesBatchSampler

    device = resolve_device(config.device)
    cuda = device.startswith("cuda")
    bf16 = cuda and torch.cuda.is_bf16_supported()
    checkpoints = Path(config.output_dir) / CHECKPOINTS
    resume = _last_checkpoint(checkpoints) if config.resume else None
    transformers.set_seed(config.seed)
    model = build_splade_model(
        config.base_model,
        query_max_length=config.query_max_length,
        document_max_length=config.document_max_length,
        device=device,
    )
    loss_cls = _tracked_loss_class(SparseMultipleNegativesRankingLoss)
    inner = loss_cls(model)
    loss = SpladeLoss(
        model,
        loss=inner,
        query_regularizer_weight=config.query_regularizer,
        document_regularizer_weight=config.document_regularizer,
    )
    width = widths.pop()
    columns: dict[str, list[str]] = {
        "query": [e.query for e in examples],
        "positive": [e.positive for e in examples],
    }
    for i in range(width):
        columns[f"negative_{i + 1}"] = [e.negatives[i] for e in examples]
    dataset = Dataset.from_dict(columns)
    args = SparseEncoderTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1: a fraction of the steps
        bf16=bf16,
        use_cpu=device == "cpu",
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=True,  # our own bar shows the loss and the active dims
        batch_sampler=DistinctPositivesBatchSampler,
        router_mapping={c: ("query" if c == "query" else "document") for c in columns},
        dataloader_drop_last=len(examples) >= config.batch_size,
    )

    progress = TrainingProgress(inner, enabled=config.progress)
    trainer = SparseEncoderTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        # The FLOPS weights grow from 0 to their value over the first third of the steps
        # (sentence-transformers' default, said here so that it is not a warning).
        callbacks=[progress, SpladeRegularizerWeightSchedulerCallback(loss)],
    )
    _drop_console_progress(trainer)
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started
    if trainer.state.global_step == 0:
        raise ValueError(
            f"training ran no step: {len(examples)} examples make no full batch of "
            f"{config.batch_size} with distinct positives; lower --batch-size or add data"
        )
    out = Path(config.output_dir)
    model.save(str(out))
    state = trainer.state
    return TrainResult(
        model_dir=out,
        steps=int(state.global_step),
        epochs=float(state.epoch or 0.0),
        seconds=seconds,
        examples=len(examples),
        device=device,
        precision="bf16" if bf16 else "fp32",
        history=progress.history or [{"step": state.global_step, "loss": output.training_loss}],
    )


def _last_checkpoint(folder: Path) -> Path:
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(folder)) if folder.is_dir() else None  # type: ignore[no-untyped-call]
    if last is None:
        raise FileNotFoundError(
            f"--resume: no checkpoint in {str(folder)!r}; run without --resume to start afresh"
        )
    return Path(last)


def _drop_console_progress(trainer: Any) -> None:
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cls in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(cls)


def _tracked_loss_class(base: type) -> type:
    """`base` (the ranking loss) that also records the active dims of each batch."""
    import torch

    class TrackedRankingLoss(base):  # type: ignore[misc]  # a class chosen at run time
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.query_dims: list[float] = []
            self.document_dims: list[float] = []

        def compute_loss_from_embeddings(self, embeddings: list[Any], labels: Any = None) -> Any:
            with torch.no_grad():
                self.query_dims.append(float((embeddings[0] > 0).sum(-1).float().mean()))
                docs = torch.cat(list(embeddings[1:]))
                self.document_dims.append(float((docs > 0).sum(-1).float().mean()))
            return super().compute_loss_from_embeddings(embeddings, labels)

    TrackedRankingLoss.__name__ = base.__name__  # the model card names the real loss
    return TrackedRankingLoss


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else float("nan")
