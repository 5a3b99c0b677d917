"""The stage-by-stage table: each stage's model on held-out reasoning problems (pass@1, cons@k,
language consistency, the readable format, length) and general requests (the gold judge and the reward
model), and the relative gains between two rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..evaluate import EvalResult, evaluate, standard_error
from ..format import is_readable_format
from ..rejection import sample_groups
from ..reward_model import RewardModel
from ..rewards import RewardFunc, tiny_language_consistency_reward
from ..tasks.base import Example, Task
from ..tasks.general import VERDICTS, GeneralTask
from .config import READABLE_LENGTH

if TYPE_CHECKING:
    from .stages import Pipeline

TABLE_COLUMNS = ("pass@1", "cons@k", "language_consistency", "readable_rate", "gold_general", "rm_score", "mean_length")


def language_scores(result: EvalResult, reward: RewardFunc = tiny_language_consistency_reward,
                    task: Task | None = None, examples: Sequence[Example] | None = None) -> list[float | None]:
    """The language-consistency score of every sample of ``result``, row by row (None: no language words).

    With ``task`` and ``examples`` (those ``result`` evaluated) each sample is judged against its own
    prompt's language; without, against the first language.
    """
    if (task is None) != (examples is None):
        raise ValueError("give both task and examples, or neither")
    rows = result.completions
    if examples is not None and len(examples) != len(rows):
        raise ValueError(f"{len(examples)} examples for {len(rows)} evaluated rows")
    prompts = [task.prompt(e) for e, row in zip(examples, rows) for _ in row] if task else [None] * sum(map(len, rows))
    return reward(prompts, [c for row in rows for c in row])


def language_consistency(result: EvalResult, reward: RewardFunc = tiny_language_consistency_reward,
                         task: Task | None = None, examples: Sequence[Example] | None = None) -> float:
    """Mean language-consistency score over the samples that have language words (1.0 = one language);
    see :func:`language_scores` for ``task`` and ``examples``."""
    scores = [s for s in language_scores(result, reward, task, examples) if s is not None]
    return sum(scores) / len(scores) if scores else 1.0


def off_language_share(result: EvalResult, reward: RewardFunc = tiny_language_consistency_reward,
                       task: Task | None = None, examples: Sequence[Example] | None = None) -> float:
    """Share of all samples whose reasoning uses a word outside its prompt's language (consistency below 1)."""
    scores = language_scores(result, reward, task, examples)
    return sum(1 for s in scores if s is not None and s < 1.0) / max(1, len(scores))


def readable_rate(result: EvalResult) -> float:
    """Share of samples in the readable format (reasoning, summary, answer)."""
    flat = [c for row in result.completions for c in row]
    return sum(map(is_readable_format, flat)) / max(1, len(flat))


@torch.no_grad()
def general_quality(model, tokenizer, requests: Sequence[Example], k: int = 16, seed: int = 0,
                    scorer: RewardModel | None = None, max_new_tokens: int = 48) -> dict[str, float]:
    """How good ``k`` sampled replies to each general request are, by the gold judge and by a reward model.

    ``gold_general`` is the share the rule of :meth:`GeneralTask.judge` accepts (exactly a preferred
    form), with its standard error over requests; ``general/<verdict>`` the share of each verdict;
    ``rm_score`` (with ``scorer``) the reward model's mean score, a second opinion that stage 4
    optimises and therefore cannot judge it.
    """
    groups, verdicts = _judged_replies(model, tokenizer, requests, k, seed, max_new_tokens)
    per_request = _acceptable_shares(verdicts, k)
    quality = {"gold_general": sum(per_request) / len(per_request), "gold_general_stderr": standard_error(per_request)}
    quality.update({f"general/{v}": verdicts.count(v) / len(verdicts) for v in VERDICTS})
    if scorer is not None:
        scores = scorer.score([g.prompt for g in groups for _ in g.texts], [t for g in groups for t in g.texts])
        quality["rm_score"] = sum(scores) / len(scores)
    return quality


def _judged_replies(model, tokenizer, requests: Sequence[Example], k: int, seed: int, max_new_tokens: int):
    if not requests or k < 1:
        raise ValueError(f"need at least one request and k >= 1, got {len(requests)} requests and k={k}")
    general = GeneralTask()
    groups = list(sample_groups(model, tokenizer, [general.prompt(e) for e in requests], k, max_new_tokens, 1.0, seed,
                                batch_prompts=None))
    return groups, [general.judge(text, request) for group, request in zip(groups, requests) for text in group.texts]


@torch.no_grad()
def gold_per_request(model, tokenizer, requests: Sequence[Example], k: int = 16, seed: int = 0,
                     max_new_tokens: int = 48) -> list[float]:
    """For each request, the share of ``k`` sampled replies that the gold judge accepts: the unit over
    which two models are compared pairwise (:func:`paired_difference`)."""
    return _acceptable_shares(_judged_replies(model, tokenizer, requests, k, seed, max_new_tokens)[1], k)


def _acceptable_shares(verdicts: Sequence[str], k: int) -> list[float]:
    return [sum(v == "acceptable" for v in verdicts[i : i + k]) / k for i in range(0, len(verdicts), k)]


def paired_difference(after: Sequence[float], before: Sequence[float]) -> tuple[float, float]:
    """The mean of ``after - before`` over paired units (requests) and its standard error.

    Pairing removes what the units differ in (some requests are harder than others for every
    model), so a small change is seen that two separate error bars would hide.
    """
    if len(after) != len(before) or len(after) < 2:
        raise ValueError(f"need two equally long lists of at least 2 values, got {len(after)} and {len(before)}")
    differences = [a - b for a, b in zip(after, before)]
    return sum(differences) / len(differences), standard_error(differences)


def evaluate_stage(model, tokenizer, pipeline: Pipeline, k: int = 4, seed: int = 7,
                   max_new_tokens: int = READABLE_LENGTH, general_k: int = 16) -> dict[str, float]:
    """One row of the stage-by-stage table for ``model``: reasoning on the held-out problems (both
    languages), general replies on the held-out requests (gold judge and reward model)."""
    result = evaluate(model, tokenizer, pipeline.task, pipeline.eval_examples, k=k, max_new_tokens=max_new_tokens, seed=seed)
    return {
        "pass@1": result.pass_at_1,
        "pass@1_stderr": result.pass_at_1_stderr,
        "cons@k": result.cons_at_k(pipeline.task, pipeline.eval_examples),
        "language_consistency": language_consistency(result, pipeline.config.language_reward(), pipeline.task,
                                                     pipeline.eval_examples),
        "readable_rate": readable_rate(result),
        **general_quality(model, tokenizer, pipeline.general_eval, k=general_k, seed=seed, scorer=pipeline.scorer()),
        "mean_length": result.mean_length,
    }


def relative_gains(table: dict[str, dict[str, float]], final: str, reference: str,
                   columns: Sequence[str] = TABLE_COLUMNS) -> dict[str, float]:
    """Each column's change from row ``reference`` to row ``final``, relative to the reference (0.25 = +25%)."""
    return {c: (table[final][c] - table[reference][c]) / abs(table[reference][c]) if table[reference][c] else math.nan
            for c in columns}
