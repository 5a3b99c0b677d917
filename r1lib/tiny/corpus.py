"""The synthetic pretraining corpus of the tiny world: three families of documents.

* **chain** (``3+5+9+2``): a direct answer, or a step-by-step trace ``3+5+9+2 so 8+9+2 so ...``.
  A tiny model cannot answer long chains directly but can reason them through.
* **search** (``3851=9``): a direct answer is a *guess* (a random pair of the digits), because an
  answer given without thinking is one; a trace tries a pair and checks it (``3+8=1``). Most traces
  are *careless* and answer the first pair they try, right or wrong; a few are *diligent* and go on
  after a failed check with ``wait``. Reflection exists, rarely, and pays.
* **general** (``greet Ana``): a plain reply without tags, usually a good one, sometimes one of
  the flawed kinds the reward model learns to reject.

Reasoning *pays but is rare*: most documents answer directly, a minority reason. A curriculum shows
many traces early (so that reasoning is learned well) and dilutes them later (so that the base
mostly answers directly). Some traces use a second language for their connector words (``luego``
for ``so``, ``espera`` for ``wait``), alone or mixed with English, so that a language-consistency
reward has something real to fix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..format import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from ..tasks.base import Example, Messages
from ..tasks.chain import ChainTask
from ..tasks.general import GeneralTask
from ..tasks.search import SearchTask
from .tokenizer import CONNECTORS_EN, CONNECTORS_ES

LANGUAGES = ("en", "es", "mixed")
FAMILIES = ("chain", "search", "general")
Document = tuple[Messages, str]  # (prompt messages, the assistant's reply)


@dataclass(frozen=True)
class CorpusConfig:
    """Mixture proportions of the pretraining corpus."""

    chain_weight: float = field(
        default=0.4,
        metadata={"help": "Relative weight of chain documents (3+5+9+2) in the mixture; the three family weights "
                          "are >= 0 with a positive sum, and need not add up to 1."},
    )
    search_weight: float = field(
        default=0.4,
        metadata={"help": "Relative weight of search documents (3851=9) in the mixture."},
    )
    general_weight: float = field(
        default=0.2,
        metadata={"help": "Relative weight of general documents (greet Ana: a plain reply without tags) in the "
                          "mixture."},
    )
    trace_fraction_early: float = field(
        default=0.6,
        metadata={"help": "Share of chain and search documents that reason before answering, before "
                          "curriculum_switch: many traces early, so that reasoning is learned well. In [0, 1]."},
    )
    trace_fraction_late: float = field(
        default=0.2,
        metadata={"help": "Share of chain and search documents that reason before answering, from "
                          "curriculum_switch on: few traces late, so that the base mostly answers directly. "
                          "In [0, 1]."},
    )
    curriculum_switch: float = field(
        default=0.5,
        metadata={"help": "Fraction of pretraining after which traces become rare (trace_fraction_early gives way "
                          "to trace_fraction_late). In [0, 1]."},
    )
    diligent_rate: float = field(
        default=0.3,
        metadata={"help": "Share of search traces that keep searching after a failed check (with 'wait'); the "
                          "others are careless and answer the first pair they try. In [0, 1]."},
    )
    second_language_rate: float = field(
        default=0.1,
        metadata={"help": "Share of traces whose connector words are all in the second language (luego, espera). "
                          "In [0, 1]; with mixed_language_rate at most 1."},
    )
    mixed_language_rate: float = field(
        default=0.1,
        metadata={"help": "Share of traces that mix English and second-language connector words, which a "
                          "language-consistency reward can then fix. In [0, 1]."},
    )
    general_flawed_rate: float = field(
        default=0.3,
        metadata={"help": "Share of general replies of a rejected kind (rude, off topic, ...), which the reward "
                          "model learns to reject. In [0, 1]."},
    )

    def __post_init__(self) -> None:
        for name in ("trace_fraction_early", "trace_fraction_late", "curriculum_switch", "diligent_rate",
                     "second_language_rate", "mixed_language_rate", "general_flawed_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.second_language_rate + self.mixed_language_rate > 1.0:
            raise ValueError("second_language_rate + mixed_language_rate must be at most 1")
        weights = (self.chain_weight, self.search_weight, self.general_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"family weights must be >= 0 with a positive sum, got {weights}")

    def trace_fraction(self, progress: float) -> float:
        """Fraction of reasoning documents at ``progress`` in [0, 1] of pretraining."""
        return self.trace_fraction_early if progress < self.curriculum_switch else self.trace_fraction_late


def _connector(word: str, language: str, rng: random.Random) -> str:
    if language == "mixed":
        language = rng.choice(("en", "es"))
    return (CONNECTORS_EN if language == "en" else CONNECTORS_ES)[word]


def chain_trace(task: ChainTask, example: Example, rng: random.Random, language: str = "en") -> str:
    """The think block of a chain: rewrite steps joined by the ``so`` connector."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    steps = task.solution_steps(example)
    text = steps[0] + "".join(_connector("so", language, rng) + step for step in steps[1:])
    return f"{THINK_OPEN}{text}{THINK_CLOSE}"


def search_trace(
    task: SearchTask, example: Example, rng: random.Random, language: str = "en", diligent: bool = True
) -> tuple[str, str]:
    """The think block of a search and the pair it answers: ``a+b=c`` checks joined by ``wait``
    after each failure (diligent), or just the first check (careless)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    steps = task.search_steps(example, diligent)
    checks = [f"{a}+{b}={task.pair_sum((a, b))}" for (a, b), _ in steps]
    text = checks[0] + "".join(_connector("wait", language, rng) + check for check in checks[1:])
    (a, b), _ = steps[-1]
    return f"{THINK_OPEN}{text}{THINK_CLOSE}", f"{a}+{b}"


def _language(config: CorpusConfig, rng: random.Random) -> str:
    draw = rng.random()
    if draw < config.second_language_rate:
        return "es"
    if draw < config.second_language_rate + config.mixed_language_rate:
        return "mixed"
    return "en"


def chain_reply(task: ChainTask, example: Example, rng: random.Random, config: CorpusConfig, progress: float) -> str:
    """A chain document's reply: the answer, after a trace for ``trace_fraction`` of documents."""
    answer = f"{ANSWER_OPEN}{example.answer}{ANSWER_CLOSE}"
    if rng.random() >= config.trace_fraction(progress):
        return answer
    return chain_trace(task, example, rng, _language(config, rng)) + answer


def search_reply(task: SearchTask, example: Example, rng: random.Random, config: CorpusConfig, progress: float) -> str:
    """A search document's reply: a guessed pair, or a (careless or diligent) search and its pair."""
    if rng.random() >= config.trace_fraction(progress):
        a, b = rng.sample(task.candidate_pairs(example), 1)[0]
        return f"{ANSWER_OPEN}{a}+{b}{ANSWER_CLOSE}"
    language = _language(config, rng)
    trace, pair = search_trace(task, example, rng, language, diligent=rng.random() < config.diligent_rate)
    return f"{trace}{ANSWER_OPEN}{pair}{ANSWER_CLOSE}"


def general_reply(task: GeneralTask, example: Example, rng: random.Random, config: CorpusConfig) -> str:
    """A plain reply: preferred, or for ``general_flawed_rate`` of documents a flawed one."""
    if rng.random() < config.general_flawed_rate:
        return task.rejected_reply(example, rng)
    return task.preferred_reply(example, rng)


_CHAIN, _SEARCH, _GENERAL = ChainTask(), SearchTask(), GeneralTask()


def sample_document(rng: random.Random, config: CorpusConfig, progress: float) -> Document:
    """One document of the corpus at ``progress`` in [0, 1] of pretraining: (prompt, reply)."""
    family = rng.choices(FAMILIES, weights=(config.chain_weight, config.search_weight, config.general_weight))[0]
    if family == "chain":
        example = _CHAIN.sample(rng)
        return _CHAIN.prompt(example), chain_reply(_CHAIN, example, rng, config, progress)
    if family == "search":
        example = _SEARCH.sample(rng)
        return _SEARCH.prompt(example), search_reply(_SEARCH, example, rng, config, progress)
    example = _GENERAL.sample(rng)
    return _GENERAL.prompt(example), general_reply(_GENERAL, example, rng, config)
