"""Read a whole Edge shard in a child process (`shard_check`) before this one trusts it.

Used where no checksum vouches for the files (an index not closed cleanly, a snapshot's
unpacked copy): a damaged file can abort the engine, and an abort there costs the child,
not the service or the command. The engine's own panic output stays in the child's
captured stderr; the last line of it goes into the answer.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rag_splade.store import shard_check
from rag_splade.store.files import disk_bytes

TIMEOUT_SECONDS = 1800.0  # reading every point of a large index takes a while
# The child's heap limit: a damaged size field can make the engine allocate tens of GB (seen:
# 18 GB resident) before it gives up; a sound shard's heap stays well under its disk use
# (the benchmark's scale section), so this many bytes is room for it, and no more.
MEMORY_FLOOR = 2 << 30
MEMORY_PER_DISK_BYTE = 4


@dataclass(frozen=True)
class ShardLayout:
    """What `shard_check` needs to know of the vectors (from the index's manifest)."""

    dense_name: str
    dense_size: int
    sparse_name: str
    sparse_vocab_size: int


@dataclass(frozen=True)
class CheckResult:
    """`points` when the shard read back whole, else `problem` in words; `in_use` when
    another process holds it (Edge's WAL lock)."""

    points: int | None
    problem: str | None = None
    in_use: bool = False


def check_shard(
    shard_dir: Path, layout: ShardLayout, timeout: float = TIMEOUT_SECONDS
) -> CheckResult:
    """Open, count, read every point and search `shard_dir` in a child process."""
    command = [
        sys.executable,
        "-I",  # no user site, no PYTHON* variables: the child runs only the check
        shard_check.__file__,
        str(shard_dir),
        layout.dense_name,
        str(layout.dense_size),
        layout.sparse_name,
        str(layout.sparse_vocab_size),
        str(memory_limit(shard_dir)),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return CheckResult(None, f"reading it did not finish within {timeout:.0f} s")
    answer = _last_json(done.stdout)
    points = answer.get("points")
    if done.returncode == 0 and isinstance(points, int):
        return CheckResult(points)
    if "error" in answer:
        error = str(answer["error"])
        return CheckResult(None, error, in_use="WouldBlock" in error)
    tail = _first_reason(done.stderr)
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return CheckResult(None, f"the engine aborted reading it ({name}: {tail})")
    return CheckResult(None, f"the check exited with status {done.returncode} ({tail})")


def memory_limit(shard_dir: Path) -> int:
    """Bytes of heap the child that reads `shard_dir` may take."""
    return MEMORY_FLOOR + MEMORY_PER_DISK_BYTE * disk_bytes(shard_dir)


def _last_json(text: str) -> dict[str, object]:
    for line in reversed(text.splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def _first_reason(text: str) -> str:
    """The engine's own words from a child's stderr: its first line that is not a note."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith("note:")]
    return (reasons or lines or ["no message"])[0][:300]
