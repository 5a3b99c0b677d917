"""The synthetic pretraining corpus of the tiny world.

The corpus is designed so that reasoning *pays but is rare* (DESIGN.md, section 3):

* most documents answer directly, ``<answer>9</answer>``, which a tiny model cannot do reliably for
  long chains;
* a minority reason step by step inside ``<think>``, which a tiny model can learn to do well;
* a few reasoning traces contain a self-correction (``... 6+2 wait 7+2 ...``) so that reflection
  exists to be amplified, and some use a second language for the connector words (``luego``,
  ``espera``), alone or mixed with English, so that a language-consistency reward has something
  real to fix.

A curriculum shows many traces early (so that reasoning is learned well) and dilutes them later
(so that the base model mostly answers directly).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..format import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from ..tasks.base import Example
from ..tasks.chain import ChainTask
from .tokenizer import CONNECTORS_EN, CONNECTORS_ES

LANGUAGES = ("en", "es", "mixed")


@dataclass(frozen=True)
class CorpusConfig:
    """Mixture proportions of the pretraining corpus."""

    trace_fraction_early: float = 0.6
    trace_fraction_late: float = 0.2
    curriculum_switch: float = 0.5  # fraction of pretraining after which traces become rare
    reflection_rate: float = 0.1
    second_language_rate: float = 0.1
    mixed_language_rate: float = 0.1

    def __post_init__(self) -> None:
        for name in ("trace_fraction_early", "trace_fraction_late", "curriculum_switch", "reflection_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.second_language_rate + self.mixed_language_rate > 1.0:
            raise ValueError("second_language_rate + mixed_language_rate must be at most 1")

    def trace_fraction(self, progress: float) -> float:
        """Fraction of reasoning documents at ``progress`` in [0, 1] of pretraining."""
        return self.trace_fraction_early if progress < self.curriculum_switch else self.trace_fraction_late


def _connector(word: str, language: str, rng: random.Random) -> str:
    if language == "mixed":
        language = rng.choice(("en", "es"))
    return (CONNECTORS_EN if language == "en" else CONNECTORS_ES)[word]


def _wrong_step(step: str, modulus: int, rng: random.Random) -> str:
    """The step with its first number off by a non-zero amount: a plausible slip."""
    head, _, tail = step.partition("+")
    wrong = (int(head) + rng.randint(1, modulus - 1)) % modulus
    return f"{wrong}+{tail}" if tail else str(wrong)


def reasoning_trace(
    task: ChainTask, example: Example, rng: random.Random, language: str = "en", reflect: bool = False
) -> str:
    """The think block for ``example``: rewrite steps joined by connector words.

    With ``reflect``, one step is first written wrongly and then corrected after ``wait``.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    steps = task.solution_steps(example)
    slip = rng.randrange(1, len(steps)) if reflect and len(steps) > 1 else -1
    text = steps[0]
    for i, step in enumerate(steps[1:], start=1):
        text += _connector("so", language, rng)
        if i == slip:
            text += _wrong_step(step, task.modulus, rng) + _connector("wait", language, rng)
        text += step
    return f"{THINK_OPEN}{text}{THINK_CLOSE}"


def completion_text(task: ChainTask, example: Example, rng: random.Random, config: CorpusConfig, progress: float) -> str:
    """One assistant turn of the corpus: either a direct answer or a reasoning trace, then the answer."""
    answer = f"{ANSWER_OPEN}{example.answer}{ANSWER_CLOSE}"
    if rng.random() >= config.trace_fraction(progress):
        return answer
    draw = rng.random()
    if draw < config.second_language_rate:
        language = "es"
    elif draw < config.second_language_rate + config.mixed_language_rate:
        language = "mixed"
    else:
        language = "en"
    reflect = rng.random() < config.reflection_rate
    return reasoning_trace(task, example, rng, language, reflect) + answer
