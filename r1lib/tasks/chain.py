"""The tiny world's reasoning task: a chain of single digits summed modulo 10.

``3+5+9+2`` has the answer ``9``. A tiny model cannot answer long chains directly, but it can
solve them step by step, rewriting the remaining expression with the first pair combined::

    3+5+9+2 so 8+9+2 so 7+2 so 9

Each step is a local operation (one addition-table lookup and a copy), which is what makes the
reasoning learnable by a 1M-parameter transformer.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from .base import Example, Messages, draw_examples


@dataclass(frozen=True)
class ChainTask:
    """Sums of ``min_terms``..``max_terms`` random digits, modulo ``modulus``."""

    min_terms: int = 2
    max_terms: int = 7
    modulus: int = 10
    name: str = "chain"

    def __post_init__(self) -> None:
        if not 2 <= self.min_terms <= self.max_terms:
            raise ValueError(f"need 2 <= min_terms <= max_terms, got {self.min_terms}, {self.max_terms}")
        if not 2 <= self.modulus <= 10:
            raise ValueError(f"modulus must be in 2..10 so that every value is one digit, got {self.modulus}")

    def make_example(self, terms: list[int]) -> Example:
        """The example for an explicit list of digit terms."""
        question = "+".join(str(t) for t in terms)
        return Example(question, str(sum(terms) % self.modulus), {"terms": list(terms)})

    def sample(self, rng: random.Random) -> Example:
        """One random example drawn with ``rng``."""
        n_terms = rng.randint(self.min_terms, self.max_terms)
        return self.make_example([rng.randrange(self.modulus) for _ in range(n_terms)])

    def generate(self, n: int, seed: int, exclude: Iterable[str] = ()) -> list[Example]:
        """``n`` examples from ``seed``, skipping any whose question is in ``exclude``.

        Use ``exclude`` to keep training prompts disjoint from an evaluation set. Duplicates
        within the result are allowed (short chains repeat), as in a real training stream.
        """
        return draw_examples(self.sample, n, seed, exclude)

    def prompt(self, example: Example) -> Messages:
        """The tiny model is prompted with the bare expression; the format is learned in pretraining."""
        return [{"role": "user", "content": example.question}]

    def check_answer(self, answer: str, example: Example) -> bool:
        """Exact match of the stripped answer against the reference digit."""
        return answer.strip() == example.answer

    def solution_steps(self, example: Example) -> list[str]:
        """The rewrite steps from the full expression down to the answer, e.g.
        ``["3+5+9", "8+9", "7"]``."""
        terms = list(example.info["terms"])
        steps = ["+".join(map(str, terms))]
        while len(terms) > 1:
            terms = [(terms[0] + terms[1]) % self.modulus] + terms[2:]
            steps.append("+".join(map(str, terms)))
        return steps
