"""Shared fixtures: tiny Japanese models built offline once per session."""

from __future__ import annotations

import collections
import ctypes
import gc
import os
from pathlib import Path
from typing import Any

import pytest

# No test may reach the model hub; a stray hub id fails fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The suite compares vectors with float32 references: `dtype="auto"` would pick bf16 for
# SPLADE on a CPU with native bf16 (as CI's may have). Pinned here for this process and, via
# the setting, for the servers, CLIs and notebook kernels the tests start; the bf16 choice
# itself is tested on its own (tests/test_dtype_auto.py).
os.environ.setdefault("RAG_SPLADE_DTYPE", "float32")

import rag_splade.encoders.device as _device

_device.cpu_native_bf16 = lambda: None  # type: ignore[assignment]

from rag_splade import DenseEncoder, Reranker, SpladeEncoder  # noqa: E402
from rag_splade.testing import build_cross_encoder, build_dense_model, build_splade_model  # noqa: E402
from tests.stores import STORE_KINDS  # noqa: E402


def _recycle_mecab_taggers() -> None:
    """Reuse the MeCab tagger of a tokenizer that is gone instead of leaking it.

    fugashi's `GenericTagger` never destroys its MeCab instance (fugashi 1.5 has no
    `__dealloc__`), so every Japanese tokenizer loaded keeps unidic-lite's dictionary
    (sys.dic + matrix.bin, 260 MB) mapped until the process exits. One pytest process
    loads well over a hundred tokenizers: their mappings alone made up 2.2 GB of its RSS.
    Here a tagger goes back to a free list when the object that wrapped it is collected,
    and the next tagger built with the same arguments takes it. A tagger still has one
    owner at a time, as before (MeCab taggers are not thread-safe). Only this process is
    patched; spawned workers, subprocesses and notebook kernels use fugashi as it is.
    """
    import fugashi

    if getattr(fugashi.GenericTagger, "_recycling", False):
        return
    real = fugashi.GenericTagger
    spare: dict[Any, collections.deque[Any]] = {}

    class RecycledTagger:
        _recycling = True
        __slots__ = ("__weakref__", "_key", "_tagger")

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._key = (args, tuple(sorted(kwargs.items())))
            free = spare.get(self._key)
            try:
                tagger = free.pop() if free else None
            except IndexError:  # another thread took the last one
                tagger = None
            self._tagger = real(*args, **kwargs) if tagger is None else tagger

        def __call__(self, text: str) -> Any:
            return self._tagger(text)

        def __getattr__(self, name: str) -> Any:
            if name in RecycledTagger.__slots__:  # unset: the real tagger failed to start
                raise AttributeError(name)
            return getattr(self._tagger, name)

        def __del__(self, deque: Any = collections.deque) -> None:  # bound: safe at exit
            tagger = getattr(self, "_tagger", None)  # None: the real tagger failed to start
            if tagger is not None:
                spare.setdefault(self._key, deque()).append(tagger)

    fugashi.GenericTagger = RecycledTagger


_recycle_mecab_taggers()

try:
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc
    _malloc_trim = None


@pytest.hookimpl(trylast=True)  # after the module's fixtures are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After each test module: collect what its fixtures left (encoders, indexes, apps, and
    with them their taggers) and hand freed heap back, so the process does not keep the
    high-water mark of every module before it."""
    if nextitem is None or getattr(nextitem, "module", None) is not getattr(item, "module", None):
        gc.collect()
        if _malloc_trim is not None:
            _malloc_trim(0)


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


@pytest.fixture(scope="session")
def lexical_reranker_path(model_dir: Path, lexical_splade_path: Path) -> Path:
    return build_cross_encoder(
        model_dir / "reranker-lexical", lexical=True, tokenizer_dir=lexical_splade_path
    )


@pytest.fixture(scope="session")
def reranker(lexical_reranker_path: Path) -> Reranker:
    """The lexical cross-encoder: its score rises with the query tokens a passage holds."""
    return Reranker(str(lexical_reranker_path), device="cpu")


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Each store kind in turn (tests/stores.py): a test using it runs on both stores."""
    return str(request.param)
