"""Section 1: sparse document encoding, rag_splade against LlamaIndex and sentence-transformers.

Each path runs in a subprocess (`encode_worker`) on the same model, texts and device; the
parent samples its resident memory and kills it above `--memory-cap-gb`, reporting the kill
instead of crashing.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import Row, Section

COLUMNS = [
    ("docs_per_s", "docs/s"),
    ("tokens_per_s", "tokens/s"),
    ("x_llama_index", "x LlamaIndex"),
    ("x_sentence_transformers", "x ST"),
    ("tokenize_pct", "tokenizer share %"),
    ("peak_mem_gb", "peak mem GB"),
    ("top20_overlap", "top-20 overlap vs fp32"),
    ("cosine", "cosine vs fp32"),
]
SAVE_VECTORS = 32


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


def load_vectors(path: Path) -> list[dict[int, float]]:
    data = np.load(path)
    n = len([k for k in data.files if k.startswith("i")])
    return [
        dict(zip(data[f"i{i}"].tolist(), data[f"v{i}"].tolist(), strict=True)) for i in range(n)
    ]


def fidelity(
    test: list[dict[int, float]], ref: list[dict[int, float]], k: int = 20
) -> dict[str, float]:
    """Mean share of the reference's top-`k` terms kept, mean cosine, max absolute difference."""
    overlaps, cosines, diffs = [], [], [0.0]
    for a, b in zip(test, ref, strict=True):
        top_b = set(sorted(b, key=b.__getitem__, reverse=True)[:k])
        top_a = set(sorted(a, key=a.__getitem__, reverse=True)[:k])
        overlaps.append(len(top_a & top_b) / max(1, len(top_b)))
        dot = sum(a[i] * b[i] for i in set(a) & set(b))
        na = sum(v * v for v in a.values()) ** 0.5
        nb = sum(v * v for v in b.values()) ** 0.5
        cosines.append(dot / (na * nb) if na and nb else 0.0)
        diffs.append(max((abs(a.get(i, 0.0) - b.get(i, 0.0)) for i in set(a) | set(b)), default=0))
    return {
        "top20_overlap": float(np.mean(overlaps)),
        "cosine": float(np.mean(cosines)),
        "max_abs_diff": float(max(diffs)),
    }


def run(args: Any, ctx: dict[str, Any]) -> Section:
    from transformers import AutoTokenizer

    section = Section("encode", "1. Sparse document encoding", COLUMNS)
    model = str(ctx["models"]["splade"])
    texts: list[str] = ctx["doc_texts"]
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokens = sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"])
    kinds = dtypes(args.dtype, args.device, ctx["machine"]["cpu_bf16"])
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
    onnx_note = _onnx_availability(args.device, kinds)
    if onnx_note is None:
        paths.append(
            (
                "rag_splade SpladeEncoder float32, ONNX Runtime",
                {"path": "rag_splade", "dtype": "float32", "backend": "onnx"},
            )
        )
    if not args.skip_peers:
        peer_dtype = kinds[0]
        paths += [
            (
                f"sentence-transformers encode_document {peer_dtype}",
                {"path": "sentence_transformers", "dtype": peer_dtype},
            ),
            (
                "LlamaIndex default_sparse_encoder fp32, torch.no_grad",
                {"path": "llama_index", "dtype": "float32", "no_grad": True},
            ),
        ]
        if not args.skip_llama_as_called:
            paths.append(
                (
                    "LlamaIndex default_sparse_encoder fp32, as QdrantVectorStore calls it",
                    {"path": "llama_index", "dtype": "float32", "no_grad": False},
                )
            )
    workdir = Path(tempfile.mkdtemp(prefix="rag-splade-bench-"))
    vectors: dict[str, list[dict[int, float]]] = {}
    for label, extra in paths:
        spec = {
            "model": model,
            "texts": texts,
            "device": args.device,
            "warmup": min(2, len(texts)),
            "save_vectors": SAVE_VECTORS,
            "vectors_out": str(workdir / f"{len(vectors)}.npz"),
            "max_batch_tokens": args.max_batch_tokens,
            **extra,
        }
        print(f"  encode: {label} ...", file=sys.stderr, flush=True)
        result, status = run_path(spec, args.memory_cap_gb, args.encode_timeout)
        row = Row(label, status=status)
        if result is not None:
            cuda_peak = result.get("cuda_peak_gb")
            row.metrics = {
                "docs_per_s": result["docs"] / result["seconds"],
                "tokens_per_s": tokens / result["seconds"],
                "peak_mem_gb": cuda_peak if cuda_peak is not None else result["rss_peak_gb"],
                "nnz_mean": result["nnz_mean"],
            }
            if result.get("tokenize_s") is not None:
                row.metrics["tokenize_pct"] = 100.0 * result["tokenize_s"] / result["seconds"]
            if cuda_peak is not None:
                row.note = f"GPU memory; process RSS {result['rss_peak_gb']:.2f} GB"
            if Path(spec["vectors_out"]).exists():
                vectors[label] = load_vectors(Path(spec["vectors_out"]))
        section.rows.append(row)
    _ratios(section)
    _fidelity_notes(section, vectors, kinds)
    if onnx_note:
        section.notes.append(onnx_note)
    half = [d for d in kinds if d in ("bfloat16", "float16")]
    if half and not args.device.startswith("cuda"):
        section.notes.append(_lexical_fidelity(ctx, half[0]))
    avg = tokens / max(1, len(texts))
    section.notes.insert(
        0,
        f"{len(texts)} documents, {tokens:,} tokens after truncation at 512 "
        f"(mean {avg:.0f} a document), device {args.device}; model "
        f"{ctx['model_label']}. Each path runs in its own process (model loaded and warmed up "
        f"on 2 documents before timing). Tokenizer share: the time the Japanese tokenizer "
        f"(MeCab + WordPiece, slow Python, one thread) takes alone on the same texts, as a "
        f"share of the path's time (with tokenizer workers it runs in other processes, "
        f"mostly while the model works). Peak memory is that process's RSS high-water mark (CPU) "
        f"or torch.cuda.max_memory_allocated (GPU). Memory cap {args.memory_cap_gb:g} GB.",
    )
    return section


def _onnx_availability(device: str, kinds: list[str]) -> str | None:
    """None when the ONNX Runtime row can run, else why it is left out."""
    import importlib.util

    if device != "cpu" or "float32" not in kinds:
        return "ONNX Runtime row left out: it runs on the CPU in float32 only."
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return "ONNX Runtime row left out: onnx/onnxruntime not installed (extra `onnx`)."
    return None


def _ratios(section: Section) -> None:
    def rate(prefix: str) -> float | None:
        for row in section.rows:
            if row.name.startswith(prefix) and "docs_per_s" in row.metrics:
                return row.metrics["docs_per_s"]
        return None

    llama = rate("LlamaIndex default_sparse_encoder fp32, torch.no_grad")
    st = rate("sentence-transformers")
    for row in section.rows:
        if "docs_per_s" not in row.metrics:
            continue
        if llama:
            row.metrics["x_llama_index"] = row.metrics["docs_per_s"] / llama
        if st:
            row.metrics["x_sentence_transformers"] = row.metrics["docs_per_s"] / st


def _fidelity_notes(
    section: Section, vectors: dict[str, list[dict[int, float]]], kinds: list[str]
) -> None:
    ref_label = next((k for k in vectors if k.endswith("float32")), None)
    if ref_label is None:
        return
    ref = vectors[ref_label]
    same = []
    for row in section.rows:
        if row.name not in vectors or row.name == ref_label:
            continue
        fid = fidelity(vectors[row.name], ref)
        if "bfloat16" in row.name or "float16" in row.name:
            row.metrics["top20_overlap"] = fid["top20_overlap"]
            row.metrics["cosine"] = fid["cosine"]
        else:
            same.append(f"{row.name}: max |Δ| {fid['max_abs_diff']:.2g}")
    if same:
        section.notes.append(
            f"Fidelity: on the first {SAVE_VECTORS} documents the fp32 paths give the same "
            f"vectors as {ref_label} ({'; '.join(same)})."
        )


def _lexical_fidelity(ctx: dict[str, Any], dtype: str) -> str:
    """Half precision against fp32 on the lexical tiny model, whose vectors are sparse like a
    trained model's (a random model's are dense, with many near-equal weights)."""
    from rag_splade import SpladeEncoder

    texts = ctx["paragraphs"]
    model = str(ctx["models"]["lexical"])
    ref = SpladeEncoder(model, device="cpu", dtype="float32").encode_documents(texts)
    half = SpladeEncoder(model, device="cpu", dtype=dtype).encode_documents(texts)
    fid = fidelity([v.as_dict() for v in half], [v.as_dict() for v in ref])
    return (
        f"{dtype} fidelity on the lexical tiny model ({len(texts)} JSQuAD paragraphs, sparse "
        f"vectors like a trained model's): top-20 overlap {fid['top20_overlap']:.3f}, cosine "
        f"{fid['cosine']:.4f}, max |Δ| {fid['max_abs_diff']:.2g}. The table's fidelity columns "
        f"are on the random speed model, whose dense near-tied weights make top-20 fragile."
    )
