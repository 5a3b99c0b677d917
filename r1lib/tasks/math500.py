"""MATH-500 competition maths: the hub loader used on a GPU, and the same format from a local jsonl.

Each record has ``problem``, ``solution``, ``answer`` (bare LaTeX such as ``\\frac{14}{3}``),
``subject``, ``level`` and ``unique_id``, as in ``HuggingFaceH4/MATH-500``. Answers are free-form
maths, so :class:`MathTask` checks them for mathematical equality with ``math-verify`` (see
:mod:`r1lib.tasks.mathcheck`) rather than by string or number matching.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .base import Example, Messages
from .gsm8k import R1_ZERO_SYSTEM
from .mathcheck import DEFAULT_TIMEOUT_S, math_answers_equal

HUB_NAME = "HuggingFaceH4/MATH-500"
REQUIRED_FIELDS = ("problem", "answer")
INFO_FIELDS = ("solution", "subject", "level", "unique_id")


@dataclass(frozen=True)
class MathTask:
    """Free-form maths answers verified by symbolic equality, each check bounded by ``timeout_s``."""

    name: str = "math"
    system_prompt: str = R1_ZERO_SYSTEM
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 0 < self.timeout_s <= 60:
            raise ValueError(f"timeout_s must be in (0, 60], got {self.timeout_s}")

    def prompt(self, example: Example) -> Messages:
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": example.question}]

    def check_answer(self, answer: str, example: Example) -> bool:
        """True when ``answer`` equals the reference mathematically (``0.5`` = ``\\frac{1}{2}``)."""
        return math_answers_equal(answer, example.answer, timeout_s=self.timeout_s)


def _to_example(record: dict, where: str) -> Example:
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise ValueError(f"{where}: MATH-500 record lacks {missing}")
    info = {f: record[f] for f in INFO_FIELDS if f in record}
    return Example(str(record["problem"]), str(record["answer"]), info)


def load_math500(path: str | Path | None = None, limit: int | None = None) -> list[Example]:
    """MATH-500 examples from a local jsonl ``path`` (offline), or from the hub via ``datasets``."""
    if path is not None:
        lines = Path(path).read_text().splitlines()
        records = [(json.loads(line), f"{path}:{i + 1}") for i, line in enumerate(lines) if line.strip()]
    else:
        from datasets import load_dataset  # imported here: only the online path needs it

        records = [(r, f"{HUB_NAME}[{i}]") for i, r in enumerate(load_dataset(HUB_NAME, split="test"))]
    examples = [_to_example(record, where) for record, where in records]
    return examples[:limit] if limit is not None else examples
