"""Countdown: combine the given numbers with ``+ - * /`` and parentheses to hit a target.

The task of TinyZero and many small R1-Zero replications: answers are checked exactly by a rule,
problems are generated procedurally (so there is no data to download and no contamination), and a
model has to search, which is where long chains of thought and "wait" moments appear.

Problems are built backwards: sample the numbers, combine them in a random expression tree, and
keep the tree's value as the target when it is a positive integer in range. Every problem therefore
has at least one solution, stored as the example's answer.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from .arithmetic import (
    BinOp,
    ExpressionError,
    Node,
    Number,
    evaluate,
    format_expression,
    numbers_used,
    parse_expression,
)
from .base import Example, Messages, draw_examples

COUNTDOWN_SYSTEM = (
    "A conversation between User and Assistant. The User gives numbers and a target, and the Assistant "
    "writes an equation that uses each number exactly once, with only + - * / and parentheses, and whose "
    "value is the target. The Assistant first thinks about the reasoning process and then gives the "
    "equation. The reasoning and the equation are enclosed in <think> </think> and <answer> </answer> "
    "tags: <think> reasoning here </think> <answer> (1 + 2) * 3 </answer>."
)

_OPS = "+-*/"


@dataclass(frozen=True)
class CountdownTask:
    """``min_numbers``..``max_numbers`` numbers in 1..``max_number``, targets in 1..``max_target``."""

    min_numbers: int = 3
    max_numbers: int = 4
    max_number: int = 100
    max_target: int = 1000
    name: str = "countdown"
    system_prompt: str = COUNTDOWN_SYSTEM

    def __post_init__(self) -> None:
        if not 2 <= self.min_numbers <= self.max_numbers <= 6:
            raise ValueError(f"need 2 <= min_numbers <= max_numbers <= 6, got {self.min_numbers}, {self.max_numbers}")
        if not 1 <= self.max_number <= 10_000:
            raise ValueError(f"max_number must be in 1..10000, got {self.max_number}")
        if not 1 <= self.max_target <= 1_000_000:
            raise ValueError(f"max_target must be in 1..1000000, got {self.max_target}")

    def make_example(self, numbers: list[int], solution: str) -> Example:
        """The example whose answer is ``solution``, an equation over exactly ``numbers``."""
        node = parse_expression(solution)
        if Counter(numbers_used(node)) != Counter(numbers):
            raise ValueError(f"solution {solution!r} does not use exactly the numbers {numbers}")
        value = evaluate(node)
        if value.denominator != 1 or value <= 0:
            raise ValueError(f"solution {solution!r} is not a positive integer")
        target = int(value)
        question = f"Using the numbers {numbers}, create an equation that equals {target}."
        return Example(question, solution, {"numbers": list(numbers), "target": target})

    def sample(self, rng: random.Random) -> Example:
        """One random solvable example drawn with ``rng``."""
        count = rng.randint(self.min_numbers, self.max_numbers)
        while True:  # most draws succeed; the loop ends with probability 1
            numbers = [rng.randint(1, self.max_number) for _ in range(count)]
            tree = _random_tree(numbers, rng)
            value = _value_or_none(tree)
            if value is not None and value.denominator == 1 and 1 <= value <= self.max_target:
                return self.make_example(numbers, format_expression(tree))

    def generate(self, n: int, seed: int, exclude: Iterable[str] = ()) -> list[Example]:
        """``n`` examples from ``seed``, skipping any whose question is in ``exclude``."""
        return draw_examples(self.sample, n, seed, exclude)

    def prompt(self, example: Example) -> Messages:
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": example.question}]

    def check_answer(self, answer: str, example: Example) -> bool:
        """True when ``answer`` (``expr`` or ``expr = target``) uses the numbers once and hits the target.

        The numbers and target come from ``example.info``; when it is empty (a reward function only
        sees the ``answer`` column) they are recovered from the reference solution itself.
        """
        numbers, target = _problem(example)
        expression, equals, claimed = answer.partition("=")
        try:
            node = parse_expression(expression)
            if equals and evaluate(parse_expression(claimed)) != target:
                return False
            return Counter(numbers_used(node)) == Counter(numbers) and evaluate(node) == target
        except ExpressionError:
            return False


def _problem(example: Example) -> tuple[list[int], Fraction]:
    if "numbers" in example.info and "target" in example.info:
        return list(example.info["numbers"]), Fraction(example.info["target"])
    node = parse_expression(example.answer)
    return numbers_used(node), evaluate(node)


def _random_tree(numbers: list[int], rng: random.Random) -> Node:
    """Combine random pairs until one tree is left: every tree shape and leaf order can appear."""
    nodes: list[Node] = [Number(x) for x in numbers]
    while len(nodes) > 1:
        left = nodes.pop(rng.randrange(len(nodes)))
        right = nodes.pop(rng.randrange(len(nodes)))
        nodes.append(BinOp(rng.choice(_OPS), left, right))
    return nodes[0]


def _value_or_none(tree: Node) -> Fraction | None:
    try:
        return evaluate(tree)
    except ExpressionError:
        return None
