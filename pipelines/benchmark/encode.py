"""Section 1: sparse document encoding, rag_splade against LlamaIndex and sentence-transformers.

Each path runs in a subprocess (`encode_worker`) on the same model, texts and device; the
parent samples its resident memory and kills it above `--memory-cap-gb`, reporting the kill
instead of crashing.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import BenchContext, Row, Section, cpu_line, document_texts
from .gates import fidelity, load_vectors

COLUMNS = [
    ("docs_per_s", "docs/s"),
    ("tokens_per_s", "tokens/s"),
    ("x_llama_index", "x LlamaIndex"),
    ("x_sentence_transformers", "x ST"),
    ("tokenize_pct", "tokenizer share %"),
    ("peak_mem_gb", "peak mem GB"),
    ("top20_overlap", "top-20 overlap vs fp32"),
    ("cosine", "cosine vs fp32"),
    ("gate_top20", "gate: lexical top-20 overlap"),
    ("gate_ndcg_loss_pct", "gate: nDCG@10 loss %"),
]
SAVE_VECTORS = 32
SETS = {"sample": "sample", "jsquad": "JSQuAD", "512": "512-token windows"}
ONNX_ROW = "rag_splade SpladeEncoder float32, ONNX Runtime"
ONNX_INT8_ROW = "rag_splade SpladeEncoder, ONNX Runtime int8"
TORCH_INT8_ROW = "rag_splade SpladeEncoder, PyTorch dynamic int8"
LLAMA_ROW = "LlamaIndex default_sparse_encoder fp32, torch.no_grad"


def dtypes(arg: str, device: str, cpu_bf16: bool) -> list[str]:
    """`auto`: float32 and bfloat16 on a CPU with bf16 instructions, float32 on other CPUs,
    bfloat16 on CUDA; otherwise the comma-separated list as given."""
    if arg != "auto":
        return [d.strip() for d in arg.split(",") if d.strip()]
    if device.startswith("cuda"):
        return ["bfloat16"]
    return ["float32", "bfloat16"] if cpu_bf16 else ["float32"]


def run_path(
    spec: dict[str, Any], memory_cap_gb: float, timeout_s: float
) -> tuple[dict[str, Any] | None, str]:
    """Run one path in a subprocess; `(result, status)` with status `ok` or why it stopped."""
    import psutil

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", f"{__package__}.encode_worker", f.name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watched = psutil.Process(proc.pid)
    peak = 0.0
    status = "ok"
    start = time.monotonic()
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, watched.memory_info().rss / 2**30)
        if peak > memory_cap_gb:
            proc.kill()
            status = f"killed: over the {memory_cap_gb:g} GB memory cap"
            break
        if time.monotonic() - start > timeout_s:
            proc.kill()
            status = f"killed: over the {timeout_s:g} s time limit"
            break
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    Path(f.name).unlink(missing_ok=True)
    if status != "ok":
        return None, status
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            result["rss_sampled_gb"] = peak
            return result, "ok"
    last = (stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    if proc.returncode and proc.returncode < 0:
        return None, f"killed by signal {-proc.returncode} (out of memory?)"
    return None, f"failed: {last[:160]}"


def add_arguments(parser: Any) -> None:
    add = parser.add_argument
    add(
        "--encode-sets",
        default="sample,jsquad,512",
        help="encode section text sets, side by side: sample (--docs texts of --texts, by "
        "default the bundled sample), jsquad (--jsquad-docs JSQuAD test paragraphs as written, "
        "title included; needs --jsquad-dir), 512 (--window-docs windows of 512 tokens)",
    )
    add(
        "--jsquad-dir",
        default=os.environ.get("RAG_SPLADE_JSQUAD_DIR"),
        help="folder of JSQuAD v1.3 (valid-v1.3.json, test-v1.3.json); default "
        "$RAG_SPLADE_JSQUAD_DIR",
    )
    add("--jsquad-docs", type=int, default=32, help="JSQuAD test paragraphs in the jsquad set")
    add("--window-docs", type=int, default=16, help="512-token windows in the 512 set")
    add(
        "--int8",
        default="onnx,torch",
        help="encode section int8 rows (CPU): onnx (ONNX Runtime), torch (PyTorch dynamic); "
        "'' for none",
    )


def text_sets(args: Any, ctx: BenchContext) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """`(label, texts)` of each chosen set, and notes on the sets left out."""
    from .tokenizer import contexts

    chosen = [s.strip() for s in args.encode_sets.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SETS))
    if unknown:
        raise ValueError(f"--encode-sets: unknown {unknown}; choose from {list(SETS)}")
    sets: list[tuple[str, list[str]]] = []
    notes: list[str] = []
    for name in chosen:
        if name == "sample":
            sets.append((SETS[name], ctx.doc_texts))
        elif name == "512":
            sets.append((SETS[name], document_texts(ctx.paragraphs, args.window_docs, "512")))
        elif not args.jsquad_dir:
            notes.append("JSQuAD set left out: no --jsquad-dir (or RAG_SPLADE_JSQUAD_DIR).")
        else:
            texts = contexts(Path(args.jsquad_dir) / "test-v1.3.json")[: args.jsquad_docs]
            sets.append((SETS[name], texts))
    return sets, notes


def path_list(args: Any, kinds: list[str], int8: list[str]) -> list[tuple[str, dict[str, Any]]]:
    paths: list[tuple[str, dict[str, Any]]] = [
        (f"rag_splade SpladeEncoder {d}", {"path": "rag_splade", "dtype": d}) for d in kinds
    ]
    paths += [
        (
            f"rag_splade SpladeEncoder {kinds[0]}, {n} tokenizer workers",
            {"path": "rag_splade", "dtype": kinds[0], "tokenizer_workers": n},
        )
        for n in args.tokenizer_workers
        if n > 0
    ]
    cpu_fp32 = args.device == "cpu" and "float32" in kinds
    onnx = cpu_fp32 and _onnx_availability(args.device, kinds) is None
    if onnx:
        paths.append((ONNX_ROW, {"path": "rag_splade", "dtype": "float32", "backend": "onnx"}))
    if onnx and "onnx" in int8:
        paths.append(
            (ONNX_INT8_ROW, {"path": "rag_splade", "dtype": "float32", "backend": "onnx-int8"})
        )
    if cpu_fp32 and "torch" in int8:
        paths.append(
            (TORCH_INT8_ROW, {"path": "rag_splade", "dtype": "float32", "quantize": "torch-int8"})
        )
    if not args.skip_peers:
        peer_dtype = kinds[0]
        paths += [
            (
                f"sentence-transformers encode_document {peer_dtype}",
                {"path": "sentence_transformers", "dtype": peer_dtype},
            ),
            (LLAMA_ROW, {"path": "llama_index", "dtype": "float32", "no_grad": True}),
        ]
        if not args.skip_llama_as_called:
            paths.append(
                (
                    "LlamaIndex default_sparse_encoder fp32, as QdrantVectorStore calls it",
                    {"path": "llama_index", "dtype": "float32", "no_grad": False},
                )
            )
    return paths


def run(args: Any, ctx: BenchContext) -> Section:
    from transformers import AutoTokenizer

    section = Section("encode", "1. Sparse document encoding", COLUMNS)
    model = str(ctx.models["splade"])
    tokenizer = AutoTokenizer.from_pretrained(model)
    kinds = dtypes(args.dtype, args.device, ctx.machine["cpu_bf16"])
    int8 = [k.strip() for k in args.int8.split(",") if k.strip()]
    paths = path_list(args, kinds, int8)
    sets, set_notes = text_sets(args, ctx)
    workdir = Path(tempfile.mkdtemp(prefix="rag-splade-bench-"))
    set_lines = []
    for set_label, texts in sets:
        lengths = [
            len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"]
        ]
        tokens = sum(lengths)
        set_lines.append(
            f"{set_label}: {len(texts)} documents, {tokens:,} tokens after truncation at 512 "
            f"(mean {tokens / max(1, len(texts)):.0f} a document)"
        )
        vectors: dict[str, list[dict[int, float]]] = {}
        set_rows: list[Row] = []
        for label, extra in paths:
            name = f"{set_label}: {label}"
            spec = {
                "model": model,
                "texts": texts,
                "device": args.device,
                "warmup": min(2, len(texts)),
                "save_vectors": SAVE_VECTORS,
                "vectors_out": str(workdir / f"{len(section.rows) + len(set_rows)}.npz"),
                "max_batch_tokens": args.max_batch_tokens,
                **extra,
            }
            print(f"  encode: {name} ...", file=sys.stderr, flush=True)
            result, status = run_path(spec, args.memory_cap_gb, args.encode_timeout)
            row = Row(name, status=status)
            if result is not None:
                row.metrics = _metrics(result, tokens)
                if result.get("cuda_peak_gb") is not None:
                    row.note = f"GPU memory; process RSS {result['rss_peak_gb']:.2f} GB"
                if Path(spec["vectors_out"]).exists():
                    vectors[name] = load_vectors(Path(spec["vectors_out"]))
            set_rows.append(row)
        _ratios(set_rows)
        _fidelity_notes(section, set_rows, vectors)
        section.rows += set_rows
    onnx_note = _onnx_availability(args.device, kinds)
    if onnx_note:
        section.notes.append(onnx_note)
    section.notes += set_notes
    _gates(args, ctx, section, kinds, int8)
    section.notes.insert(0, cpu_line(ctx.machine))
    section.notes.insert(
        1,
        "Text sets: "
        + "; ".join(set_lines)
        + f". Device {args.device}; model {ctx.model_label}. Each path runs in its own "
        f"process (model loaded and warmed up on 2 documents before timing). Tokenizer share: "
        f"the time the encoder's own tokenization (the fast MeCab + Rust WordPiece path for "
        f"this tokenizer) takes alone on the same texts, as a share of the path's time (with "
        f"tokenizer workers it runs in other processes, mostly while the model works). Peak "
        f"memory is that process's RSS high-water mark (CPU) or torch.cuda.max_memory_allocated "
        f"(GPU). Memory cap {args.memory_cap_gb:g} GB. Ratios are within a text set.",
    )
    return section


def _metrics(result: dict[str, Any], tokens: int) -> dict[str, float]:
    cuda_peak = result.get("cuda_peak_gb")
    metrics = {
        "docs_per_s": result["docs"] / result["seconds"],
        "tokens_per_s": tokens / result["seconds"],
        "peak_mem_gb": cuda_peak if cuda_peak is not None else result["rss_peak_gb"],
        "nnz_mean": result["nnz_mean"],
    }
    if result.get("tokenize_s") is not None:
        metrics["tokenize_pct"] = 100.0 * result["tokenize_s"] / result["seconds"]
    return metrics


def _gates(
    args: Any, ctx: BenchContext, section: Section, kinds: list[str], int8: list[str]
) -> None:
    """The lexical model's fidelity gates for every inexact CPU path that ran."""
    if args.device != "cpu":
        return
    from . import gates
    from .common import jsquad

    gated = [k for k in kinds if k in ("bfloat16", "float16")]
    gated += [f"{k}-int8" for k in int8 if f"{k}-int8" in gates.KINDS]
    if not gated:
        return
    if args.jsquad_dir:
        source = "all JSQuAD valid paragraphs and questions"
        paragraphs, questions = jsquad(str(Path(args.jsquad_dir) / "valid-v1.3.json"))
    else:
        source = "the bundled JSQuAD sample's paragraphs and questions"
        paragraphs, questions = ctx.paragraphs, ctx.questions
    cache = Path(tempfile.mkdtemp(prefix="rag-splade-gates-"))
    results = gates.run_gates(ctx.models["lexical"], gated, paragraphs, questions, cache)
    row_of = {
        "bfloat16": "SpladeEncoder bfloat16",
        "float16": "SpladeEncoder float16",
        "onnx-int8": ONNX_INT8_ROW,
        "torch-int8": TORCH_INT8_ROW,
    }
    for kind, result in results.items():
        for row in section.rows:
            if row.name.endswith(row_of[kind]) and row.metrics:
                row.metrics["gate_top20"] = result["gate_top20"]
                row.metrics["gate_ndcg_loss_pct"] = result["gate_ndcg_loss_pct"]
                row.note = "gate met" if result["passed"] else "gate MISSED"
    any_result = next(iter(results.values()))
    section.notes.append(
        f"Fidelity gates (lexical test model, {source}: {len(paragraphs)} paragraphs, "
        f"{len(questions)} questions; float32 nDCG@10 {any_result['ndcg10_float32']:.4f}): a "
        f"fast path passes with a top-20 term overlap >= {gates.MIN_TOP20} against float32 "
        f"and an nDCG@10 loss <= {gates.MAX_NDCG_LOSS_PCT:g}%. "
        + "; ".join(
            f"{k}: overlap {r['gate_top20']:.3f}, nDCG@10 {r['gate_ndcg10']:.4f} "
            f"(loss {r['gate_ndcg_loss_pct']:.2f}%), {'met' if r['passed'] else 'MISSED'}"
            for k, r in results.items()
        )
        + ". The other fidelity columns compare vectors of the random speed model."
    )


def _onnx_availability(device: str, kinds: list[str]) -> str | None:
    """None when the ONNX Runtime row can run, else why it is left out."""
    import importlib.util

    if device != "cpu" or "float32" not in kinds:
        return "ONNX Runtime row left out: it runs on the CPU in float32 only."
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return "ONNX Runtime row left out: onnx/onnxruntime not installed (extra `onnx`)."
    return None


def _ratios(rows: list[Row]) -> None:
    """Each row's speed against the LlamaIndex and sentence-transformers rows of its set."""

    def rate(part: str) -> float | None:
        for row in rows:
            if part in row.name and "docs_per_s" in row.metrics:
                return row.metrics["docs_per_s"]
        return None

    llama = rate(LLAMA_ROW)
    st = rate("sentence-transformers")
    for row in rows:
        if "docs_per_s" not in row.metrics:
            continue
        if llama:
            row.metrics["x_llama_index"] = row.metrics["docs_per_s"] / llama
        if st:
            row.metrics["x_sentence_transformers"] = row.metrics["docs_per_s"] / st


def _fidelity_notes(
    section: Section, rows: list[Row], vectors: dict[str, list[dict[int, float]]]
) -> None:
    """Inexact rows get their overlap and cosine against the set's fp32 row; the exact ones
    are listed with their largest difference."""
    ref_label = next((k for k in vectors if k.endswith("SpladeEncoder float32")), None)
    if ref_label is None:
        return
    ref = vectors[ref_label]
    same = []
    for row in rows:
        if row.name not in vectors or row.name == ref_label:
            continue
        fid = fidelity(vectors[row.name], ref)
        if any(tag in row.name for tag in ("bfloat16", "float16", "int8")):
            row.metrics["top20_overlap"] = fid["top20_overlap"]
            row.metrics["cosine"] = fid["cosine"]
        else:
            same.append(f"{row.name.split(': ', 1)[1]}: max |Δ| {fid['max_abs_diff']:.2g}")
    if same:
        section.notes.append(
            f"Fidelity, {ref_label.split(': ', 1)[0]}: on the first {SAVE_VECTORS} documents "
            f"the exact paths give the same vectors as fp32 ({'; '.join(same)})."
        )
