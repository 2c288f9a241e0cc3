"""A LlamaIndex RAG set-up on rag_splade, as a LlamaIndex user writes it.

Models and index come from RAG_SPLADE_* settings (hub ids by default, or local
directories). The LLM is LlamaIndex's MockLLM unless you pass your own.

    python examples/llama_index_rag.py "日本で梅雨がないのは北海道とどこか。"
"""

from __future__ import annotations

import sys

from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from rag_splade import HybridIndex, Settings
from rag_splade.llama_index import SpladeHybridRetriever
from rag_splade.sample import sample_documents


def main(question: str) -> None:
    index = HybridIndex.from_settings(Settings())
    index.add(sample_documents())  # Japanese Wikipedia paragraphs (JSQuAD, CC BY-SA 4.0)

    retriever = SpladeHybridRetriever(index, similarity_top_k=3)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query(question)

    print(f"Q: {question}\nA: {response}\n")
    for n, source in enumerate(response.source_nodes, start=1):
        meta = source.node.metadata
        print(f"[{n}] {meta['doc_id']}  score={source.score:.4f}  matched: {meta['key_terms']}")
        print(f"    {source.node.get_content()[:80]}…")
    index.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "日本で梅雨がないのは北海道とどこか。")
