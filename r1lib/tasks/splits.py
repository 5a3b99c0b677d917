"""The one held-out evaluation set of each generated task, and training examples disjoint from it.

Evaluation examples are drawn from :data:`EVAL_SEED`, and training examples exclude them, so that
every number the course reports about a generated task (the tiny base's statistics, RL curves, the
multi-stage table, distillation) is measured on the same held-out questions, whoever asks for them.
"""

from __future__ import annotations

from .base import Example
from .general import GeneralTask

EVAL_SEED = 12345


def eval_examples(task, n: int) -> list[Example]:
    """The first ``n`` held-out examples of ``task`` (the same for every caller)."""
    if isinstance(task, GeneralTask):
        return task.all_examples()[::4][:n]  # every fourth request is held out
    return task.generate(n, seed=EVAL_SEED)


def train_examples(task, n: int, seed: int = 0, held_out: int = 256) -> list[Example]:
    """``n`` training examples of ``task`` drawn from ``seed``, disjoint from the first ``held_out``
    evaluation examples."""
    return task.generate(n, seed=seed, exclude=[e.question for e in eval_examples(task, held_out)])
