"""Equivalence of free-form maths answers (``\\frac{1}{2}`` = ``0.5`` = ``1/2``) with ``math-verify``.

``math-verify`` parses LaTeX and plain expressions into SymPy and compares them symbolically. On
model output that can be slow (SymPy simplification) or explosive (``9^{9^{9^9}}`` asks for a
number with more digits than there are atoms in the universe), so every check here is

* refused outright beyond ``MAX_ANSWER_CHARS`` characters;
* screened by :func:`may_explode`, a linear scan for power towers, huge exponents and factorials of
  big numbers, and for brackets nested deeper than ``MAX_NESTING`` (which the LaTeX parser needs
  seconds for); such answers are compared as normalised strings instead of being evaluated;
* run under a wall-clock limit (:func:`time_limit`, a ``SIGALRM`` timer) when called from the main
  thread. Signals cannot be used from other threads, so there the check runs without a timer and
  relies on the two screens above;
* wrapped so that it returns False instead of raising.

``math_verify`` is imported lazily: the tiny world never needs it.
"""

from __future__ import annotations

import functools
import gc
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MAX_ANSWER_CHARS = 2000
MAX_NESTING = 16  # brackets inside brackets; real answers stay far below, parsers slow down far above
MAX_DIGIT_RUN = 100  # digits in one literal
MAX_EXPONENT_DIGITS = 4  # digits anywhere in one exponent: keeps every power below ~10^10^4
MAX_FACTORIAL_DIGITS = 3  # 999! has 2565 digits; 10^6! would take minutes
DEFAULT_TIMEOUT_S = 1.0
_ALARM_REPEAT_S = 0.05

_LATEX_DELIMITERS = ("$", "\\boxed", "\\(", "\\[")
_OPENERS, _CLOSERS = "({[", ")}]"
_COMBINATORIAL = ("binom", "choose", "gamma", "factorial", "fib")


class CheckTimeout(BaseException):
    """Raised inside :func:`time_limit` when its time is up.

    A BaseException, so that the ``except Exception`` blocks inside math-verify and SymPy cannot
    swallow it and carry on past the deadline."""


def _alarm_usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float) -> Iterator[bool]:
    """Interrupt the body by raising :class:`CheckTimeout` after ``seconds`` (main thread only).

    Yields whether a timer is armed. An ``ITIMER_REAL`` timer that was already pending (e.g. from
    pytest-timeout) is respected: if it fires first, no timer of ours is armed at all; otherwise it
    is re-armed afterwards with its remaining time.
    """
    if not _alarm_usable():
        yield False
        return
    outer_delay, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    if 0 < outer_delay <= seconds:
        yield False
        return

    armed = True

    def on_alarm(signum: int, frame: Any) -> None:
        # A late alarm, delivered while the timer is being torn down, must not interrupt the cleanup.
        if armed:
            raise CheckTimeout

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    # No cyclic garbage collection while armed: an alarm that lands in a GC callback raises there,
    # where Python discards the exception (the repeating alarm below is the second line of defence).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    start = time.monotonic()
    # The interval repeats the alarm until it is disarmed: an exception raised in a __del__ method
    # is discarded by Python too, and then the next alarm must still stop the check.
    signal.setitimer(signal.ITIMER_REAL, seconds, _ALARM_REPEAT_S)
    try:
        yield True
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if gc_was_enabled:
            gc.enable()
        if outer_delay > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer_delay - (time.monotonic() - start), 1e-3), outer_interval)


def _matching_brackets(text: str) -> tuple[dict[int, int], dict[int, int]]:
    """Positions of matching brackets, forwards and backwards (any closer closes the last opener)."""
    forward: dict[int, int] = {}
    stack: list[int] = []
    for i, char in enumerate(text):
        if char in _OPENERS:
            stack.append(i)
        elif char in _CLOSERS and stack:
            forward[stack.pop()] = i
    return forward, {end: start for start, end in forward.items()}


def _prefix_counts(text: str, predicate: Any) -> list[int]:
    counts = [0]
    for char in text:
        counts.append(counts[-1] + (1 if predicate(char) else 0))
    return counts


def may_explode(text: str) -> bool:
    """True when SymPy could be asked for an astronomically large integer by ``text``.

    A linear scan for: a literal of more than ``MAX_DIGIT_RUN`` digits; a power whose base or
    exponent contains another power or a factorial (towers, in either notation ``^`` or ``**``);
    an exponent with more than ``MAX_EXPONENT_DIGITS`` digits; a chain ``a^b^c``; a factorial of a
    number with more than ``MAX_FACTORIAL_DIGITS`` digits or of a group that contains a power; and
    binomials/gamma functions of big numbers. False positives only cost symbolic checking.
    """
    # "**" becomes "^" so that both notations are one operator of one character.
    text = text.replace("**", "^")
    n = len(text)
    digit_run = longest = 0
    for char in text:
        digit_run = digit_run + 1 if char.isdigit() else 0
        longest = max(longest, digit_run)
    if longest > MAX_DIGIT_RUN:
        return True
    lowered = text.lower()
    if any(word in lowered for word in _COMBINATORIAL) and (longest > MAX_FACTORIAL_DIGITS or "^" in text):
        return True
    forward, backward = _matching_brackets(text)
    powers = _prefix_counts(text, lambda c: c in "^!")
    digits = _prefix_counts(text, str.isdigit)

    def operand_after(i: int) -> tuple[int, int]:
        j = i
        while j < n and text[j].isspace():
            j += 1
        if j < n and text[j] in _OPENERS:
            return j, forward.get(j, n - 1) + 1  # an unclosed group runs to the end: be conservative
        command = j < n and text[j] == "\\"
        k = j + 1 if command else j
        while k < n and (text[k].isalnum() or text[k] == "."):
            k += 1
        while command and k < n and text[k] == "{":  # a command's arguments: ^\frac{10^{99}}{1}
            k = forward.get(k, n - 1) + 1
        return j, k

    def group_before(i: int) -> tuple[int, int] | None:
        j = i - 1
        while j >= 0 and text[j].isspace():
            j -= 1
        if j >= 0 and text[j] in _CLOSERS:
            return backward.get(j, 0), j + 1
        return None

    for i, char in enumerate(text):
        if char == "^":
            start, end = operand_after(i + 1)
            if powers[end] - powers[start] or digits[end] - digits[start] > MAX_EXPONENT_DIGITS:
                return True
            after = end
            while after < n and text[after].isspace():
                after += 1
            if after < n and text[after] == "^":
                return True
            base = group_before(i)
            if base is not None and powers[base[1]] - powers[base[0]]:
                return True
        elif char == "!" and not text.startswith("!=", i):
            base = group_before(i)
            if base is not None and powers[base[1]] - powers[base[0]]:
                return True
            j = i
            while j > 0 and text[j - 1].isdigit():
                j -= 1
            if i - j > MAX_FACTORIAL_DIGITS or (j > 0 and text[j - 1] == "!"):
                return True
    return False


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of ``text``, counting ``( [ {`` alike."""
    depth = deepest = 0
    for char in text:
        if char in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif char in _CLOSERS:
            depth = max(depth - 1, 0)
    return deepest


def _normalise(text: str) -> str:
    """A comparison key for answers that are not evaluated: no spaces, ``$``, ``\\left``/``\\right``."""
    text = text.strip()
    if text.startswith("\\boxed{") and text.endswith("}"):
        text = text[len("\\boxed{") : -1]
    for noise in ("$", "\\left", "\\right", "\\!", "\\,", "\\ "):
        text = text.replace(noise, "")
    return "".join(text.split())


@functools.lru_cache(maxsize=None)
def _math_verify() -> tuple[Any, Any]:
    """Import math-verify, and silence its warning that timeouts are off: :func:`time_limit` does them."""
    from math_verify import parse, verify

    class _NoTimeoutWarning(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith("Timeout is disabled")

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_NoTimeoutWarning())
    return parse, verify


def _has_delimiters(text: str) -> bool:
    return any(d in text for d in _LATEX_DELIMITERS)


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str) -> Any:
    """Gold answers are bare LaTeX (``\\frac{14}{3}``, ``p - q``), which math-verify only reads
    between delimiters. Cached: one gold answer is checked against a whole group of completions."""
    parse, _ = _math_verify()
    return parse(gold if _has_delimiters(gold) else f"${gold}$", parsing_timeout=None)


def _equal_unbounded(predicted: str, gold: str) -> bool:
    parse, verify = _math_verify()
    gold_parsed = _parse_gold(gold)
    if not gold_parsed:
        return _normalise(predicted) == _normalise(gold)
    candidates = [predicted] if _has_delimiters(predicted) else [f"${predicted}$", predicted]
    for candidate in candidates:
        parsed = parse(candidate, parsing_timeout=None)
        if parsed and verify(gold_parsed, parsed, timeout_seconds=None):
            return True
    return False


def math_answers_equal(predicted: str, gold: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """True when ``predicted`` is mathematically equal to ``gold``; never raises, bounded in time.

    ``predicted`` may be bare (``0.5``, ``1/2``, ``\\frac{1}{2}``), in ``$...$`` or in ``\\boxed{}``.
    """
    try:
        if not predicted.strip() or len(predicted) > MAX_ANSWER_CHARS:
            return False
        if any(may_explode(t) or nesting_depth(t) > MAX_NESTING for t in (predicted, gold)):
            return _normalise(predicted) == _normalise(gold)
        with time_limit(timeout_s):
            return _equal_unbounded(predicted, gold)
    except (CheckTimeout, Exception):  # noqa: BLE001 - an unparseable answer is a wrong answer
        return False
