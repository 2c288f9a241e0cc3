"""`rag-splade mcp`: the MCP tools over stdio, for desktop and IDE agents.

The agent starts this command and talks MCP over its stdin and stdout. Models, device and
index come from the same RAG_SPLADE_* settings as every command (and the flags below).
The tools are read-only unless --write-tools (or RAG_SPLADE_MCP_WRITE_TOOLS) is given;
--tenant scopes every tool to one tenant. The HTTP service offers the same tools at /mcp,
scoped by the caller's key. Needs the api extra: pip install 'rag-splade[api]'.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from .index_options import add_index_arguments, add_tenant_argument, index_overrides

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    group = add_index_arguments(parser)
    add_tenant_argument(group)
    parser.add_argument("--sparse-model", help="SPLADE model: hub id or local folder")
    parser.add_argument("--dense-model", help="dense model: hub id or local folder")
    parser.add_argument(
        "--write-tools",
        action="store_true",
        default=None,
        help="also offer add_documents and delete_document (RAG_SPLADE_MCP_WRITE_TOOLS)",
    )


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from rag_splade.api.config import ServiceSettings
    from rag_splade.store.tenants import DEFAULT_TENANT, check_tenant

    from .index_options import settings_problem

    try:
        overrides = index_overrides(args, "sparse_model", "dense_model")
        if args.write_tools:
            overrides["mcp_write_tools"] = True
        settings = ServiceSettings(**overrides, log_json=True)
        tenant = check_tenant(args.tenant or DEFAULT_TENANT)
    except ValidationError as e:
        print(f"rag-splade mcp: {settings_problem(e)}", file=sys.stderr)
        return EXIT_USAGE
    except (TypeError, ValueError) as e:
        print(f"rag-splade mcp: {e}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_serve(settings, tenant))


async def _serve(settings: object, tenant: str) -> int:
    from rag_splade.api.auth import Access
    from rag_splade.api.config import ServiceSettings
    from rag_splade.api.mcp import build_mcp_server
    from rag_splade.api.observability import Metrics, configure_logging
    from rag_splade.api.runtime import Runtime
    from rag_splade.keys import Principal

    assert isinstance(settings, ServiceSettings)
    writes = settings.mcp_write_tools
    # the local user: one tenant, read or write as the flags say; logs go to stderr only
    principal = Principal("stdio", "write" if writes else "read", (tenant,))
    runtime = Runtime(settings, Metrics(), configure_logging(True))
    await runtime.start()
    try:
        while runtime.state in ("loading", "store_unavailable"):
            await asyncio.sleep(0.1)
        if runtime.state != "ready":
            print(f"rag-splade mcp: {runtime.detail}", file=sys.stderr)
            return EXIT_FAILED
        server = build_mcp_server(
            runtime, settings, lambda ctx, role: Access(principal, tenant), writes=writes
        )
        await server.run_stdio_async()
    finally:
        await runtime.stop()
    return EXIT_OK
