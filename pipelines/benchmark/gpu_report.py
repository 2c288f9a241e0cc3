"""The GPU check's report: the card it ran on, each step's figures, the targets, markdown."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from typing import Any

# On an H100/H200-class card (issue 24 §4).
TARGETS = {
    "tokens_per_s": (1_500_000.0, "document encoding end to end, tokens/s"),
    "micro_batching_x": (3.0, "micro-batching over unbatched serving at concurrency 32"),
}
PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)")


def card() -> dict[str, Any]:
    """The GPU, its driver and memory (nvidia-smi), torch and its CUDA, the date, the commit."""
    import platform

    import torch

    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda": torch.cuda.is_available(),
        "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "cpu_cores": __import__("os").cpu_count(),
    }
    if shutil.which("nvidia-smi"):
        query = "--query-gpu=name,driver_version,memory.total"
        done = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True
        )
        info["nvidia_smi"] = done.stdout.strip() or done.stderr.strip()
    if shutil.which("git"):
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        info["commit"] = done.stdout.strip() or None
    return info


def figures(step: str, stdout: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """The numbers a step gives, from its bench JSON (or training.json) and its output."""
    if step == "gpu tests":
        tail = "\n".join(stdout.strip().splitlines()[-3:])
        return {
            kind if kind != "error" else "errors": int(n) for n, kind in PYTEST_COUNT.findall(tail)
        }
    if step.startswith("train"):
        found: dict[str, Any] = {}
        if data:
            run = data["run"]
            found = {
                "steps": run["steps"],
                "seconds": run["seconds"],
                "steps_per_s": run["steps"] / max(run["seconds"], 1e-9),
                "precision": run["precision"],
                "device": run["device"],
            }
        peak = re.search(r"^PEAK_GPU_BYTES (\d+)", stdout, re.M)
        if peak:
            found["peak_gpu_gb"] = int(peak.group(1)) / 2**30
        return found
    if not data:
        return {}
    section = next(iter(data["sections"].values()))
    rows = [r for r in section["rows"] if r["status"] == "ok"]
    if step == "encode":
        best = max(rows, key=lambda r: r["metrics"]["tokens_per_s"], default=None)
        return {
            "tokens_per_s": {r["name"]: r["metrics"]["tokens_per_s"] for r in rows},
            "best_tokens_per_s": best["metrics"]["tokens_per_s"] if best else None,
            "best_row": best["name"] if best else None,
        }
    if step == "serving":
        found = {"requests_per_s": {r["name"]: r["metrics"]["requests_per_s"] for r in rows}}
        for note in section["notes"]:
            if note.startswith("micro_batching_ratio_at_"):
                level, value = note[len("micro_batching_ratio_at_") :].split("=")
                found["micro_batching_x"], found["at_concurrency"] = float(value), int(level)
        return found
    if step == "rerank":
        return {
            "ms_per_pair": {
                r["name"]: r["metrics"]["ms_per_pair"]
                for r in rows
                if "ms_per_pair" in r["metrics"]
            }
        }
    if step == "remote":
        return {"remote_over_local": {r["name"]: r["metrics"]["remote_over_local"] for r in rows}}
    return {}


def judge(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the figure measured and `met` (None in a dry run or when missing)."""
    by_step = {s["name"]: s["figures"] for s in report["steps"]}
    measured = {
        "tokens_per_s": by_step.get("encode", {}).get("best_tokens_per_s"),
        "micro_batching_x": by_step.get("serving", {}).get("micro_batching_x"),
    }
    out = []
    for key, (target, what) in TARGETS.items():
        value = measured[key]
        met = None if report["dry_run"] or value is None else value >= target
        out.append({"target": key, "what": what, "goal": target, "value": value, "met": met})
    return out


def to_markdown(report: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The report as markdown for docs/benchmarks.md, and the judged targets."""
    info = report["card"]
    targets = judge(report)
    gpu = info.get("nvidia_smi") or info.get("device_name") or "no GPU (CPU)"
    lines = [
        f"## GPU check, {report['date']}",
        "",
        f"Card: {gpu}; torch {info['torch']} (CUDA {info.get('torch_cuda')}), Python "
        f"{info['python']}, {info['cpu_cores']} CPU cores, commit {info.get('commit')}; "
        f"total {report['total_s']:.0f} s of a {report['budget_s']:.0f} s budget.",
        "",
    ]
    if report["dry_run"]:
        lines += [
            "**Dry run on the CPU with tiny models: it checks that every step runs and "
            "writes its figures; it measures nothing, no target is judged, and the GPU "
            "budgets are not enforced.**",
            "",
        ]
    lines += ["| step | status | seconds | budget s | figures |", "|---|---|---|---|---|"]
    for step in report["steps"]:
        lines.append(
            f"| {step['name']} | {step['status']} | {step['seconds']:.0f} | "
            f"{step['budget_s']:.0f} | {_short(step['figures'])} |"
        )
    lines += ["", "Targets (H100/H200-class card):", ""]
    for t in targets:
        value = "not measured" if t["value"] is None else f"{t['value']:,.2f}"
        verdict = {None: "not judged", True: "met", False: "NOT met"}[t["met"]]
        lines.append(f"- {t['what']} >= {t['goal']:,.0f}: {value}, {verdict}.")
    for step in report["steps"]:
        if step["markdown"]:
            lines += ["", f"#### {step['name']}", "", step["markdown"].replace("### ", "##### ")]
    return "\n".join(lines).rstrip() + "\n", targets


def _short(found: dict[str, Any]) -> str:
    """A step's scalar figures in one cell (nested tables stay in the JSON and sections)."""
    parts = []
    for key, value in found.items():
        if isinstance(value, float):
            parts.append(f"{key} {value:,.3g}" if abs(value) < 1000 else f"{key} {value:,.0f}")
        elif isinstance(value, (int, str)):
            parts.append(f"{key} {value}")
    return ", ".join(parts) or "—"
