"""Section 11: Qdrant Edge at scale (10k, 100k, 1M points), three shard configurations.

For each size and variant (`scale_shard.VARIANTS`: the store's default, dense int8
quantisation with float32 originals on disk, everything on disk), a worker process builds
the shard (upsert throughput, `optimize()` time, bytes on disk per point) and a fresh one
opens it and measures (open time; hybrid p50/p99 unfiltered, filtered on a payload-indexed
and on an unindexed field, tenant-scoped; resident memory per point; recall@10 of the
hybrid and the dense top 10 against exact search). Sizes the disk cannot hold are skipped,
saying so; the notes state how latency and memory grow with size and whether the goals
(`GOALS`) are met at the largest size measured.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import BenchContext, Row, Section, comma_list
from .scale_shard import KINDS, VARIANTS

COLUMNS = [
    ("points", "points"),
    ("matching", "matching"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("queries", "queries"),
    ("upsert_per_s", "upsert points/s"),
    ("optimize_s", "optimize s"),
    ("open_s", "open s"),
    ("rss_mb", "RSS MB"),
    ("ram_per_point", "RAM B/point"),
    ("heap_per_point", "of it heap B/point"),
    ("disk_per_point", "disk B/point"),
    ("recall_hybrid", "recall@10 hybrid"),
    ("recall_dense", "recall@10 dense"),
]
UNFILTERED, INDEXED, UNINDEXED, TENANT = list(KINDS)
GOALS = {"hybrid_p50_ms": 10.0, "filtered_p50_ms": 15.0, "int8_ram_per_point": 2500.0}
GOAL_POINTS = 1_000_000
DISK_GUESS = 20_000  # bytes a point may take on disk while optimising, before one is measured


def add_arguments(parser: Any) -> None:
    add = parser.add_argument
    add(
        "--scale-points",
        type=comma_list(int),
        default=[10_000, 100_000, 1_000_000],
        help="scale section sizes",
    )
    add(
        "--scale-variants",
        default=",".join(VARIANTS),
        help=f"scale section shard configurations, comma list of {list(VARIANTS)}",
    )
    add("--scale-queries", type=int, default=200, help="queries per kind (scale section)")
    add(
        "--scale-kind-budget",
        type=float,
        default=60.0,
        help="seconds of queries per kind and size, at least 20 queries (scale section)",
    )
    add("--scale-recall-queries", type=int, default=50, help="queries of the recall check")
    add(
        "--scale-dir",
        help="where the scale section builds its shards and appends results.jsonl "
        "(default: a new temp folder)",
    )
    add(
        "--scale-results",
        help="the results.jsonl of an earlier (or cut-short) scale run: report it, measure nothing",
    )
    add("--scale-timeout", type=float, default=4 * 3600.0, help="seconds one scale step may run")
    add("--scale-memory-cap-gb", type=float, default=18.0, help="kill a scale step above this RSS")


def run(args: Any, ctx: BenchContext) -> Section:
    section = Section("scale", "11. Qdrant Edge at scale", COLUMNS)
    variants = [v.strip() for v in args.scale_variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"--scale-variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if args.scale_results:
        return from_results(section, Path(args.scale_results), args)
    # a folder of its own per run unless named: results.jsonl is appended to
    base = Path(args.scale_dir or tempfile.mkdtemp(prefix="rag-splade-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"  scale: shards and results.jsonl in {base}", file=sys.stderr, flush=True)
    measured: dict[tuple[int, str], dict[str, Any]] = {}
    per_point_disk = float(DISK_GUESS)
    for n in sorted(args.scale_points):
        for variant in variants:
            label = f"{n:,} points, {variant}"
            free = shutil.disk_usage(base).free
            if n * per_point_disk * 2 > free:  # optimize() writes new segments beside the old
                need = n * per_point_disk * 2 / 1e9
                section.rows.append(
                    Row(
                        f"{label}: index",
                        status=f"skipped: needs ~{need:.0f} GB of disk, {free / 1e9:.0f} GB free",
                    )
                )
                continue
            print(f"  scale: {label} ...", file=sys.stderr, flush=True)
            result, status = _build_and_measure(args, base, n, variant)
            if result is None:
                section.rows.append(Row(f"{label}: index", status=status))
                continue
            measured[(n, variant)] = result
            _log(base, label, result)
            per_point_disk = max(per_point_disk, result["disk_bytes"] / n)
            section.rows += rows_of(label, n, result)
    section.notes += notes(measured, variants, args)
    return section


def from_results(section: Section, path: Path, args: Any) -> Section:
    """The section as a run that wrote `path` (one `_log` line per step) would report it."""
    measured: dict[tuple[int, str], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        result = json.loads(line)
        size, variant = result["label"].split(" points, ")
        n = int(size.replace(",", ""))
        measured[(n, variant)] = result
        section.rows += rows_of(result["label"], n, result)
    variants = [v for v in VARIANTS if any(v == m for _, m in measured)]
    section.notes += notes(measured, variants, args)
    section.notes.append(f"Reported from {path.name}, written by the run that measured it.")
    return section


def _build_and_measure(
    args: Any, base: Path, n: int, variant: str
) -> tuple[dict[str, Any] | None, str]:
    folder = Path(tempfile.mkdtemp(prefix=f"rag-splade-scale-{n}-{variant}-", dir=base))
    spec = {
        "folder": str(folder),
        "points": n,
        "variant": variant,
        "queries": args.scale_queries,
        "recall_queries": args.scale_recall_queries,
        "kind_budget_s": args.scale_kind_budget,
    }
    try:
        built, status = run_worker("build", spec, args.scale_memory_cap_gb, args.scale_timeout)
        if built is None:
            return None, f"build {status}"
        measured, status = run_worker("measure", spec, args.scale_memory_cap_gb, args.scale_timeout)
        if measured is None:
            return None, f"measure {status}"
        return {**built, **measured}, "ok"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_worker(
    mode: str, spec: dict[str, Any], memory_cap_gb: float, timeout_s: float
) -> tuple[dict[str, Any] | None, str]:
    """Run one `scale_worker` step; `(result, status)` with status `ok` or why it stopped."""
    import psutil

    spec_file = Path(spec["folder"]) / f"{mode}.json"
    spec_file.write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [sys.executable, "-m", f"{__package__}.scale_worker", mode, str(spec_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watched, status, start = psutil.Process(proc.pid), "ok", time.monotonic()
    while proc.poll() is None:
        rss = 0.0
        with contextlib.suppress(psutil.Error):
            rss = watched.memory_info().rss / 2**30
        if rss > memory_cap_gb:
            proc.kill()
            status = f"killed: over the {memory_cap_gb:g} GB memory cap"
        elif time.monotonic() - start > timeout_s:
            proc.kill()
            status = f"killed: over the {timeout_s:g} s time limit"
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    if status != "ok":
        return None, status
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :]), "ok"
    last = (stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return None, f"failed: {last[:200]}"


def _log(base: Path, label: str, result: dict[str, Any]) -> None:
    """One line on stderr per step, and the whole result appended to `results.jsonl` in the
    scale folder: a long run shows its progress and keeps what it measured if it is cut."""
    p50 = ", ".join(f"{k} {v['p50_ms']:.2f}" for k, v in result["kinds"].items())
    print(f"  scale: {label}: p50 ms {p50}; recall {result['recall_hybrid']:.3f}", file=sys.stderr)
    with (base / "results.jsonl").open("a") as f:
        f.write(json.dumps({"label": label, **result}) + "\n")


def rows_of(label: str, n: int, result: dict[str, Any]) -> list[Row]:
    """The index row (build, memory, disk, recall) and one latency row per kind."""
    before, queried = result["rss_before"], result["rss_queried"]
    index = {
        "points": float(result["points"]),
        "upsert_per_s": result["upsert_per_s"],
        "optimize_s": result["optimize_s"],
        "open_s": result["open_s"],
        "rss_mb": queried["rss"] / 1e6,
        "ram_per_point": max(0.0, (queried["rss"] - before["rss"]) / n),
        "heap_per_point": max(0.0, (queried["anon"] - before["anon"]) / n),
        "disk_per_point": result["disk_bytes"] / n,
        "recall_hybrid": result["recall_hybrid"],
        "recall_dense": result["recall_dense"],
    }
    wal = 100 * result["wal_bytes"] / max(1, result["disk_bytes"])
    rows = [Row(f"{label}: index", index, note=f"{result['segments']} segments, WAL {wal:.0f}%")]
    for kind, stats in result["kinds"].items():
        values = {"points": float(n), "matching": stats["matching"]}
        values |= {k: stats[k] for k in ("p50_ms", "p99_ms", "queries")}
        rows.append(Row(f"{label}: {kind}", values))
    return rows


def notes(
    measured: dict[tuple[int, str], dict[str, Any]], variants: list[str], args: Any
) -> list[str]:
    out = [
        "Synthetic points (see scale_shard): SPLADE-like sparse vectors (150-400 terms, "
        "Zipf-like ids over 32,768), 512-d dense vectors with a 64-d structure, 20 tenants "
        "(tenant-00 half the points), metadata source (payload-indexed) and topic (not "
        "indexed), 50 values each; every query made from one document. Store requests as "
        "HybridIndex sends them (fused top 10 of sparse and dense prefetch 100, RRF, plus "
        f"both candidate lists), {args.scale_queries} queries per kind, fewer where a kind spent "
        f"its {args.scale_kind_budget:g} s budget (at least 20). Open: EdgeShard.load "
        "alone (EdgeStore.open adds its manifest checks), with the files in the page cache "
        "(just written). RAM per point: the measuring "
        "process's resident memory after the queries less before the open, over the points "
        "(file-backed pages of mapped files count while they are resident). Disk: allocated "
        "blocks (st_blocks x 512) of the shard folder after close, write-ahead log included. "
        f"Recall: {args.scale_recall_queries} queries, top 10 against the same request with "
        "exact search (quantisation ignored).",
    ]
    out += [f"Variant {v}: {VARIANTS[v].description}." for v in variants]
    sizes = sorted({n for n, _ in measured})
    for variant in variants:
        have = [n for n in sizes if (n, variant) in measured]
        if len(have) >= 2:
            small, large = have[-2], have[-1]
            out.append(growth(variant, small, large, measured))
    out += goal_notes(measured, variants)
    return out


def _p50(result: dict[str, Any], kind: str) -> float:
    return float(result["kinds"][kind]["p50_ms"])


def _ram(result: dict[str, Any]) -> float:
    return max(0.0, result["rss_queried"]["rss"] - result["rss_before"]["rss"])


def growth(variant: str, small: int, large: int, measured: dict[Any, Any]) -> str:
    a, b = measured[(small, variant)], measured[(large, variant)]
    factor = large / small
    parts = [
        f"{kind} p50 x{_p50(b, kind) / _p50(a, kind):.2f}"
        for kind in (UNFILTERED, INDEXED, UNINDEXED, TENANT)
    ]
    ram = _ram(b) / max(1.0, _ram(a))
    optimize = b["optimize_s"] / max(a["optimize_s"], 1e-9)
    return (
        f"Growth {small:,} -> {large:,} points (x{factor:.3g}), {variant}: "
        + ", ".join(parts)
        + f"; resident memory x{ram:.2f}, optimize() x{optimize:.1f}."
    )


def goal_notes(measured: dict[tuple[int, str], dict[str, Any]], variants: list[str]) -> list[str]:
    """Each goal, met or not, at the largest size measured (and said so below 1M)."""
    out = []
    for variant in variants:
        have = sorted(n for n, v in measured if v == variant)
        if not have:
            continue
        n = have[-1]
        result = measured[(n, variant)]
        where = f"{variant} at {n:,} points" + ("" if n >= GOAL_POINTS else " (not 1M)")
        hybrid, filtered = _p50(result, UNFILTERED), _p50(result, INDEXED)
        ram = _ram(result) / n
        out.append(
            f"Goal hybrid p50 <= {GOALS['hybrid_p50_ms']:g} ms, {where}: {hybrid:.2f} ms, "
            f"{_met(hybrid <= GOALS['hybrid_p50_ms'])}. Goal filtered p50 <= "
            f"{GOALS['filtered_p50_ms']:g} ms with a payload index: {filtered:.2f} ms, "
            f"{_met(filtered <= GOALS['filtered_p50_ms'])}. RAM {ram:,.0f} B/point"
            + (
                f", goal <= {GOALS['int8_ram_per_point']:,.0f} B/point with quantisation "
                f"{_met(ram <= GOALS['int8_ram_per_point'])}"
                if variant.startswith("int8")
                else ""
            )
            + "."
        )
        if n < GOAL_POINTS and len(have) >= 2:
            out.append(extrapolated(variant, have[-2], n, measured))
    return out


def extrapolated(variant: str, small: int, large: int, measured: dict[Any, Any]) -> str:
    """On paper, to 1M: each p50 along the power law through the two largest sizes measured
    (p50 ~ points^k), memory and disk at the largest size's bytes per point."""
    a, b = measured[(small, variant)], measured[(large, variant)]
    steps = math.log(GOAL_POINTS / large) / math.log(large / small)
    parts = [
        f"{kind} ~{_p50(b, kind) * (_p50(b, kind) / _p50(a, kind)) ** steps:.1f} ms"
        for kind in (UNFILTERED, INDEXED, TENANT)
    ]
    ram = _ram(b) / large * GOAL_POINTS / 1e9
    disk = b["disk_bytes"] / large * GOAL_POINTS / 1e9
    return (
        f"Extrapolated on paper to {GOAL_POINTS:,} points, {variant} (not measured): "
        + ", ".join(parts)
        + f"; resident memory ~{ram:.1f} GB, disk ~{disk:.1f} GB."
    )


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"
