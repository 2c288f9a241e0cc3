"""`make bench-gpu`'s script: its plan, its report, and a whole dry run on the CPU.

The dry run (`--dry-run`: every step on tiny models on the CPU) is `slow`: it starts eight
processes that import torch. No time is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_splade.pipelines.benchmark import gpu_check
from rag_splade.pipelines.benchmark.gpu_report import figures, judge, to_markdown

STEP_NAMES = [
    "models",
    "gpu tests",
    "encode",
    "serving",
    "rerank",
    "train tiny",
    "train base",
    "remote",
]


def _args(*argv: str):
    import argparse

    parser = argparse.ArgumentParser()
    gpu_check.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_gpu_plan_fits_eight_minutes(tmp_path: Path) -> None:
    plan = gpu_check.steps(_args(), tmp_path)
    assert [s.name for s in plan] == STEP_NAMES
    assert sum(s.budget_s for s in plan) <= gpu_check.TOTAL_BUDGET_S == 480
    encode = next(s for s in plan if s.name == "encode").argv
    assert {"--device=cuda", "--dtype=bfloat16", "--tokenizer-workers=4,8"} <= set(encode)
    assert "--encode-sets=sample,512" in encode and "--tiny" not in encode
    train = next(s for s in plan if s.name == "train base").argv
    assert "--max-steps=200" in train and any(a.endswith("splade-base") for a in train)
    dry = gpu_check.steps(_args("--dry-run"), tmp_path)
    assert [s.name for s in dry] == STEP_NAMES
    assert all("--device=cuda" not in s.argv for s in dry)
    assert all("--tiny" in s.argv for s in dry if "bench" in s.argv)


def test_without_cuda_it_asks_for_a_dry_run(tmp_path: Path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the check would run")
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    assert "--dry-run" in capsys.readouterr().err


def test_an_unknown_step_is_refused(tmp_path: Path, capsys) -> None:
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path), "--only", "encode,nope"]) == 2
    assert "['nope']" in capsys.readouterr().err


def test_figures_from_each_kind_of_output() -> None:
    out = "....\n3 passed, 2 skipped, 1 deselected in 4.2s\n"
    assert figures("gpu tests", out, None) == {"passed": 3, "skipped": 2, "deselected": 1}
    training = {"run": {"steps": 200, "seconds": 40.0, "precision": "bf16", "device": "cuda"}}
    found = figures("train base", "PEAK_GPU_BYTES 2147483648\n", training)
    assert found["steps_per_s"] == 5.0 and found["peak_gpu_gb"] == 2.0
    serving = {"sections": {"serving": {"rows": [], "notes": ["micro_batching_ratio_at_32=3.5"]}}}
    assert figures("serving", "", serving)["micro_batching_x"] == 3.5


def _report(dry: bool, tokens: float, ratio: float) -> dict:
    steps = [
        {"name": "encode", "status": "ok", "seconds": 1.0, "budget_s": 110,
         "figures": {"best_tokens_per_s": tokens}, "markdown": "### 1. Encode\n\n| a |"},
        {"name": "serving", "status": "ok", "seconds": 1.0, "budget_s": 60,
         "figures": {"micro_batching_x": ratio}, "markdown": ""},
    ]  # fmt: skip
    card = {"torch": "2", "python": "3.11", "cpu_cores": 16, "nvidia_smi": "NVIDIA H200, 570"}
    return {"date": "2026-12-02", "dry_run": dry, "card": card, "total_s": 2.0,
            "budget_s": 480.0, "steps": steps}  # fmt: skip


def test_targets_are_judged_only_on_a_real_run() -> None:
    met = [t["met"] for t in judge(_report(False, 2e6, 2.0))]
    assert met == [True, False]
    assert [t["met"] for t in judge(_report(True, 2e6, 4.0))] == [None, None]
    markdown, _ = to_markdown(_report(False, 2e6, 2.0))
    assert "Card: NVIDIA H200, 570" in markdown
    assert ">= 1,500,000: 2,000,000.00, met" in markdown and ">= 3: 2.00, NOT met" in markdown
    assert "##### 1. Encode" in markdown  # the bench's tables sit below the summary


@pytest.mark.slow
def test_a_dry_run_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "gpu"
    assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["dry_run"] is True and report["card"]["torch"]
    assert [s["name"] for s in report["steps"]] == STEP_NAMES
    assert all(s["status"] == "ok" for s in report["steps"]), report["steps"]
    by_name = {s["name"]: s["figures"] for s in report["steps"]}
    assert by_name["encode"]["best_tokens_per_s"] > 0
    assert by_name["serving"]["at_concurrency"] == 32
    assert all(v > 0 for v in by_name["rerank"]["ms_per_pair"].values())
    assert by_name["train tiny"]["steps"] == 10 and by_name["train base"]["steps_per_s"] > 0
    assert by_name["remote"]["remote_over_local"]
    assert [t["met"] for t in report["targets"]] == [None, None]
    markdown = (out / "gpu-check.md").read_text()
    assert markdown.startswith("## GPU check, ") and "**Dry run on the CPU" in markdown
    assert "| train base | ok |" in markdown and "#### serving" in markdown
