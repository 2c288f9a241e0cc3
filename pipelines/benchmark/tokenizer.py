"""Section: the Japanese tokenizer alone, `BertJapaneseTokenizer` against the fast path.

Both tokenize the same JSQuAD paragraphs as JSQuAD writes them (`title [SEP] text`, not
truncated) on one core (the Rust side's thread pool off), three times interleaved; the
median time counts. Every text's ids are compared: the fast path must give the same ids.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from .common import BenchContext, Row, Section, cpu_line

COLUMNS = [
    ("texts", "texts"),
    ("tokens", "tokens"),
    ("tokens_per_s", "tokens/s on one core"),
    ("x_slow", "x BertJapaneseTokenizer"),
    ("identical_pct", "ids identical %"),
]
REPEATS = 3


def contexts(path: Path) -> list[str]:
    """A JSQuAD file's paragraphs as written (`title [SEP] text`)."""
    raw = json.loads(path.read_text("utf-8"))
    return [p["context"] for article in raw["data"] for p in article["paragraphs"]]


def text_sets(args: Any) -> list[tuple[str, list[str]]]:
    from rag_splade.sample import sample_path

    sets = [("bundled sample", contexts(sample_path()))]
    folder = Path(args.jsquad_dir) if args.jsquad_dir else None
    if folder is not None:
        texts = contexts(folder / "valid-v1.3.json") + contexts(folder / "test-v1.3.json")
        sets.append(("JSQuAD valid + test", texts))
    return sets


def run(args: Any, ctx: BenchContext) -> Section:
    from transformers import AutoTokenizer

    from rag_splade.text.fast_tokenizer import fast_tokenizer_for

    section = Section("tokenizer", "2. Japanese tokenizer alone (one core)", COLUMNS)
    section.notes.append(cpu_line(ctx.machine))
    tokenizer = AutoTokenizer.from_pretrained(str(ctx.models["splade"]))
    fast = fast_tokenizer_for(tokenizer)
    if fast is None:
        section.notes.append(f"no fast path for {type(tokenizer).__name__}: nothing to compare")
        return section
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core: the Rust pool stays off
    try:
        for label, texts in text_sets(args):
            slow_s: list[float] = []
            fast_s: list[float] = []
            for _ in range(REPEATS):
                start = time.perf_counter()
                expected = tokenizer(texts)["input_ids"]
                slow_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                got = fast.encode(texts)
                fast_s.append(time.perf_counter() - start)
            same = sum(a.tolist() == b for a, b in zip(got, expected, strict=True))
            tokens = sum(len(ids) for ids in expected)
            slow_t, fast_t = statistics.median(slow_s), statistics.median(fast_s)
            common = {"texts": len(texts), "tokens": tokens}
            section.rows += [
                Row(
                    f"{label}: BertJapaneseTokenizer",
                    {**common, "tokens_per_s": tokens / slow_t, "x_slow": 1.0},
                ),
                Row(
                    f"{label}: fast path (MeCab -Owakati + Rust WordPiece)",
                    {
                        **common,
                        "tokens_per_s": tokens / fast_t,
                        "x_slow": slow_t / fast_t,
                        "identical_pct": 100.0 * same / len(texts),
                    },
                    status="ok" if same == len(texts) else f"{len(texts) - same} texts differ",
                ),
            ]
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before
    section.notes.append(
        f"Tokenizer of the speed model ({ctx.model_label}); paragraphs as JSQuAD writes "
        f"them, title and [SEP] included, not truncated; median of {REPEATS} interleaved "
        f"passes. The fast path is what SpladeEncoder uses for this tokenizer kind."
    )
    return section
