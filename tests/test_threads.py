"""Encoders run side by side share the CPU cores; the calling thread keeps its setting."""

from __future__ import annotations

import pytest
import torch

from rag_splade.encoders.threads import sharing_executor


def test_pool_threads_take_a_share_and_leave_the_caller_alone() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        pool = sharing_executor(2, "test-share")
        seen = {pool.submit(torch.get_num_threads).result() for _ in range(4)}
        pool.shutdown()
        assert seen == {2}
        assert torch.get_num_threads() == 4  # a per-thread setting: the caller keeps its own
        lone = sharing_executor(8, "test-share")
        assert lone.submit(torch.get_num_threads).result() == 1  # never below one thread
        lone.shutdown()
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="workers must be a positive int"):
        sharing_executor(0, "x")
