"""Shared fixtures: tiny Japanese models built offline once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach the model hub; a stray hub id fails fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rag_splade import DenseEncoder, SpladeEncoder
from rag_splade.testing import build_dense_model, build_splade_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def lexical_splade_path(model_dir: Path) -> Path:
    return build_splade_model(model_dir / "splade-lexical", lexical=True)


@pytest.fixture(scope="session")
def random_splade_path(model_dir: Path, lexical_splade_path: Path) -> Path:
    return build_splade_model(model_dir / "splade-random", tokenizer_dir=lexical_splade_path)


@pytest.fixture(scope="session")
def lexical_dense_path(model_dir: Path, lexical_splade_path: Path) -> Path:
    return build_dense_model(
        model_dir / "dense-lexical", lexical=True, tokenizer_dir=lexical_splade_path
    )


@pytest.fixture(scope="session")
def random_dense_path(model_dir: Path, lexical_splade_path: Path) -> Path:
    return build_dense_model(model_dir / "dense-random", tokenizer_dir=lexical_splade_path)


@pytest.fixture(scope="session")
def splade(lexical_splade_path: Path) -> SpladeEncoder:
    """The lexical SPLADE model: sparse vectors, meaningful rankings."""
    return SpladeEncoder(str(lexical_splade_path), device="cpu")


@pytest.fixture(scope="session")
def random_splade(random_splade_path: Path) -> SpladeEncoder:
    return SpladeEncoder(str(random_splade_path), device="cpu")


@pytest.fixture(scope="session")
def dense(lexical_dense_path: Path) -> DenseEncoder:
    return DenseEncoder(str(lexical_dense_path), device="cpu")


@pytest.fixture(scope="session")
def random_dense(random_dense_path: Path) -> DenseEncoder:
    return DenseEncoder(str(random_dense_path), device="cpu")
