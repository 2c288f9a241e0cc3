"""Progress of `rag-splade eval` on stderr: the harness logs each stage it finishes; on a
terminal they scroll above a line with the elapsed time and the latest stage, elsewhere
they are plain lines (nothing that redraws in a CI log)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class _ToBar(logging.Handler):
    def __init__(self, bar: Any) -> None:
        super().__init__(logging.INFO)
        self.bar = bar

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.bar.write(message, file=self.bar.fp)
        self.bar.set_postfix_str(message[:60], refresh=True)


@contextmanager
def stage_progress(
    logger_name: str, *, enabled: bool = True, stream: TextIO | None = None
) -> Iterator[None]:
    """Show the INFO messages of `logger_name` (and its children) while the block runs.

    Args:
        enabled: False (`--quiet`): show nothing but warnings.
        stream: where to write (default `sys.stderr`); the bar only when it is a terminal.
    """
    stream = stream or sys.stderr
    logger = logging.getLogger(logger_name)
    saved = (logger.level, logger.propagate)
    if not enabled:
        yield
        return
    handler: logging.Handler
    stop = threading.Event()
    ticker: threading.Thread | None = None
    bar: Any = None
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        bar = tqdm(desc="eval", file=stream, bar_format="{desc} [{elapsed}] {postfix}")
        handler = _ToBar(bar)

        def tick() -> None:  # tqdm redraws only on updates: keep the elapsed time moving
            while not stop.wait(1.0):
                bar.refresh()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
    logger.setLevel(logging.INFO)
    logger.propagate = False  # said once, not again by the root handler
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        stop.set()
        if ticker is not None:
            ticker.join()
        if bar is not None:
            bar.close()
