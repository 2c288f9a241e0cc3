"""`make bench-gpu`: the GPU figures in one prepared run of at most 8 minutes.

`python -m rag_splade.pipelines.benchmark.gpu_check --out DIR` runs, each step in its own
process with its own time limit (`STEPS`): the `gpu`-marked tests; document encoding in
tokens/s (bf16, tokenizer workers) on the bundled JSQuAD paragraphs and on 512-token
windows; serving at concurrency 1/8/32 with and without micro-batching; rerank cost per
pair; 200 training steps of `rag-splade train` on a tiny and a BERT-base-shaped model
(steps/s, peak GPU memory); remote against local encoding. It writes `gpu-check.md` and
`gpu-check.json` (the card, driver, torch and date; each step's status and figures; the
targets, met or not) for docs/benchmarks.md. `--dry-run` runs every step on the CPU with
tiny models and small inputs: the same files, nothing measured, no target judged.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag_splade.sample import sample_path

from .gpu_report import card, figures, to_markdown

TOTAL_BUDGET_S = 480.0
# A dry run checks the steps, not their speed: on a shared CPU they get this long each.
DRY_LIMIT_S = 900.0
CLI = "import sys; from rag_splade.pipelines.cli import main; sys.exit(main(sys.argv[1:]))"
TRAIN = (
    "import sys, json, torch; from rag_splade.pipelines.cli import main; code = main(sys.argv[1:]);"
    " peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0;"
    " print('PEAK_GPU_BYTES ' + json.dumps(peak)); sys.exit(code)"
)
MODELS = (
    "import sys; from pathlib import Path; from rag_splade.pipelines.benchmark.common import"
    " model_paths; [model_paths(Path(sys.argv[1]), tiny) for tiny in json.loads(sys.argv[2])]"
)


@dataclass
class Step:
    """One part of the check: a command, the seconds it may take, what its figures come from."""

    name: str
    budget_s: float
    argv: list[str]
    json_file: str | None = None  # the bench's --json output, read for figures


@dataclass
class StepResult:
    name: str
    status: str  # ok, failed: ..., killed: over the N s limit, skipped: ...
    seconds: float
    budget_s: float
    figures: dict[str, Any] = field(default_factory=dict)
    markdown: str = ""  # the bench's tables, as it printed them


def steps(args: argparse.Namespace, out: Path) -> list[Step]:
    """The plan: per-step budgets that add up to under `TOTAL_BUDGET_S`."""
    dry = args.dry_run
    device = "cpu" if dry else "cuda"
    models = out / "models"
    py = sys.executable
    bench = [py, "-c", CLI, "bench", f"--model-dir={models}", f"--device={device}"]
    bench += ["--tiny"] if dry else []
    dtype = "--dtype=float32" if dry else "--dtype=bfloat16"
    workers = "--tokenizer-workers=1" if dry else "--tokenizer-workers=4,8"
    # the tests of a checkout (run from its root); none where only the package is installed
    gpu_tests = sorted(
        str(p) for p in Path("tests").glob("test_*.py") if "mark.gpu" in p.read_text("utf-8")
    )
    pytest = [py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *gpu_tests]
    shapes = "[true]" if dry else "[true, false]"
    plan = [
        Step("models", 45, [py, "-c", "import json; " + MODELS, str(models), shapes]),
        Step("gpu tests", 75, pytest if gpu_tests else []),
        Step(
            "encode",
            110,
            [
                *bench,
                "--sections=encode",
                dtype,
                workers,
                # a dry run checks the plumbing: one short text set (the bench's own test
                # covers the 512-token windows)
                "--encode-sets=sample" if dry else "--encode-sets=sample,512",
                "--skip-peers",
                "--int8=",
                "--encode-timeout=100",
                "--docs=4" if dry else "--docs=4096",
                "--window-docs=4" if dry else "--window-docs=2048",
                f"--json={out / 'encode.json'}",
            ],
            "encode.json",
        ),
        Step(
            "serving",
            60,
            [
                *bench,
                "--sections=serving",
                "--serving-concurrency=1,8,32",
                "--serving-requests=32" if dry else "--serving-requests=256",
                "--serving-docs=16" if dry else "--serving-docs=64",
                f"--json={out / 'serving.json'}",
            ],
            "serving.json",
        ),
        Step(
            "rerank",
            35,
            [
                *bench,
                "--sections=rerank",
                "--rerank-candidates=20" if dry else "--rerank-candidates=20,50,100",
                "--rerank-queries=2" if dry else "--rerank-queries=8",
                f"--json={out / 'rerank.json'}",
            ],
            "rerank.json",
        ),
    ]
    for shape, budget in (("tiny", 30), ("base", 75)):
        tag = "tiny" if dry or shape == "tiny" else "base"  # dry run: tiny models only
        train_out = out / f"train-{shape}"
        plan.append(
            Step(
                f"train {shape}",
                budget,
                [
                    py,
                    "-c",
                    TRAIN,
                    "train",
                    str(sample_path()),
                    f"--output={train_out}",
                    f"--base-model={models / f'splade-{tag}'}",
                    f"--dense-model={models / f'dense-{tag}'}",
                    f"--device={device}",
                    "--max-steps=10" if dry else f"--max-steps={args.train_steps}",
                    "--batch-size=8" if dry else "--batch-size=32",
                    "--negatives=0",
                    "--no-eval",
                    "--save-steps=100000",
                    "--quiet",
                ],
                str(train_out / "training.json"),
            )
        )
    plan.append(
        Step(
            "remote",
            40,
            [
                *bench,
                "--sections=remote",
                "--remote-batch-sizes=4" if dry else "--remote-batch-sizes=1,32,256",
                "--remote-texts=4" if dry else "--remote-texts=256",
                f"--json={out / 'remote.json'}",
            ],
            "remote.json",
        )
    )
    return plan


def run_step(step: Step, out: Path, limit_s: float) -> StepResult:
    """Run one step in its own process group (a bench starts servers and workers); kill the
    group when it runs past `limit_s`."""
    if not step.argv:
        return StepResult(step.name, "skipped: nothing to run here", 0.0, step.budget_s)
    log = out / f"{step.name.replace(' ', '-')}.log"
    start = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen(
            step.argv, stdout=subprocess.PIPE, stderr=sink, text=True, start_new_session=True
        )
        try:
            stdout, _ = proc.communicate(timeout=limit_s)
            status = "ok" if proc.returncode == 0 else f"failed: exit code {proc.returncode}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, _ = proc.communicate()
            status = f"killed: over the {limit_s:.0f} s limit"
    seconds = time.perf_counter() - start
    (out / log.name.replace(".log", ".out")).write_text(stdout or "")
    if status.startswith("failed"):
        tail = [line for line in log.read_text().splitlines() if line.strip()][-1:]
        status += f" ({tail[0][:160]})" if tail else ""
    result = StepResult(step.name, status, seconds, step.budget_s)
    result.figures = figures(step.name, stdout or "", _read_json(out, step.json_file))
    if "### " in (stdout or ""):
        result.markdown = stdout[stdout.index("### ") :].strip()
    return result


def _read_json(out: Path, name: str | None) -> dict[str, Any] | None:
    path = (out / name) if name else None
    if path is None or not path.is_file():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--out", type=Path, default=Path("bench-gpu"), help="folder for the results")
    add("--dry-run", action="store_true", help="every step on the CPU with tiny models")
    add("--train-steps", type=int, default=200, help="training steps (not in a dry run)")
    add("--only", help="comma list of step names to run (default: all)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    info = card()
    if not args.dry_run and not info.get("cuda"):
        print("gpu_check: torch sees no CUDA device; run with --dry-run on a CPU", file=sys.stderr)
        return 2
    plan = steps(args, out)
    if args.only:
        wanted = {s.strip() for s in args.only.split(",")}
        unknown = wanted - {s.name for s in plan}
        if unknown:
            print(
                f"gpu_check: unknown steps {sorted(unknown)}; choose from {[s.name for s in plan]}",
                file=sys.stderr,
            )
            return 2
        plan = [s for s in plan if s.name in wanted or s.name == "models"]
    started = time.perf_counter()
    results = []
    for step in plan:
        left = TOTAL_BUDGET_S - (time.perf_counter() - started)
        print(f"[gpu-check] {step.name} (budget {step.budget_s:.0f} s) ...", file=sys.stderr)
        if args.dry_run:
            results.append(run_step(step, out, DRY_LIMIT_S))
            continue
        if left < 5:
            results.append(
                StepResult(step.name, "skipped: the total budget is spent", 0.0, step.budget_s)
            )
            continue
        results.append(run_step(step, out, min(step.budget_s, left)))
    total = time.perf_counter() - started
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "dry_run": args.dry_run,
        "card": info,
        "total_s": total,
        "budget_s": TOTAL_BUDGET_S,
        "steps": [asdict(r) for r in results],
    }
    markdown, targets = to_markdown(report)
    report["targets"] = targets
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (out / "gpu-check.md").write_text(markdown)
    print(markdown)
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
