"""Encoders that run at the same time share the CPU cores instead of oversubscribing them.

torch runs each CPU op on `torch.get_num_threads()` threads, by default one per core. Two
encoders started at once from two threads would each ask for every core. The threads of a
`sharing_executor` each take their share instead; torch keeps that setting per thread
(OpenMP), so threads outside the pool keep theirs (a test checks it).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch


def sharing_executor(workers: int, name: str) -> ThreadPoolExecutor:
    """A pool of `workers` threads, each running torch's CPU ops on 1/`workers` of the
    threads the calling thread has (at least one)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    share = max(1, torch.get_num_threads() // workers)
    return ThreadPoolExecutor(
        max_workers=workers,
        thread_name_prefix=name,
        initializer=torch.set_num_threads,
        initargs=(share,),
    )
