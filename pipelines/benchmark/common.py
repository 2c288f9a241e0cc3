"""What every benchmark section shares: result rows, the machine line, texts, models, stats."""

from __future__ import annotations

import argparse
import math
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from rag_splade.sample import read_squad_paragraphs


# Shape of the speed model: BERT-base like hotchpotch/japanese-splade-v2 (random weights).
class Shape(TypedDict):
    hidden: int
    layers: int
    heads: int
    vocab_size: int | None  # None: the vocabulary of the bundled sample


# instruction sets that decide CPU speed here: bf16 and int8 dot products, AMX tiles
ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

BASE_SHAPE: Shape = {"hidden": 768, "layers": 12, "heads": 12, "vocab_size": 32768}
TINY_SHAPE: Shape = {"hidden": 64, "layers": 2, "heads": 2, "vocab_size": None}


@dataclass
class Row:
    """One measured line of the table. `metrics` are numbers; `status` is `ok`, or why not."""

    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    note: str = ""


@dataclass
class Section:
    """A group of rows with the columns they report, printed as one markdown table."""

    name: str
    title: str
    columns: list[tuple[str, str]]  # (metric key, column header)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": [key for key, _ in self.columns],
            "rows": [asdict(row) for row in self.rows],
            "notes": self.notes,
        }

    def to_markdown(self) -> str:
        header = ["path", *(label for _, label in self.columns), "status"]
        lines = [f"### {self.title}", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "---|" * len(header))
        for row in self.rows:
            cells = [row.name, *(fmt(row.metrics.get(key)) for key, _ in self.columns)]
            status = row.status + (f" ({row.note})" if row.note else "")
            lines.append("| " + " | ".join([*cells, status]) + " |")
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if float(value).is_integer():  # counts (queries, points) print as 12, not 12.0
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50/p95/p99 of durations in seconds, as milliseconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


@dataclass(frozen=True)
class BenchContext:
    """What every section gets besides its flags: the machine, the models, the texts."""

    machine: dict[str, Any]
    models: dict[str, Path]  # "splade" and "dense" (speed models), "lexical" (fidelity)
    model_label: str
    paragraphs: list[str]  # the bundled sample's paragraphs, title prefix removed
    questions: list[tuple[str, int]]  # (question, index of its paragraph)
    doc_texts: list[str]  # the documents the encode section times
    query_texts: list[str]  # the questions of --texts, for the serving section


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, torch version and GPU, recorded with every result."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover - not Linux
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # pragma: no cover - not Linux
        flags = ""
    present = set()
    for line in flags.splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            break
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_isa": [flag for flag in ISA_FLAGS if flag in present],
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16": "avx512_bf16" in flags or "amx_bf16" in flags,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is a dev dependency
        pass
    for package in ("transformers", "sentence_transformers", "qdrant_client", "qdrant_edge"):
        try:
            module = __import__(package)
            info[package] = getattr(module, "__version__", "?")
        except ImportError:
            info[package] = None
    return info


def cpu_line(info: dict[str, Any]) -> str:
    """The CPU and the instruction sets of `ISA_FLAGS` it has, for every table."""
    isa = ", ".join(info.get("cpu_isa") or []) or "none of " + ", ".join(ISA_FLAGS)
    return f"CPU: {info['cpu']}, {info['cores']} cores; instruction sets: {isa}."


def machine_line(info: dict[str, Any]) -> str:
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ", no GPU"
    mem = f", {info['memory_gb']} GiB RAM" if info.get("memory_gb") else ""
    isa = ", ".join(info.get("cpu_isa") or []) or "none listed"
    return (
        f"Machine: {info['cpu']} ({info['cores']} cores{mem}, torch threads "
        f"{info['torch_threads']}; {isa}){gpu}; Python {info['python']}, torch {info['torch']}, "
        f"transformers {info.get('transformers')}, sentence-transformers "
        f"{info.get('sentence_transformers')}"
    )


def comma_list(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """An argparse `type` for a comma-separated list of `kind` (`10_000` allowed)."""

    def parse(value: str) -> list[Any]:
        try:
            return [kind(v.strip().replace("_", "")) for v in value.split(",") if v.strip()]
        except ValueError as e:
            name = getattr(kind, "__name__", "value")
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {name} values, got {value!r}"
            ) from e

    return parse


def jsquad(path: str | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """Paragraphs (title prefix removed) and `(question, paragraph index)` pairs of a JSQuAD
    file; the bundled 64-paragraph sample when `path` is None."""
    read = read_squad_paragraphs(path)
    questions = [(q, i) for i, p in enumerate(read) for q in p.questions]
    return [p.text for p in read], questions


def document_texts(paragraphs: list[str], n: int, length: str) -> list[str]:
    """`n` documents: the paragraphs in turn (`natural`), or windows of the joined paragraphs
    long enough to fill 512 tokens (`512`)."""
    if length == "natural":
        return [paragraphs[i % len(paragraphs)] for i in range(n)]
    joined = "".join(paragraphs)
    window, step = 1400, 97  # ~1,400 characters is over 512 tokens of this text
    return [
        (joined[(i * step) % len(joined) :] + joined)[:window] for i in range(n)
    ]  # distinct windows, wrapping around


def model_paths(model_dir: Path, tiny: bool) -> dict[str, Path]:
    """Build (once) and return the SPLADE and dense speed models, and the lexical tiny model."""
    from rag_splade.testing import build_dense_model, build_splade_model

    shape = TINY_SHAPE if tiny else BASE_SHAPE
    tag = "tiny" if tiny else "base"
    splade = model_dir / f"splade-{tag}"
    dense = model_dir / f"dense-{tag}"
    lexical = model_dir / "splade-lexical"
    if not (splade / "config.json").exists():
        build_splade_model(
            splade,
            hidden=shape["hidden"],
            layers=shape["layers"],
            heads=shape["heads"],
            vocab_size=shape["vocab_size"],
        )
    if not (dense / "modules.json").exists():
        build_dense_model(
            dense,
            hidden=shape["hidden"],
            layers=shape["layers"],
            heads=shape["heads"],
            tokenizer_dir=splade,
        )
    if not (lexical / "config.json").exists():
        build_splade_model(lexical, lexical=True)
    return {"splade": splade, "dense": dense, "lexical": lexical}
