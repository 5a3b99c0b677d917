"""Prompts posed in two languages: the condition under which DeepSeek-R1's reasoning mixed languages.

The paper reports that chains of thought mix languages during RL, "particularly when RL prompts
involve multiple languages", and adds a language-consistency reward in stage 2: the share of the
reasoning's words that are in the *prompt's* language. In the tiny world a prompt is posed in the
second language by a one-word system message (``es``) before the unchanged question; its target
language is then the second one (``luego`` for ``so``, ``espera`` for ``wait``)::

    <|user|>3+5+9<|assistant|>          target "en": 3+5+9 so 8+9 so 7
    es<|user|>3+5+9<|assistant|>        target "es": 3+5+9 luego 8+9 luego 7

The marker sits before the user turn so that the question keeps its place right after
``<|user|>``, where the tiny models look for it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .base import Example, Messages, Task

FIRST_LANGUAGE, SECOND_LANGUAGE = "en", "es"
LANGUAGES = (FIRST_LANGUAGE, SECOND_LANGUAGE)


def pose(example: Example, language: str) -> Example:
    """``example`` posed in ``language`` (kept in ``info["language"]``)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    return Example(example.question, example.answer, {**example.info, "language": language})


def pose_in_languages(examples: Sequence[Example], second_share: float, seed: int) -> list[Example]:
    """Each example posed in the second language with probability ``second_share`` (seeded)."""
    if not 0.0 <= second_share <= 1.0:
        raise ValueError(f"second_share must be in [0, 1], got {second_share}")
    rng = random.Random(seed)
    return [pose(e, SECOND_LANGUAGE if rng.random() < second_share else FIRST_LANGUAGE) for e in examples]


def example_language(example: Example) -> str:
    """The language ``example`` is posed in (the first language unless posed otherwise)."""
    return example.info.get("language", FIRST_LANGUAGE)


def prompt_language(prompt: Any) -> str:
    """The target language of a prompt: the second when a system message names it, else the first.

    Accepts chat messages or anything else (a plain string is in the first language); never raises.
    """
    if isinstance(prompt, list):
        for message in prompt:
            if isinstance(message, dict) and message.get("role") == "system" and message.get("content") == SECOND_LANGUAGE:
                return SECOND_LANGUAGE
    return FIRST_LANGUAGE


@dataclass(frozen=True)
class BilingualTask:
    """``inner`` with each example's prompt posed in its language; answers are checked by ``inner``."""

    inner: Task

    @property
    def name(self) -> str:
        return self.inner.name

    def prompt(self, example: Example) -> Messages:
        """The inner prompt, after a ``es`` system message when the example is posed in the second language."""
        marker = [{"role": "system", "content": SECOND_LANGUAGE}] if example_language(example) == SECOND_LANGUAGE else []
        return marker + self.inner.prompt(example)

    def check_answer(self, answer: str, example: Example) -> bool:
        return self.inner.check_answer(answer, example)

    def __getattr__(self, name: str) -> Any:
        # The inner task's helpers (make_example, solution_steps, ...) stay reachable.
        if name.startswith("__") or name == "inner":  # copy and pickle probe these before ``inner`` exists
            raise AttributeError(name)
        return getattr(self.inner, name)
