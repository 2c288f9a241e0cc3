"""`EvaluationReport`: metrics, significance and latency of every run; markdown, JSON, PNG."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

EXTRAS_HINT = 'pip install "rag-splade[eval]"'
# Distributions whose versions decide the numbers; recorded with every report.
VERSIONED = (
    "rag-splade",
    "torch",
    "transformers",
    "sentence-transformers",
    "qdrant-edge-py",
    "qdrant-client",
    "ranx",
    "bm25s",
)


def package_versions() -> dict[str, str | None]:
    """Python's and each of `VERSIONED`'s installed version (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunResult:
    """One run's mean metrics, p-values against the baseline, and latency.

    A p-value is None where the test is undefined (identical scores on every query).
    `rerank_p_values` are a `+rerank` run's p-values against the same run without
    reranking (empty for other runs, or when that run was not evaluated).

    `latency` holds `p50_ms`, `p95_ms`, `mean_ms` (None when not measured) and
    `queries` (the size of the latency sample).
    """

    name: str
    metrics: dict[str, float]
    p_values: dict[str, float | None]
    latency: dict[str, float | int | None]
    rerank_p_values: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationReport:
    """The outcome of `evaluate`.

    Example:
        >>> report = evaluate(settings, dataset, runs=["bm25"])  # doctest: +SKIP
        >>> print(report.to_markdown())  # doctest: +SKIP
        >>> report.plot("results.png")  # doctest: +SKIP
    """

    dataset: dict[str, Any]
    metrics: list[str]
    baseline: str
    stat_test: str
    alpha: float
    runs: list[RunResult]
    config: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=_now)  # ISO 8601, UTC
    versions: dict[str, str | None] = field(default_factory=package_versions)

    def run(self, name: str) -> RunResult:
        """The result of the run called `name`."""
        for r in self.runs:
            if r.name == name:
                return r
        raise KeyError(f"no run {name!r}; runs: {[r.name for r in self.runs]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON; also written to `path` when given."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=2)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_markdown(self) -> str:
        """A markdown table: one row per run; † marks p < alpha against the baseline."""
        ds = self.dataset
        head = ["run", *self.metrics, "p50 ms", "p95 ms"]
        lines = [
            f"**{ds.get('name')}**: {ds.get('queries')} queries, {ds.get('documents')} documents"
            + (f" ({ds['chunks']} chunks)" if ds.get("chunks") else ""),
            "",
            "| " + " | ".join(head) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
        ]
        for r in self.runs:
            cells = [f"**{r.name}** (baseline)" if r.name == self.baseline else r.name]
            for m in self.metrics:
                p = r.p_values.get(m)
                mark = "†" if p is not None and p < self.alpha else ""
                p_plain = r.rerank_p_values.get(m)
                mark += "‡" if p_plain is not None and p_plain < self.alpha else ""
                cells.append(f"{r.metrics[m]:.4f}{mark}")
            cells += [_ms(r.latency.get("p50_ms")), _ms(r.latency.get("p95_ms"))]
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            f"† p < {self.alpha} against **{self.baseline}** ({_test_name(self.stat_test)} "
            "over queries). Latency: one query at a time, encoding + Qdrant query "
            "(bm25: MeCab + bm25s).",
        ]
        if any(r.name.endswith("+rerank") for r in self.runs):
            lines.append(
                f"‡ p < {self.alpha} for a `+rerank` run against the same run without "
                "reranking (same test)."
            )
        v = self.versions
        lines.append(
            f"Run {self.created}: rag-splade {v.get('rag-splade')}, torch {v.get('torch')}, "
            f"transformers {v.get('transformers')}, qdrant-edge-py {v.get('qdrant-edge-py')}, "
            f"Python {v.get('python')}."
        )
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Save a PNG: grouped bars of every metric per run, and p50 latency per run."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as e:
            raise ImportError(f"plots need matplotlib: {EXTRAS_HINT}") from e
        names = [r.name for r in self.runs]
        fig = Figure(figsize=(max(7.0, 1.1 * len(names) + 3), 6.5), layout="constrained")
        FigureCanvasAgg(fig)  # render with Agg whatever pyplot's backend is
        top, bottom = fig.subplots(2, 1, height_ratios=[3, 1.3])
        width = 0.8 / max(len(self.metrics), 1)
        for i, m in enumerate(self.metrics):
            xs = [j + (i - (len(self.metrics) - 1) / 2) * width for j in range(len(names))]
            bars = top.bar(xs, [r.metrics[m] for r in self.runs], width, label=m)
            top.bar_label(bars, fmt="%.3f", fontsize=6, rotation=90, padding=2)
        top.set_xticks(range(len(names)), names, rotation=20, ha="right")
        top.set_ylim(0, 1.25)
        top.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
        top.set_ylabel("score")
        top.set_title(
            f"{self.dataset.get('name')}: {self.dataset.get('queries')} queries, "
            f"{self.dataset.get('documents')} documents"
        )
        top.legend(loc="upper center", ncols=len(self.metrics), fontsize="small")
        top.grid(axis="y", alpha=0.3)
        p50 = [r.latency.get("p50_ms") or 0.0 for r in self.runs]
        bottom.bar(range(len(names)), p50, color="grey")
        bottom.set_xticks(range(len(names)), names, rotation=20, ha="right")
        bottom.set_ylabel("p50 ms / query")
        bottom.grid(axis="y", alpha=0.3)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        return path


def _ms(value: float | int | None) -> str:
    return "-" if value is None else f"{float(value):.1f}"


def _test_name(stat_test: str) -> str:
    return {
        "student": "paired t-test",
        "fisher": "Fisher's randomization test",
        "tukey": "Tukey's HSD",
    }.get(stat_test, stat_test)
