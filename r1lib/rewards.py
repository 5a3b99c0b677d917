"""Rule-based rewards with TRL's signature: ``f(prompts, completions, **columns) -> list[float | None]``.

Every function here receives arbitrary model output. None of them evaluates it, each one is linear
in the length of the text, and none raises: a completion that breaks a reward gets ``None``
("does not apply"), which the trainer treats like TRL does (ignored when summing rewards).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from .format import extract_answer, is_strict_format
from .tasks.base import Example, Task

RewardFunc = Callable[..., list[float | None]]


def completion_text(completion: Any) -> str:
    """The text of a completion, whether it is a string or a TRL conversational list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def never_raises(func: RewardFunc) -> RewardFunc:
    """Wrap a reward so that an exception on one completion yields ``None`` for that completion only."""

    @functools.wraps(func)
    def safe(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
        try:
            return func(prompts, completions, **columns)
        except Exception:  # noqa: BLE001 - a reward must never take training down
            scores: list[float | None] = []
            for i, completion in enumerate(completions):
                row = {k: [v[i]] for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == len(completions)}
                try:
                    scores.extend(func([prompts[i] if i < len(prompts) else None], [completion], **row))
                except Exception:  # noqa: BLE001
                    scores.append(None)
            return scores

    return safe


def make_accuracy_reward(task: Task, name: str = "accuracy") -> RewardFunc:
    """1.0 when the ``<answer>`` verifies against the ``answer`` column with ``task``, else 0.0."""

    @never_raises
    def accuracy(prompts: Sequence[Any], completions: Sequence[Any], answer: Sequence[str], **_: Any) -> list[float | None]:
        scores: list[float | None] = []
        for completion, gold in zip(completions, answer, strict=True):
            predicted = extract_answer(completion_text(completion))
            scores.append(float(predicted is not None and task.check_answer(predicted, Example("", str(gold)))))
        return scores

    accuracy.__name__ = name
    return accuracy


@never_raises
def format_reward(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
    """1.0 for a strictly well-formed ``[<think>…</think>]<answer>…</answer>`` completion, else 0.0."""
    return [float(is_strict_format(completion_text(c))) for c in completions]


def combine_rewards(
    per_function: Sequence[Sequence[float | None]], weights: Sequence[float] | None = None
) -> list[float]:
    """Weighted sum over reward functions per completion, skipping ``None`` (as TRL's nansum does).

    Non-finite scores are treated as ``None``. A completion where every function returned ``None``
    gets 0.0.
    """
    if not per_function:
        raise ValueError("need at least one reward function")
    weights = list(weights) if weights is not None else [1.0] * len(per_function)
    if len(weights) != len(per_function):
        raise ValueError(f"{len(weights)} weights for {len(per_function)} reward functions")
    lengths = {len(scores) for scores in per_function}
    if len(lengths) != 1:
        raise ValueError(f"reward functions returned different numbers of scores: {sorted(lengths)}")
    total = [0.0] * lengths.pop()
    for scores, weight in zip(per_function, weights):
        for i, score in enumerate(scores):
            if score is not None and math.isfinite(score):
                total[i] += weight * float(score)
    return total
