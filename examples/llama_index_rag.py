"""A LlamaIndex RAG set-up on rag_splade, as a LlamaIndex user writes it.

Models come from RAG_SPLADE_* settings: RAG_SPLADE_SPARSE_MODEL and RAG_SPLADE_DENSE_MODEL
(hub ids by default, or local directories; `rag-splade tiny-models` builds offline ones),
RAG_SPLADE_DEVICE and the other encoding settings. RAG_SPLADE_INDEX_PATH and
RAG_SPLADE_QDRANT_URL are NOT used: the 64 sample documents go into a temporary Edge index
that is deleted at the end; pass `--index-path DIR` to keep it in DIR.

The LLM is LlamaIndex's MockLLM: its answer is placeholder text, not an answer to the
question; the retrieved sources printed below it are real. Put your own LLM in its place.

    python examples/llama_index_rag.py "日本で梅雨がないのは北海道とどこか。"
    python examples/llama_index_rag.py --index-path ./data/example-index
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from pydantic import ValidationError

from rag_splade import HybridIndex, Settings
from rag_splade.errors import (
    DiskFullError,
    IndexInUseError,
    ModelUnavailableError,
    RemoteEncoderError,
    RemoteModelMismatchError,
)
from rag_splade.llama_index import SpladeHybridRetriever
from rag_splade.sample import sample_documents

QUESTION = "日本で梅雨がないのは北海道とどこか。"
# what a missing model, a bad setting or a busy disk raises: one line each, not a traceback
SETUP_ERRORS = (
    ModelUnavailableError,
    RemoteEncoderError,
    RemoteModelMismatchError,
    IndexInUseError,
    DiskFullError,
)


def main(question: str, index_path: Path) -> None:
    # Only this example's own index: not RAG_SPLADE_INDEX_PATH, not RAG_SPLADE_QDRANT_URL.
    settings = Settings().model_copy(update={"index_path": index_path, "qdrant_url": None})
    with HybridIndex.from_settings(settings) as index:
        index.add(sample_documents())  # Japanese Wikipedia paragraphs (JSQuAD, CC BY-SA 4.0)

        retriever = SpladeHybridRetriever(index, similarity_top_k=3)
        engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
        response = engine.query(question)

    print(f"Q: {question}\nA: {response}\n")
    for n, source in enumerate(response.source_nodes, start=1):
        meta = source.node.metadata
        print(f"[{n}] {meta['doc_id']}  score={source.score:.4f}  matched: {meta['key_terms']}")
        print(f"    {source.node.get_content()[:80]}…")


def run(argv: list[str] | None = None) -> int:
    """Parse `argv` and run; 2 with one line on stderr when the set-up fails."""
    parser = argparse.ArgumentParser(
        prog="llama_index_rag.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("question", nargs="?", default=QUESTION)
    parser.add_argument(
        "--index-path", type=Path, help="keep the example's index here (default: a temp folder)"
    )
    args = parser.parse_args(argv)
    try:
        if args.index_path is not None:
            main(args.question, args.index_path.absolute())
        else:
            with tempfile.TemporaryDirectory(prefix="rag-splade-example-") as folder:
                main(args.question, Path(folder) / "index")
    except SETUP_ERRORS as e:
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return 2
    except ValidationError as e:  # a RAG_SPLADE_* value Settings refuses
        problems = "; ".join(
            f"RAG_SPLADE_{'_'.join(map(str, err['loc'])).upper()}: {err['msg']}"
            for err in e.errors()
        )
        print(f"{parser.prog}: {problems}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run())
