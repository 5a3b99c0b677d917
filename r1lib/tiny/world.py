"""The tiny world's tasks and its one held-out evaluation set.

Evaluation prompts are drawn from :data:`EVAL_SEED`, and training prompts disjoint from them, so
every number the course reports about the tiny world (pretraining statistics, RL curves, the
multi-stage table, distillation) is measured on the same held-out questions.
"""

from __future__ import annotations

from ..tasks.base import Example
from ..tasks.chain import ChainTask
from ..tasks.general import GeneralTask
from ..tasks.search import SearchTask

EVAL_SEED = 12345


def reasoning_tasks() -> dict[str, ChainTask | SearchTask]:
    """The tiny world's reasoning tasks by name: digit chains and pair search."""
    return {"chain": ChainTask(), "search": SearchTask()}


def eval_examples(task, n: int) -> list[Example]:
    """The first ``n`` held-out examples of ``task`` (the same for every caller)."""
    if isinstance(task, GeneralTask):
        return task.all_examples()[::4][:n]  # every fourth request is held out
    return task.generate(n, seed=EVAL_SEED)


def train_examples(task, n: int, seed: int = 0, held_out: int = 256) -> list[Example]:
    """``n`` training examples of ``task`` drawn from ``seed``, disjoint from the first ``held_out``
    evaluation examples."""
    return task.generate(n, seed=seed, exclude=[e.question for e in eval_examples(task, held_out)])
