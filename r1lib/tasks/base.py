"""What every task provides: examples, a prompt for each, and a verifier for answers."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..format import Messages, extract_answer


@dataclass(frozen=True)
class Example:
    """One problem: the question shown to the model and the reference answer used to verify it."""

    question: str
    answer: str
    info: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@runtime_checkable
class Task(Protocol):
    """A reasoning task: build prompts and verify answers. Tasks never call the model."""

    name: str

    def prompt(self, example: Example) -> Messages:
        """Chat messages to send to the model for ``example``."""

    def check_answer(self, answer: str, example: Example) -> bool:
        """True when ``answer`` (already extracted from the completion) is correct."""


def verify(task: Task, completion: str, example: Example) -> bool:
    """Extract the ``<answer>`` of a completion and check it; False when there is none."""
    answer = extract_answer(completion)
    return answer is not None and task.check_answer(answer, example)


def example_columns(examples: list[Example]) -> dict[str, list[Any]]:
    """Dataset-style columns that reward functions receive as kwargs: ``question``, ``answer``, and
    ``task`` when the examples come from a mixture of tasks."""
    columns: dict[str, list[Any]] = {"question": [e.question for e in examples], "answer": [e.answer for e in examples]}
    if any("task" in e.info for e in examples):
        columns["task"] = [e.info.get("task") for e in examples]
    return columns


def draw_examples(
    sample: Callable[[random.Random], Example], n: int, seed: int, exclude: Iterable[str] = ()
) -> list[Example]:
    """``n`` examples drawn with ``sample`` from a ``seed``, skipping questions in ``exclude``.

    Use ``exclude`` to keep training prompts disjoint from an evaluation set. Duplicates within the
    result are allowed (small problem spaces repeat), as in a real training stream.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    excluded = set(exclude)
    rng = random.Random(seed)
    examples: list[Example] = []
    for _ in range(1000 * max(n, 1)):
        if len(examples) == n:
            break
        example = sample(rng)
        if example.question not in excluded:
            examples.append(example)
    if len(examples) < n:
        raise ValueError("could not draw enough examples outside `exclude`; widen the task")
    return examples
