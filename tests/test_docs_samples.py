"""The README's and the docs' samples run as written, on the tiny offline models.

`bash` blocks of the pages a new user follows first, and `python` blocks of every page,
run in a scratch copy of the checkout with the models set through the documented
variables (`RAG_SPLADE_SPARSE_MODEL`, `RAG_SPLADE_DENSE_MODEL`); the default hub ids
written in a sample are replaced by the tiny models' folders. The blocks of one page run
in order, as one shell session (bash) or in one namespace (Python). A block that cannot run
offline is marked on the line before it with `<!-- not run: REASON -->`; each one is
reported as a skipped test with its reason, and any other block that fails fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The pages whose shell commands a new user types first, in a checkout.
BASH_PAGES = ("README.md", "docs/getting-started.md", "docs/library.md", "docs/ingest.md")
PYTHON_PAGES = ("README.md", *sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md")))
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.*?)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
RUN_LANGS = ("bash", "python")
# Top-level entries of the checkout that the scratch copy does not link: what the samples
# write (indexes, models, inputs) stays in the copy, never in the checkout.
NOT_LINKED = {".git", "data", "models", "site", "notes", "test-artifacts", "faq.jsonl"}


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    not_run: str | None  # the reason given, or None for a block that must run

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse_blocks(page: str) -> list[Block]:
    """Every fenced block of `page` with its language and its `not run` reason, if any."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{page}:{i + 1}: a code fence that is never closed"
        previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(previous)
        blocks.append(
            Block(
                page=page,
                line=i + 1,
                lang=opening["lang"],
                code="\n".join(lines[i + 1 : end]) + "\n",
                not_run=marker["reason"] if marker else None,
            )
        )
        i = end + 1
    return blocks


def page_blocks(page: str, lang: str) -> list[Block]:
    return [b for b in parse_blocks(page) if b.lang == lang]


def all_blocks() -> list[Block]:
    out = [b for page in BASH_PAGES for b in page_blocks(page, "bash")]
    return out + [b for page in PYTHON_PAGES for b in page_blocks(page, "python")]


def substitute(code: str, models: dict[str, Path]) -> str:
    """The sample with the real models' names replaced by the tiny models' folders."""
    for name, path in models.items():
        code = code.replace(name, str(path))
    return code


@pytest.fixture(scope="module")
def tiny_models(
    lexical_splade_path: Path, lexical_dense_path: Path, lexical_reranker_path: Path
) -> dict[str, Path]:
    """Real model names (hub ids, the download folders the docs name) -> tiny models."""
    return {
        "hotchpotch/japanese-reranker-cross-encoder-small-v1": lexical_reranker_path,
        "hotchpotch/japanese-splade-v2": lexical_splade_path,
        "cl-nagoya/ruri-v3-130m": lexical_dense_path,
        "/models/japanese-splade-v2": lexical_splade_path,
        "/models/ruri-v3-130m": lexical_dense_path,
    }


def scratch_checkout(where: Path, models: dict[str, Path]) -> Path:
    """A folder that looks like a checkout after `make demo-offline`: the checkout's
    entries linked (the virtual environment too), its own data/, and models/tiny/."""
    where.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED and not entry.name.startswith(".pytest"):
            (where / entry.name).symlink_to(entry)
    (where / "models" / "tiny").mkdir(parents=True)
    (where / "models" / "tiny" / "splade").symlink_to(models["hotchpotch/japanese-splade-v2"])
    (where / "models" / "tiny" / "dense").symlink_to(models["cl-nagoya/ruri-v3-130m"])
    return where


def sample_env(workdir: Path, models: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_SPLADE_")}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PWD=str(workdir),
        RAG_SPLADE_SPARSE_MODEL=str(models["hotchpotch/japanese-splade-v2"]),
        RAG_SPLADE_DENSE_MODEL=str(models["cl-nagoya/ruri-v3-130m"]),
        RAG_SPLADE_DEVICE="cpu",
    )
    return env


# --- the blocks are well formed ----------------------------------------------------------


def test_the_pages_have_samples_to_run() -> None:
    blocks = all_blocks()
    runnable = [b for b in blocks if b.not_run is None]
    assert {b.lang for b in runnable} == set(RUN_LANGS)
    assert {b.page for b in runnable} >= {"README.md", "docs/library.md", "docs/ingest.md"}


@pytest.mark.parametrize("page", sorted({*BASH_PAGES, *PYTHON_PAGES}))
def test_every_marker_names_a_reason_and_precedes_a_block(page: str) -> None:
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    blocks = parse_blocks(page)
    marked = {b.line for b in blocks if b.not_run is not None}
    # lines inside a block are samples, not markers (the docs show the marker itself)
    inside = {b.line + k for b in blocks for k in range(b.code.count("\n") + 1)}
    for n, line in enumerate(lines, start=1):
        if n not in inside and "not run" in line and line.lstrip().startswith("<!--"):
            match = NOT_RUN.match(line.strip())
            assert match and match["reason"], f"{page}:{n}: write `<!-- not run: why -->`"
            following = next(
                (m for m in range(n + 1, len(lines) + 1) if lines[m - 1].strip()), None
            )
            assert following in marked, f"{page}:{n}: the marker is not right above a block"


@pytest.mark.parametrize("page", sorted({*BASH_PAGES, *PYTHON_PAGES}))
def test_no_fence_is_indented(page: str) -> None:
    """An indented fence (inside a list) would be missed by the parser above."""
    text = (ROOT / page).read_text(encoding="utf-8")
    indented = re.findall(rf"^[ \t]+```(?:{'|'.join(RUN_LANGS)})\b", text, flags=re.M)
    assert not indented, f"{page}: move the indented code blocks to the left margin"


def _shown_reprs(code: str, name: str) -> list[list[str]]:
    """Keyword names of every `name(field=...)` repr written in the comments of `code`."""
    text = " ".join(line.strip().lstrip("#").strip() for line in code.splitlines())
    out = []
    for start in (m.end() for m in re.finditer(rf"{name}\((?=\w+=)", text)):
        depth, end = 1, start
        while depth and end < len(text):
            depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(text[end], 0)
            end += 1
        args = text[start : end - 1]
        out.append(re.findall(r"(?:^|,\s*)(\w+)=", re.sub(r"'[^']*'", "''", args)))
    return out


def test_a_term_match_is_shown_with_every_field() -> None:
    from rag_splade import TermMatch

    expected = [f.name for f in fields(TermMatch)]
    shown = [
        (b.where, keys)
        for page in PYTHON_PAGES
        for b in parse_blocks(page)
        for keys in _shown_reprs(b.code, "TermMatch")
    ]
    assert shown, "no page shows a TermMatch"
    wrong = [(where, keys) for where, keys in shown if keys != expected]
    assert not wrong, f"TermMatch is {expected}; the docs show {wrong}"


def test_every_make_target_named_in_the_docs_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.M))
    named = {
        (page, target)
        for page in sorted({*BASH_PAGES, *PYTHON_PAGES})
        # in inline code (`make demo`) or at a line's start in a block, never prose
        for target in re.findall(
            r"(?:`|^)make ([a-z][\w-]*)", (ROOT / page).read_text("utf-8"), flags=re.M
        )
    }
    assert {t for _, t in named} >= {"demo", "demo-offline", "install-lean", "docs-serve"}
    missing = sorted((page, t) for page, t in named if t not in targets)
    assert not missing, f"the docs name make targets the Makefile lacks: {missing}"


@pytest.mark.parametrize(
    "block", [b for b in all_blocks() if b.not_run], ids=lambda b: f"{b.where}-{b.lang}"
)
def test_blocks_not_run_here(block: Block) -> None:
    """Each marked block, reported as skipped with its reason (`pytest -rs` lists them)."""
    pytest.skip(f"{block.where}: not run: {block.not_run}")


# --- running them ------------------------------------------------------------------------


@pytest.mark.slow  # each page loads the models and builds an index: tens of seconds
@pytest.mark.parametrize("page", BASH_PAGES)
def test_bash_blocks_run(page: str, tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    """A page's blocks run as one shell session, as a reader types them into one terminal
    (`source .venv/bin/activate` and `export` carry over); each block announces itself on
    stderr, so the last announcement names the block that failed."""
    blocks = [b for b in page_blocks(page, "bash") if b.not_run is None]
    if not blocks:
        pytest.skip(f"{page} has no bash block to run")
    workdir = scratch_checkout(tmp_path / "checkout", tiny_models)
    script = "".join(
        f"printf '\\n=== %s\\n' {b.where!r} >&2\n{substitute(b.code, tiny_models)}" for b in blocks
    )
    out = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=workdir,
        env=sample_env(workdir, tiny_models),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, (
        f"{page}: a bash block failed (exit {out.returncode}; the last '===' line below "
        f"names it):\n{textwrap.indent(script, '    ')}\n--- stdout\n{out.stdout[-4000:]}\n"
        f"--- stderr\n{out.stderr[-6000:]}"
    )


# Runs the Python blocks of the pages given as JSON on stdin, each page in its own folder
# and namespace, and prints one JSON line per block: where, and the traceback if it failed
# (the rest of that page is then skipped: later blocks use what earlier ones made).
WORKER = r"""
import gc, json, os, sys, traceback
for page in json.load(sys.stdin):
    os.makedirs(page["workdir"], exist_ok=True)
    os.chdir(page["workdir"])
    os.environ["PWD"] = page["workdir"]
    namespace = {"__name__": "__main__"}
    failed = False
    for block in page["blocks"]:
        error = None
        if failed:
            error = "skipped: an earlier block of the page failed"
        else:
            try:
                exec(compile(block["code"], block["where"], "exec"), namespace)
            except BaseException:
                error, failed = traceback.format_exc(), True
        print(json.dumps({"where": block["where"], "error": error}), flush=True)
    namespace.clear()
    gc.collect()
"""


@pytest.fixture(scope="module")
def python_results(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> dict[str, str | None]:
    """{page:line: traceback or None} for every runnable Python block, run in one process
    (torch and LlamaIndex load once)."""
    root = scratch_checkout(tmp_path_factory.mktemp("python-samples") / "checkout", tiny_models)
    pages = []
    for n, page in enumerate(PYTHON_PAGES):
        blocks = [b for b in page_blocks(page, "python") if b.not_run is None]
        if blocks:
            pages.append(
                {
                    "workdir": str(root / "pages" / str(n)),
                    "blocks": [
                        {"where": b.where, "code": substitute(b.code, tiny_models)} for b in blocks
                    ],
                }
            )
    out = subprocess.run(
        [sys.executable, "-c", WORKER],
        input=json.dumps(pages),
        cwd=root,
        env=sample_env(root, tiny_models),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    results: dict[str, str | None] = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            results[entry["where"]] = entry["error"]
    assert out.returncode == 0 or results, f"the sample runner died:\n{out.stderr[-4000:]}"
    return results


@pytest.mark.slow  # one process loads torch, LlamaIndex and the models, and builds indexes
@pytest.mark.parametrize(
    "page", [p for p in PYTHON_PAGES if any(b.not_run is None for b in page_blocks(p, "python"))]
)
def test_python_blocks_run(page: str, python_results: dict[str, str | None]) -> None:
    for block in (b for b in page_blocks(page, "python") if b.not_run is None):
        assert block.where in python_results, f"{block.where}: the runner never reached it"
        error = python_results[block.where]
        assert error is None, f"{block.where}: this python block failed:\n{error}"
