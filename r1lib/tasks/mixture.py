"""Several tasks in one stream of prompts, as in R1's last RL stage (reasoning and general prompts).

Each example carries the name of its task in ``info["task"]``; prompts and answer checks are
routed to that task, and the name reaches reward functions as the ``task`` column, so that each
reward can score only its own kind of prompt (:func:`r1lib.rewards.scoped_to_task`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .base import Example, Messages, Task


def tag(examples: Sequence[Example], task_name: str) -> list[Example]:
    """Copies of ``examples`` whose ``info["task"]`` is ``task_name``."""
    return [Example(e.question, e.answer, {**e.info, "task": task_name}) for e in examples]


def interleave(groups: Mapping[str, Sequence[Example]], seed: int = 0) -> list[Example]:
    """The examples of every task, tagged with its name and shuffled together (seeded)."""
    mixed = [e for name, examples in groups.items() for e in tag(examples, name)]
    random.Random(seed).shuffle(mixed)
    return mixed


@dataclass(frozen=True)
class MixtureTask:
    """Route each example to the task named by its ``info["task"]``."""

    tasks: tuple[tuple[str, Task], ...]
    name: str = "mixture"

    @classmethod
    def of(cls, **tasks: Task) -> MixtureTask:
        return cls(tuple(tasks.items()))

    def task_of(self, example: Example) -> Task:
        name = example.info.get("task")
        for known, task in self.tasks:
            if known == name:
                return task
        raise ValueError(f"example {example.question[:40]!r} names task {name!r}; this mixture has {[n for n, _ in self.tasks]}")

    def prompt(self, example: Example) -> Messages:
        return self.task_of(example).prompt(example)

    def check_answer(self, answer: str, example: Example) -> bool:
        return self.task_of(example).check_answer(answer, example)
