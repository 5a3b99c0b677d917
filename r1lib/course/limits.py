"""Notebook 09's measurements: R1's limits and its critics' questions, asked of the tiny world.

Each function measures one question on models the course trained: how a prompt's form changes the
answers (few-shot turns, paraphrases), whether a model keeps to an output contract it was not
trained on, how many tokens it spends against how hard a problem is, and whether RL creates
reflection or only amplifies what the base could already sample.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from ..evaluate import EvalResult
from ..format import ANSWER_CLOSE, ANSWER_OPEN, Messages
from ..tasks.base import Example, Task
from ..tasks.chain import ChainTask
from ..tasks.search import SearchTask
from ..tiny.corpus import chain_trace, search_trace

# Surface forms of a bare expression. The tiny model has no instruction language, so a paraphrase can
# only change how the same question is written; none of these forms is in its pretraining corpus.
PARAPHRASES: dict[str, Callable[[str], str]] = {
    "spaced": lambda question: question.replace("+", " + ").replace("=", " = "),
    "trailing =": lambda question: question + ("" if question.endswith("=") else "="),
    "leading word": lambda question: "sum " + question,
}
_DIRECT_ANSWER = re.compile(re.escape(ANSWER_OPEN) + r"[^<]{1,8}" + re.escape(ANSWER_CLOSE))


def worked_solution(task: Task, example: Example) -> str:
    """The completion a worked example shows: the pretraining corpus's own trace (chains: each step
    rewrites the rest; search: pairs checked in order, ``wait`` after each miss), in the first
    language, then the answer. Other tasks show the answer alone."""
    inner = getattr(task, "inner", task)  # a bilingual task poses its inner task's problems
    english = random.Random(0)  # the connectors of the first language need no draw; the corpus asks for a generator
    if isinstance(inner, ChainTask):
        thought = chain_trace(inner, example, english)
    elif isinstance(inner, SearchTask):
        thought, _ = search_trace(inner, example, english, diligent=True)
    else:
        thought = ""
    return f"{thought}{ANSWER_OPEN}{example.answer}{ANSWER_CLOSE}"


def few_shot_prompt(task: Task, shots: Sequence[Example]) -> Callable[[Example], Messages]:
    """A prompt function for :func:`r1lib.evaluate.evaluate`: the ``shots`` as earlier user/assistant
    turns, each answered by :func:`worked_solution`, then the question itself, posed as usual."""
    turns: Messages = []
    for shot in shots:
        turns += [*task.prompt(shot), {"role": "assistant", "content": worked_solution(task, shot)}]

    def pose(example: Example) -> Messages:
        return turns + task.prompt(example)

    return pose


def paraphrased_prompt(task: Task, paraphrase: str) -> Callable[[Example], Messages]:
    """A prompt function that writes the question in one of the :data:`PARAPHRASES`' forms."""
    if paraphrase not in PARAPHRASES:
        raise ValueError(f"unknown paraphrase {paraphrase!r}; choose one of {list(PARAPHRASES)}")
    rewrite = PARAPHRASES[paraphrase]

    def pose(example: Example) -> Messages:
        messages = [dict(m) for m in task.prompt(example)]
        messages[-1]["content"] = rewrite(messages[-1]["content"])
        return messages

    return pose


def prompt_conditions(task: Task, shot_pool: Sequence[Example], shot_counts: Sequence[int] = (1, 2, 4),
                      seed: int = 0) -> dict[str, Callable[[Example], Messages] | None]:
    """The prompt forms to compare: zero-shot (``None``: the task's own prompt), ``n``-shot for each
    of ``shot_counts`` (shots drawn from ``shot_pool``, seeded, never the evaluated problems), and
    every paraphrase."""
    if shot_counts and max(shot_counts) > len(shot_pool):
        raise ValueError(f"{max(shot_counts)} shots need a pool of at least that many examples, got {len(shot_pool)}")
    rng = random.Random(seed)
    conditions: dict[str, Callable[[Example], Messages] | None] = {"zero-shot": None}
    for count in shot_counts:
        conditions[f"{count}-shot"] = few_shot_prompt(task, rng.sample(list(shot_pool), count))
    for name in PARAPHRASES:
        conditions[f"paraphrase: {name}"] = paraphrased_prompt(task, name)
    return conditions


def keeps_direct_contract(completion: str) -> bool:
    """Whether a completion is the bare answer contract ``<answer>x</answer>`` and nothing else: no
    reasoning, no text around it (the completion includes the ``<answer>`` it was started with)."""
    return _DIRECT_ANSWER.fullmatch(completion.strip()) is not None


def contract_compliance(result: EvalResult) -> float:
    """The share of an evaluation's samples that keep :func:`keeps_direct_contract`."""
    flat = [c for row in result.completions for c in row]
    return sum(map(keeps_direct_contract, flat)) / max(1, len(flat))


@dataclass
class GroupStats:
    """Tokens and accuracy of the samples of one group of problems."""

    problems: int
    mean_tokens: float
    pass_at_1: float


def stats_by_group(result: EvalResult, examples: Sequence[Example],
                   key: Callable[[Example], Hashable]) -> dict[Hashable, GroupStats]:
    """Mean completion tokens and pass@1 of ``result``'s samples, grouped by ``key(example)``,
    e.g. a chain's length or whether a search's first pair is right; groups in sorted order."""
    if len(examples) != len(result.correct):
        raise ValueError(f"{len(examples)} examples for a result on {len(result.correct)}")
    tokens: dict[Hashable, list[int]] = defaultdict(list)
    right: dict[Hashable, list[bool]] = defaultdict(list)
    counts: dict[Hashable, int] = defaultdict(int)
    for example, lengths, correct in zip(examples, result.lengths, result.correct):
        group = key(example)
        tokens[group] += list(lengths)
        right[group] += list(correct)
        counts[group] += 1
    return {g: GroupStats(counts[g], sum(tokens[g]) / len(tokens[g]), sum(right[g]) / len(right[g]))
            for g in sorted(counts, key=repr)}


def chain_length(example: Example) -> int:
    """How many digits a chain sums: its difficulty."""
    return len(example.info["terms"])


def first_pair_right(task: SearchTask) -> Callable[[Example], bool]:
    """Whether the search's first pair already checks out (an easy search: no ``wait`` needed)."""
    return lambda example: bool(task.search_steps(example)[0][1])


def solved_in_one_shot(result: EvalResult) -> list[int]:
    """Indices of the problems every sample of ``result`` got right: with a forced direct answer
    (``prefill="<answer>"``), the problems the model answers right without thinking."""
    return [i for i, row in enumerate(result.correct) if row and all(row)]


__all__ = [
    "PARAPHRASES", "GroupStats", "chain_length", "contract_compliance", "few_shot_prompt", "first_pair_right",
    "keeps_direct_contract", "paraphrased_prompt", "prompt_conditions", "solved_in_one_shot", "stats_by_group",
    "worked_solution",
]

