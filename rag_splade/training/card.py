"""The model card (`README.md` in the model folder) of a fine-tuned SPLADE model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .trainer import TrainConfig, TrainResult


def write_model_card(
    folder: str | Path,
    config: TrainConfig,
    result: TrainResult,
    data: dict[str, Any],
    evaluation: str | None = None,
) -> Path:
    """Write `README.md` (and `training.json`, the same facts as JSON) into `folder`.

    Args:
        data: sizes and sources of the training and held-out data, and mining statistics.
        evaluation: the before/after table (markdown), when the model was evaluated.
    """
    folder = Path(folder)
    first, last = result.first_and_last_loss()
    last_log = result.history[-1] if result.history else {}
    settings = {
        "base_model": config.base_model,
        "epochs": config.epochs,
        "max_steps": config.max_steps,
        "batch_size": config.batch_size,
        "gradient_accumulation": config.gradient_accumulation,
        "learning_rate": config.learning_rate,
        "warmup_ratio": config.warmup_ratio,
        "query_regularizer": config.query_regularizer,
        "document_regularizer": config.document_regularizer,
        "query_max_length": config.query_max_length,
        "document_max_length": config.document_max_length,
        "seed": config.seed,
    }
    facts = {
        "settings": settings,
        "data": data,
        "run": {
            "steps": result.steps,
            "epochs": round(result.epochs, 3),
            "seconds": round(result.seconds, 1),
            "device": result.device,
            "precision": result.precision,
            "first_loss": first,
            "last_loss": last,
        },
        "history": result.history,
    }
    (folder / "training.json").write_text(
        json.dumps(facts, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    rows = "\n".join(f"| {k} | `{v}` |" for k, v in settings.items())
    data_rows = "\n".join(f"| {k} | {v} |" for k, v in data.items())
    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [sparse-encoder, splade, japanese, rag-splade]",
        f"base_model: {config.base_model}",
        "---",
        "",
        f"# SPLADE fine-tuned from `{config.base_model}`",
        "",
        "Fine-tuned with `rag-splade train` (sentence-transformers `SparseEncoderTrainer`, "
        "`SpladeLoss` around `SparseMultipleNegativesRankingLoss`, FLOPS regularisers on "
        "queries and documents). Load it with `SpladeEncoder(<this folder>)` or "
        "`RAG_SPLADE_SPARSE_MODEL=<this folder>`; an index built with another model must be "
        "rebuilt (`rag-splade ingest --reindex`).",
        "",
        "## Training",
        "",
        f"{result.steps} steps ({result.epochs:.2f} epochs) in {result.seconds:.0f} s on "
        f"{result.device} ({result.precision}); loss {first:.4f} at the first log, "
        f"{last:.4f} at the last; active dims at the last log: "
        f"{last_log.get('query_dims', float('nan')):.1f} per query, "
        f"{last_log.get('document_dims', float('nan')):.1f} per passage.",
        "",
        "| setting | value |",
        "|---|---|",
        rows,
        "",
        "## Data",
        "",
        "| what | value |",
        "|---|---|",
        data_rows,
        "",
    ]
    if evaluation:
        lines += ["## Before and after, on the held-out questions", "", evaluation, ""]
    path = folder / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
