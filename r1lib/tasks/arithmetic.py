"""A small, safe parser for the arithmetic that models write: integers, ``+ - * /``, parentheses.

Model text is never handed to ``eval``, ``compile`` or ``ast``: a recursive-descent parser builds
a tiny tree and :func:`evaluate` computes it with exact :class:`~fractions.Fraction` values, so
``6 / 4 * 2`` is exactly 3 and there is no floating-point tolerance to argue about.

Every resource is bounded before any work is done: the text length, the parenthesis depth, the
digits of each literal and the size of every intermediate value. The grammar has no exponent
operator and every literal has at most ``MAX_LITERAL_DIGITS`` digits, so these bounds make each
call take microseconds whatever the input.

Grammar (no unary operators: in Countdown a number is used as given)::

    expression := term (("+" | "-") term)*
    term       := factor (("*" | "/") factor)*
    factor     := INTEGER | "(" expression ")"
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Union

MAX_CHARS = 200
MAX_DEPTH = 32
MAX_LITERAL_DIGITS = 12
MAX_MAGNITUDE = 10**12  # bound on |numerator| and denominator of every intermediate value

OPERATORS = "+-*/"
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
# ASCII only: str.isdigit() accepts "٣" or "²", which int() would then silently reinterpret.
_DIGITS = frozenset("0123456789")
_SPACE = frozenset(" \t\n\r")


class ExpressionError(ValueError):
    """The text is not a valid, bounded arithmetic expression, or it cannot be evaluated."""


@dataclass(frozen=True)
class Number:
    """An integer literal."""

    value: int

    def __post_init__(self) -> None:
        if self.value < 0 or self.value >= 10**MAX_LITERAL_DIGITS:
            raise ExpressionError(f"literal out of range: must be 0..{10**MAX_LITERAL_DIGITS - 1}")


@dataclass(frozen=True)
class BinOp:
    """``left <op> right`` for one of ``+ - * /``."""

    op: str
    left: Node
    right: Node

    def __post_init__(self) -> None:
        if self.op not in _PRECEDENCE:
            raise ExpressionError(f"unknown operator {self.op!r}")


Node = Union[Number, BinOp]


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in _SPACE:
            i += 1
        elif char in _DIGITS:
            start = i
            while i < len(text) and text[i] in _DIGITS:
                i += 1
            if i - start > MAX_LITERAL_DIGITS:
                raise ExpressionError(f"number with more than {MAX_LITERAL_DIGITS} digits")
            tokens.append(text[start:i])
        elif char in OPERATORS or char in "()":
            tokens.append(char)
            i += 1
        else:
            raise ExpressionError(f"unexpected character {char!r} at position {i}")
    return tokens


class _Parser:
    """Recursive descent over a token list; depth counts open parentheses."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ExpressionError("unexpected end of expression")
        self.pos += 1
        return token

    def expression(self, depth: int) -> Node:
        node = self.term(depth)
        while self.peek() in ("+", "-"):
            op = self.take()
            node = BinOp(op, node, self.term(depth))
        return node

    def term(self, depth: int) -> Node:
        node = self.factor(depth)
        while self.peek() in ("*", "/"):
            op = self.take()
            node = BinOp(op, node, self.factor(depth))
        return node

    def factor(self, depth: int) -> Node:
        token = self.take()
        if token == "(":
            if depth >= MAX_DEPTH:
                raise ExpressionError(f"parentheses nested deeper than {MAX_DEPTH}")
            node = self.expression(depth + 1)
            if self.take() != ")":
                raise ExpressionError("expected ')'")
            return node
        if token[0] in _DIGITS:
            return Number(int(token))
        raise ExpressionError(f"expected a number or '(', got {token!r}")


def parse_expression(text: str) -> Node:
    """Parse ``text`` into a tree; raise :class:`ExpressionError` on anything else.

    Refuses text longer than ``MAX_CHARS`` and parentheses deeper than ``MAX_DEPTH`` before
    doing any work proportional to them.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expected a string, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ExpressionError(f"expression longer than {MAX_CHARS} characters")
    parser = _Parser(_tokenize(text))
    if parser.peek() is None:
        raise ExpressionError("empty expression")
    node = parser.expression(0)
    if parser.peek() is not None:
        raise ExpressionError(f"unexpected {parser.peek()!r} after the expression")
    return node


def _bounded(value: Fraction) -> Fraction:
    if abs(value.numerator) > MAX_MAGNITUDE or value.denominator > MAX_MAGNITUDE:
        raise ExpressionError(f"intermediate value beyond {MAX_MAGNITUDE:.0e}")
    return value


def evaluate(node: Node) -> Fraction:
    """The exact value of ``node``; :class:`ExpressionError` on division by zero or huge values."""
    if isinstance(node, Number):
        return _bounded(Fraction(node.value))
    left, right = evaluate(node.left), evaluate(node.right)
    if node.op == "+":
        return _bounded(left + right)
    if node.op == "-":
        return _bounded(left - right)
    if node.op == "*":
        return _bounded(left * right)
    if right == 0:
        raise ExpressionError("division by zero")
    return _bounded(left / right)


def numbers_used(node: Node) -> list[int]:
    """The integer literals of ``node`` from left to right (a multiset: repeats are kept)."""
    if isinstance(node, Number):
        return [node.value]
    return numbers_used(node.left) + numbers_used(node.right)


def format_expression(node: Node) -> str:
    """Render ``node`` with only the parentheses that its meaning needs, e.g. ``(3 + 5) * 2``.

    A right operand of ``-`` or ``/`` at the same precedence keeps its parentheses, because those
    operators are not associative: ``8 - (3 - 1)`` differs from ``8 - 3 - 1``.
    """
    if isinstance(node, Number):
        return str(node.value)
    precedence = _PRECEDENCE[node.op]
    left, right = format_expression(node.left), format_expression(node.right)
    if isinstance(node.left, BinOp) and _PRECEDENCE[node.left.op] < precedence:
        left = f"({left})"
    if isinstance(node.right, BinOp):
        right_precedence = _PRECEDENCE[node.right.op]
        if right_precedence < precedence or (right_precedence == precedence and node.op in "-/"):
            right = f"({right})"
    return f"{left} {node.op} {right}"
