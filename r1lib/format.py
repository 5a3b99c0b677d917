"""The R1 output format: ``<think> reasoning </think> <answer> answer </answer>``, and the shapes a
prompt and a completion come in (chat messages, or text).

All parsing here uses plain string search, never regular expressions with backtracking and never
``eval``: it is applied to arbitrary model output and must stay linear in the length of the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

Messages = list[dict[str, str]]  # a chat: {"role": ..., "content": ...} per message


def completion_text(completion: Any) -> str:
    """The text of a completion, whether it is a string or a TRL conversational list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


@dataclass(frozen=True)
class ParsedCompletion:
    """What a completion contains, as far as the format is concerned."""

    reasoning: str | None
    answer: str | None
    strict_format: bool


def extract_answer(text: str) -> str | None:
    """Return the stripped content of the last ``<answer>...</answer>`` block, or None."""
    end = text.rfind(ANSWER_CLOSE)
    if end < 0:
        return None
    start = text.rfind(ANSWER_OPEN, 0, end)
    if start < 0:
        return None
    return text[start + len(ANSWER_OPEN) : end].strip()


def extract_reasoning(text: str) -> str | None:
    """Return the content of the first ``<think>...</think>`` block, or None when there is none."""
    start = text.find(THINK_OPEN)
    if start < 0:
        return None
    end = text.find(THINK_CLOSE, start + len(THINK_OPEN))
    if end < 0:
        return None
    return text[start + len(THINK_OPEN) : end]


def uses_reasoning(text: str) -> bool:
    """True when the completion contains a closed, non-empty think block."""
    reasoning = extract_reasoning(text)
    return reasoning is not None and reasoning.strip() != ""


def is_strict_format(text: str) -> bool:
    """True for exactly ``[<think>...</think>]<answer>...</answer>`` with nothing else around it.

    The think block is optional, so that a direct answer is well-formed too; each tag may appear at
    most once, in order, and only whitespace may surround the blocks.
    """
    stripped = text.strip()
    if stripped.count(ANSWER_OPEN) != 1 or stripped.count(ANSWER_CLOSE) != 1:
        return False
    thinks = stripped.count(THINK_OPEN)
    if thinks > 1 or stripped.count(THINK_CLOSE) != thinks:
        return False
    rest = stripped
    if rest.startswith(THINK_OPEN):
        end = rest.find(THINK_CLOSE)
        if end < 0:
            return False
        rest = rest[end + len(THINK_CLOSE) :].lstrip()
    elif THINK_OPEN in rest:
        return False
    return rest.startswith(ANSWER_OPEN) and rest.endswith(ANSWER_CLOSE)


MAX_SUMMARY_CHARS = 300


@dataclass(frozen=True)
class ReadableCompletion:
    """The three parts of the readable format of multi-stage R1."""

    reasoning: str
    summary: str
    answer: str


def parse_readable(text: str) -> ReadableCompletion | None:
    """Split ``<think>reasoning</think>summary<answer>answer</answer>`` into its parts, or None.

    This is the tiny world's version of DeepSeek-R1's readable pattern
    ``|special_token|<reasoning_process>|special_token|<summary>``: the reasoning, then a short
    summary for the reader, then the answer. Each tag appears exactly once, the reasoning and the
    summary are non-empty, and the summary holds no markup and at most ``MAX_SUMMARY_CHARS``.
    """
    stripped = text.strip()
    if any(stripped.count(tag) != 1 for tag in TAGS) or not stripped.startswith(THINK_OPEN):
        return None
    think_end = stripped.find(THINK_CLOSE)
    answer_start = stripped.find(ANSWER_OPEN)
    if not think_end < answer_start or not stripped.endswith(ANSWER_CLOSE):
        return None
    reasoning = stripped[len(THINK_OPEN) : think_end]
    summary = stripped[think_end + len(THINK_CLOSE) : answer_start].strip()
    answer = stripped[answer_start + len(ANSWER_OPEN) : -len(ANSWER_CLOSE)].strip()
    if not reasoning.strip() or not summary or len(summary) > MAX_SUMMARY_CHARS or "<" in summary or ">" in summary:
        return None
    return ReadableCompletion(reasoning, summary, answer)


def is_readable_format(text: str) -> bool:
    """True for the readable format of :func:`parse_readable` (reasoning, summary, answer)."""
    return parse_readable(text) is not None


def parse_completion(text: str) -> ParsedCompletion:
    """Parse reasoning, answer and strict well-formedness in one call."""
    return ParsedCompletion(extract_reasoning(text), extract_answer(text), is_strict_format(text))
