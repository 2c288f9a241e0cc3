"""Damaged copies of a small index, opened by the command line in a child process.

Every file of the shard and the manifest is damaged in turn, four ways (random bytes at a
random offset, zeroed, truncated, deleted): a copy must be refused with one line, or open
with exactly the points, vectors and search results of the original. No copy may kill the
process (the child is watched, so a crash is counted, not suffered) or print a traceback.
The same damage after a crash (no checksums to compare) must not kill the process either.
Each refused copy costs a child process (the check for another process holding the index),
so the 340 copies take a few minutes.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rag_splade import Document, EdgeStore, HybridIndex
from rag_splade.sample import sample_texts
from rag_splade.store.files import ExtentReader, scan, write_sparse

pytestmark = pytest.mark.slow

CLEAN_CASES = 300
CRASH_CASES = 40
WORKER = Path(__file__).with_name("fuzz_worker.py")


def sparse_copy(source: str, target: str) -> None:
    content = scan(Path(source))
    with ExtentReader(Path(source), content.extents) as data:
        write_sparse(data, Path(target), content.size, content.extents)  # type: ignore[arg-type]


def damage(index: Path, rng: random.Random) -> str:
    """Damage one file of `index` one way; say which and how."""
    files = sorted(p for p in index.rglob("*") if p.is_file())
    file = rng.choice(files)
    size = file.stat().st_size
    how = rng.choice(["bytes", "bytes", "zeroed", "truncated", "deleted"])
    if how == "deleted":
        file.unlink()
    elif how == "zeroed":
        file.write_bytes(bytes(size))
    elif how == "truncated":
        with file.open("r+b") as f:
            f.truncate(rng.randrange(size) if size else 0)
    else:  # 1 to 256 random bytes, half the time where the file holds data
        extents = scan(file).extents
        if extents and rng.random() < 0.5:
            start, length = rng.choice(extents)
            offset = start + rng.randrange(length)
        else:
            offset = rng.randrange(max(size, 1))
        with file.open("r+b") as f:
            f.seek(offset)
            f.write(rng.randbytes(rng.randint(1, 256)))
    return f"{how} {file.relative_to(index).as_posix()}"


class Worker:
    """The child that opens the copies; restarted when a copy kills it."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.crashes: list[str] = []
        self._start()

    def _start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            text=True,
            cwd=Path(__file__).parent.parent,
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:  # it died on this copy
            code = self.process.wait(timeout=60)
            self.crashes.append(f"{request['case']}: exit {code}")
            self._start()
            return {**request, "outcome": "crash"}
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=120)


@pytest.fixture(scope="module")
def original(tmp_path_factory, splade, dense) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "index"
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        idx.add([Document(id=f"d{i}", text=t) for i, t in enumerate(sample_texts()[:6])])
        idx.add([Document(id=f"e{i}", text=t) for i, t in enumerate(sample_texts()[6:9])])
    return path


def _crashed(index: Path) -> None:
    manifest_path = index / "rag_splade.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "clean": False, "checksums": None}))


def test_damaged_copies_are_refused_or_identical(original: Path, tmp_path: Path) -> None:
    rng = random.Random(20261202)
    worker = Worker(tmp_path / "worker.log")
    reference_copy = tmp_path / "reference"
    shutil.copytree(original, reference_copy, copy_function=sparse_copy)
    reference = worker.ask(
        {"case": "original", "path": str(reference_copy), "snapshots": str(tmp_path / "s0")}
    )
    assert reference["outcome"] == "opened", reference
    results: list[dict[str, Any]] = []
    for n in range(CLEAN_CASES + CRASH_CASES):
        copy = tmp_path / f"copy-{n}"
        shutil.copytree(original, copy, copy_function=sparse_copy)
        after_crash = n >= CLEAN_CASES
        if after_crash:
            _crashed(copy)
        what = damage(copy, rng)
        answer = worker.ask(
            {
                "case": what,
                "path": str(copy),
                "snapshots": str(tmp_path / f"s-{n}"),
                "crash": after_crash,
            }
        )
        results.append(answer)
        shutil.rmtree(copy, ignore_errors=True)
        shutil.rmtree(tmp_path / f"s-{n}", ignore_errors=True)
    worker.close()

    clean = [r for r in results if not r["crash"]]
    outcomes = Counter((r["crash"], r["outcome"]) for r in results)
    unchecked = [r for r in results if r["crash"] and r["outcome"] == "opened"]
    print(f"outcomes (after a crash, outcome): {dict(outcomes)}")
    print(  # without checksums, damage the engine reads without complaint goes unseen
        "after a crash, opened with other contents: "
        f"{sum(r['digest'] != reference['digest'] for r in unchecked)} of {len(unchecked)}"
    )
    assert worker.crashes == []
    assert [r["case"] for r in results if r["outcome"] == "traceback"] == []
    different = [
        r["case"] for r in clean if r["outcome"] == "opened" and r["digest"] != reference["digest"]
    ]
    assert different == []  # a copy that opens holds what the original held
    assert [r["case"] for r in clean if r["outcome"] == "failed_in_use"] == []
    for r in results:
        if r["outcome"] == "refused":
            lines = [ln for ln in r["stderr"].splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith("rag-splade snapshot"), r
    log = (tmp_path / "worker.log").read_text()
    assert "panicked" not in log and "Traceback" not in log, log[-2000:]
    assert sum(r["outcome"] == "refused" for r in clean) > CLEAN_CASES // 2  # damage was done
