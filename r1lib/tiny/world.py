"""The tiny world's reasoning tasks.

Their held-out evaluation set, shared by every measurement of the tiny world, is
:func:`r1lib.tasks.splits.eval_examples`.
"""

from __future__ import annotations

from ..tasks.chain import ChainTask
from ..tasks.search import SearchTask


def reasoning_tasks() -> dict[str, ChainTask | SearchTask]:
    """The tiny world's reasoning tasks by name: digit chains and pair search."""
    return {"chain": ChainTask(), "search": SearchTask()}
