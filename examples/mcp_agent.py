"""A LlamaIndex agent that answers from rag_splade's MCP tools, as an agent developer
wires it: `rag-splade mcp` is started over stdio, its tools become LlamaIndex tools, and
a FunctionAgent calls `search` and cites the numbered passages.

The 64 sample documents go into a temporary Edge index (never the one your settings
name). The LLM is a scripted LlamaIndex `MockFunctionCallingLLM` so the example runs
offline: it calls `search` with the question, then answers with the first passage and
its citation. Swap in a real function-calling LLM (`--llm` is left to you) and keep the
rest.

    python examples/mcp_agent.py "日本で梅雨がないのは北海道とどこか。"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any
from uuid import uuid4

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from mcp import Client, StdioServerParameters

from rag_splade import HybridIndex, Settings
from rag_splade.sample import sample_documents

QUESTION = "日本で梅雨がないのは北海道とどこか。"


def scripted(question: str) -> Any:
    """The mock LLM's turns: call `search`, then answer from the tool's first hit."""

    def respond(messages: list[ChatMessage], **kwargs: Any) -> ChatMessage:
        results = [m for m in messages if m.role == MessageRole.TOOL]
        if not results:
            call = ToolCallBlock(
                tool_call_id=f"call-{uuid4().hex}",
                tool_name="search",
                tool_kwargs={"query": question, "top_k": 3},
            )
            return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])
        found = json.loads(str(results[-1].content))
        first = found["hits"][0]
        answer = f"{first['text'][:60]}… [{first['n']}]（出典: {first['source']}）"
        return ChatMessage(role=MessageRole.ASSISTANT, content=answer)

    return respond


async def ask(question: str, index_path: Path) -> str:
    command = shutil.which("rag-splade") or str(Path(sys.executable).with_name("rag-splade"))
    server = StdioServerParameters(
        command=command,
        args=["mcp", "--index-path", str(index_path)],
        env={k: v for k, v in os.environ.items() if k.startswith(("RAG_SPLADE_", "HF_"))},
    )
    async with Client(server, read_timeout_seconds=300) as client:
        listed = (await client.list_tools()).tools

        def as_tool(name: str, description: str) -> FunctionTool:
            async def call(**arguments: Any) -> str:
                result = await client.call_tool(name, arguments)
                if result.is_error:
                    return f"error: {result.content[0].text}"
                return json.dumps(result.structured_content, ensure_ascii=False)

            return FunctionTool.from_defaults(async_fn=call, name=name, description=description)

        tools = [as_tool(t.name, t.description or "") for t in listed]
        llm = MockFunctionCallingLLM(response_generator=scripted(question))
        agent = FunctionAgent(tools=tools, llm=llm, system_prompt="資料を引用して答えてください。")
        response = await agent.run(user_msg=question)
    return str(response)


def main(question: str, index_path: Path) -> None:
    settings = Settings().model_copy(update={"index_path": index_path, "qdrant_url": None})
    with HybridIndex.from_settings(settings, load_reranker=False) as index:
        index.add(sample_documents())  # Japanese Wikipedia paragraphs (JSQuAD, CC BY-SA 4.0)
    print(f"Q: {question}\nA: {asyncio.run(ask(question, index_path))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("question", nargs="?", default=QUESTION)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-splade-mcp-example-") as folder:
        main(args.question, Path(folder) / "index")
