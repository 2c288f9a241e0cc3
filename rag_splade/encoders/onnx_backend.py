"""ONNX Runtime backend for `SpladeEncoder` on CPU (`backend="onnx"`, extra `onnx`).

The masked LM and the SPLADE-max pooling are exported together into one ONNX graph: token
ids and attention mask in, the `[batch, vocab]` SPLADE weights out. ONNX Runtime runs it on
the encoder's own tokenization and token-budget batches, so only the forward pass changes.
(sentence-transformers' `backend="onnx"` goes through optimum, which does not support
transformers 5, and pools outside the graph over the full logits.)

The export is cached under `<cache_dir>/<sha256 of the config and weights>/splade.onnx`,
so each model is exported once (its cost is in the benchmark docs) and any change to its
weights makes a new export.

`backend="onnx-int8"` runs the same graph with its weights quantised to int8 by ONNX
Runtime's dynamic quantisation (weights int8 per tensor, activations quantised on the fly):
several times faster on a CPU with int8 dot-product instructions (VNNI), at a small loss of
fidelity that the benchmark measures (top-20 term overlap and nDCG@10 against float32). It
is opt-in because its vectors are not float32's. The quantised file is cached next to the
float32 export (`splade-int8.onnx`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEFAULT_CACHE = Path.home() / ".cache" / "rag_splade" / "onnx"
EXPORT_VERSION = "1"  # bump when the exported graph changes
OPSET = 18


class _SpladeGraph(torch.nn.Module):
    """What gets exported: the MLM and the pooling of `splade_forward`, in one graph."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).logits
        logits = logits.masked_fill((attention_mask == 0)[:, :, None], float("-inf"))
        return torch.log1p(torch.relu(logits.amax(1)))


def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's config and every weight: the key of its cached export."""
    digest = hashlib.sha256(f"rag_splade-onnx-{EXPORT_VERSION}-{torch.__version__}".encode())
    config = getattr(model, "config", None)
    if config is not None:
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def export(model: torch.nn.Module, cache_dir: str | Path | None = None) -> Path:
    """The ONNX file of `model` (a masked LM in float32 on CPU), exported if not cached."""
    target = Path(cache_dir or DEFAULT_CACHE) / model_digest(model) / "splade.onnx"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([[2, 100, 200, 3], [2, 300, 3, 0]])
    mask = (ids != 0).long()
    fd, partial = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():  # tracer notes about shape-dependent Python code
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _SpladeGraph(model.eval()),
                (ids, mask),
                partial,
                dynamo=False,
                input_names=["input_ids", "attention_mask"],
                output_names=["splade"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "length"},
                    "attention_mask": {0: "batch", 1: "length"},
                    "splade": {0: "batch"},
                },
                opset_version=OPSET,
            )
        os.replace(partial, target)  # whole or not at all: a cut export is never reused
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return target


def _no_preprocess_notice(record: logging.LogRecord) -> bool:
    """Drop the notice ONNX Runtime logs to suggest its optional shape pre-processing pass."""
    return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(path: str | Path) -> Path:
    """The int8 version of an exported graph (`splade-int8.onnx` beside it), made if missing:
    ONNX Runtime's dynamic quantisation of the MatMul/Gemm weights (QInt8)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = Path(path)
    target = source.with_name("splade-int8.onnx")
    if target.exists():
        return target
    fd, partial = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        root = logging.getLogger()
        root.addFilter(_no_preprocess_notice)
        try:
            quantize_dynamic(str(source), partial, weight_type=QuantType.QInt8)
        finally:
            root.removeFilter(_no_preprocess_notice)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return target


class OnnxSplade:
    """An ONNX Runtime session over an exported graph: `(ids, mask) -> [batch, vocab]`."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> torch.Tensor:
        (weights,) = self.session.run(
            ["splade"], {"input_ids": input_ids, "attention_mask": attention_mask}
        )
        return torch.from_numpy(weights)


def load(
    model: torch.nn.Module, cache_dir: str | Path | None = None, *, int8: bool = False
) -> OnnxSplade:
    """Export `model` (once), quantise it to int8 if asked (once), open it in ONNX Runtime."""
    _onnxruntime()  # before a slow export, not after
    path = export(model, cache_dir)
    return OnnxSplade(quantize_int8(path) if int8 else path)


def _onnxruntime() -> Any:
    try:
        import onnx  # noqa: F401  # the exporter writes through it
        import onnxruntime
    except ImportError as e:
        raise ImportError(
            'backend="onnx" needs onnx and onnxruntime: pip install "rag-splade[onnx]"'
        ) from e
    return onnxruntime
