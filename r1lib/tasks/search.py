"""The tiny world's search task, where checking a candidate is easier than finding the answer.

``3851=9`` asks for two of the digits 3, 8, 5, 1 whose sum modulo 10 is 9. Any such pair is right,
written ``a+b`` (``<answer>8+1</answer>``). A tiny model cannot see the right pair in one shot,
but checking one pair is a single local step (``3+8=1``: not 9). So a trace that tries a pair,
checks it, says ``wait`` when it fails and tries the next one is reliable::

    <think>3+8=1 wait 3+5=8 wait 3+1=4 wait 8+5=3 wait 8+1=9</think><answer>8+1</answer>

That is the structure of DeepSeek-R1-Zero's "aha moment": reflection pays where verifying is
cheaper than solving. In the chain task, by contrast, checking a step is exactly as hard as doing
it, and reflection has nothing to gain.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .base import Example, Messages, draw_examples

MAX_ANSWER_CHARS = 16  # "a+b" with some spaces; anything longer is not a pair


@dataclass(frozen=True)
class SearchTask:
    """Pick two of ``num_digits`` digits whose sum modulo ``modulus`` is the target."""

    num_digits: int = 4
    modulus: int = 10
    name: str = "search"

    def __post_init__(self) -> None:
        if not 2 <= self.num_digits <= 9:
            raise ValueError(f"num_digits must be in 2..9, got {self.num_digits}")
        if not 2 <= self.modulus <= 10:
            raise ValueError(f"modulus must be in 2..10 so that every value is one digit, got {self.modulus}")

    def make_example(self, digits: list[int], target: int) -> Example:
        """The example for explicit digits and target; raises when no pair reaches the target."""
        if len(digits) != self.num_digits or not all(0 <= d < self.modulus for d in digits):
            raise ValueError(f"need {self.num_digits} digits in 0..{self.modulus - 1}, got {digits}")
        example = Example("".join(map(str, digits)) + f"={target}", "", {"digits": list(digits), "target": target})
        solutions = [p for p in self.candidate_pairs(example) if self.pair_sum(p) == target]
        if not solutions:
            raise ValueError(f"no two of {digits} sum to {target} (mod {self.modulus})")
        first = solutions[0]
        return Example(example.question, f"{first[0]}+{first[1]}", example.info)

    def sample(self, rng: random.Random) -> Example:
        """Random digits, and the target of a random pair of them (so a solution always exists)."""
        digits = [rng.randrange(self.modulus) for _ in range(self.num_digits)]
        i, j = sorted(rng.sample(range(self.num_digits), 2))
        return self.make_example(digits, (digits[i] + digits[j]) % self.modulus)

    def generate(self, n: int, seed: int, exclude: Iterable[str] = ()) -> list[Example]:
        """``n`` examples from ``seed``, skipping any whose question is in ``exclude``."""
        return draw_examples(self.sample, n, seed, exclude)

    def prompt(self, example: Example) -> Messages:
        """The bare problem, like the chain task: the format is learned in pretraining."""
        return [{"role": "user", "content": example.question}]

    def parse_question(self, question: str) -> tuple[list[int], int]:
        """Digits and target of ``"3851=9"``; raises ValueError for anything else."""
        digits, equals, target = question.partition("=")
        if not equals or not digits.isdigit() or not target.isdigit() or len(digits) != self.num_digits:
            raise ValueError(f"not a search question: {question[:40]!r}")
        return [int(d) for d in digits], int(target)

    def _problem(self, example: Example) -> tuple[list[int], int]:
        if "digits" in example.info:
            return list(example.info["digits"]), int(example.info["target"])
        return self.parse_question(example.question)  # a reward function only sees the question column

    def candidate_pairs(self, example: Example) -> list[tuple[int, int]]:
        """Every pair of digits by position (i < j), in the order a diligent search tries them."""
        digits, _ = self._problem(example)
        return [(digits[i], digits[j]) for i in range(len(digits)) for j in range(i + 1, len(digits))]

    def pair_sum(self, pair: tuple[int, int]) -> int:
        return (pair[0] + pair[1]) % self.modulus

    def check_answer(self, answer: str, example: Example) -> bool:
        """True when ``answer`` is ``a+b`` with two of the digits (each used at most as often as it
        appears) whose sum modulo ``modulus`` is the target."""
        if len(answer) > MAX_ANSWER_CHARS:
            return False
        left, plus, right = answer.replace(" ", "").partition("+")
        if not plus or len(left) != 1 or len(right) != 1 or not (left + right).isdigit():
            return False
        digits, target = self._problem(example)
        a, b = int(left), int(right)
        return not Counter([a, b]) - Counter(digits) and (a + b) % self.modulus == target

    def search_steps(self, example: Example, diligent: bool = True) -> list[tuple[tuple[int, int], bool]]:
        """The pairs a search tries, each with whether it checks out: until the first success
        (diligent), or only the first pair (careless)."""
        _, target = self._problem(example)
        steps = []
        for pair in self.candidate_pairs(example):
            ok = self.pair_sum(pair) == target
            steps.append((pair, ok))
            if ok or not diligent:
                break
        return steps
