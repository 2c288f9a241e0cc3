"""Every notebook in notebooks/ runs top to bottom on the tiny offline models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "rag-splade-test"
# Seconds, and generous on purpose: a slow or busy machine must not fail a notebook (the
# slowest cell, 03's evaluation, takes seconds on an idle machine). The limits are only
# there so that a real hang fails, naming its cell, instead of stalling the run.
CELL_TIMEOUT = 900
KERNEL_STARTUP_TIMEOUT = 600


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernel spec that runs this interpreter, whatever kernels the machine has."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "rag_splade tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return root


@pytest.mark.slow  # a kernel that imports torch and the models, per notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(
    path: Path,
    kernel_dir: Path,
    lexical_splade_path: Path,
    lexical_dense_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    # The kernel inherits this environment: tiny models, CPU, no hub, no real LLM.
    env = {
        "RAG_SPLADE_SPARSE_MODEL": str(lexical_splade_path),
        "RAG_SPLADE_DENSE_MODEL": str(lexical_dense_path),
        "RAG_SPLADE_INDEX_PATH": str(tmp_path / "index"),
        "RAG_SPLADE_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "JUPYTER_PATH": str(kernel_dir),
        "MPLBACKEND": "Agg",
        "TOKENIZERS_PARALLELISM": "false",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("RAG_SPLADE_QDRANT_URL", "NOTEBOOK_LLM", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT,
        startup_timeout=KERNEL_STARTUP_TIMEOUT,
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    executed = [c for c in notebook.cells if c.cell_type == "code"]
    assert executed and all(c.execution_count for c in executed)
    if path.name == "01_quickstart.ipynb":  # the hits drawn inline by rag_splade.views
        shown = [
            o["data"]["text/html"]
            for c in executed
            for o in c.get("outputs", [])
            if "text/html" in o.get("data", {})
        ]
        assert any('class="rs-hit"' in h and 'class="rs-match' in h for h in shown)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for n, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} cell {n} has outputs: clear them"
            assert cell.get("execution_count") is None, f"{path.name} cell {n}: execution count"
