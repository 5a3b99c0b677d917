"""Evaluation: pass@1 averaged over k samples (with its sampling error), pass@k, cons@k, and the
behaviours R1-Zero's paper tracks: reasoning, reflection, length and language mixing."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .format import extract_answer, extract_reasoning, uses_reasoning
from .logprobs import completion_logps, per_token_kl
from .rejection import sample_groups
from .rewards import TINY_FOREIGN_WORDS, words
from .rollout import render_prompts, rollout
from .tasks.base import Example, Task, verify

# The ten reflection words tracked in the Nature version of the R1 paper.
REFLECTION_WORDS = ("wait", "mistake", "however", "but", "retry", "error", "verify", "wrong", "evaluate", "check")
# The tiny world's second language says "espera" for "wait": reflection in either language counts.
SECOND_LANGUAGE_REFLECTION_WORDS = ("espera",)
ALL_REFLECTION_WORDS = REFLECTION_WORDS + SECOND_LANGUAGE_REFLECTION_WORDS
_REFLECTION_RE = re.compile(r"\b(" + "|".join(ALL_REFLECTION_WORDS) + r")\b", re.IGNORECASE)


def standard_error(values: Sequence[float]) -> float:
    """The standard error of the mean of ``values`` (sample standard deviation over sqrt(n)); 0 for
    fewer than two values."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


def has_reflection(text: str) -> bool:
    """True when the completion contains a reflection word (:data:`ALL_REFLECTION_WORDS`) as a whole word."""
    return _REFLECTION_RE.search(text) is not None


def reflection_word_counts(texts: Sequence[str]) -> dict[str, float]:
    """Per reflection word, the fraction of ``texts`` that contain it (case-insensitive, whole words)."""
    counts = Counter(word for text in texts for word in {m.lower() for m in _REFLECTION_RE.findall(text)})
    return {word: counts[word] / max(1, len(texts)) for word in ALL_REFLECTION_WORDS}


def mixes_languages(text: str, foreign_words: frozenset[str] | set[str] = TINY_FOREIGN_WORDS) -> bool:
    """True when the reasoning (the ``<think>`` block, else the whole text) uses a second-language word.

    R1-Zero's chains of thought mixed languages; in the tiny world the second language is the
    connector words ``luego`` and ``espera``. This ignores the prompt: for prompts posed in the second
    language (r1lib.tasks.bilingual) judge against each prompt with the language-consistency reward
    instead (r1lib.pipeline.language_scores).
    """
    reasoning = extract_reasoning(text)
    return any(w in foreign_words for w in words(text if reasoning is None else reasoning))


def behaviour_rates(texts: Sequence[str]) -> dict[str, float]:
    """The share of ``texts`` that reason, reflect, and mix languages, and reflection per reasoning trace."""
    n = max(1, len(texts))
    reasoning = [uses_reasoning(t) for t in texts]
    reflecting = [has_reflection(t) for t in texts]
    traces = sum(reasoning)
    return {
        "reasoning_rate": traces / n,
        "reflection_rate": sum(reflecting) / n,
        "reflection_per_trace": sum(r and f for r, f in zip(reasoning, reflecting)) / traces if traces else 0.0,
        "language_mixing_rate": sum(map(mixes_languages, texts)) / n,
        "language_mixing_per_trace": sum(r and mixes_languages(t) for r, t in zip(reasoning, texts)) / traces if traces else 0.0,
    }


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct: 1 - C(n-c, k) / C(n, k).

    The probability that at least one of ``k`` samples drawn without replacement from the ``n`` is
    correct (Chen et al., 2021). Computed as a product to stay exact for large ``n``.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def majority_answer(answers: Sequence[str | None]) -> str | None:
    """The most frequent non-empty normalised answer; ties go to the answer seen first."""
    normalised = [normalise_answer(a) for a in answers if a is not None and normalise_answer(a)]
    if not normalised:
        return None
    counts = Counter(normalised)
    best = max(counts.values())
    return next(a for a in normalised if counts[a] == best)


def normalise_answer(answer: str) -> str:
    """Strip whitespace, surrounding ``$``, a trailing period and thousands separators, for voting."""
    text = answer.strip().strip("$").strip().rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    return " ".join(text.split())


@dataclass
class EvalResult:
    """Per-sample outcomes of an evaluation; the summary statistics are properties."""

    correct: list[list[bool]]  # [example][sample]
    completions: list[list[str]]
    lengths: list[list[int]]  # completion tokens, EOS included
    truncated: list[list[bool]] = field(default_factory=list)

    def _mean(self, values: list[list[float]]) -> float:
        flat = [v for row in values for v in row]
        return sum(flat) / len(flat) if flat else 0.0

    @property
    def pass_at_1(self) -> float:
        """Fraction of correct samples: the paper's pass@1 averaged over k samples."""
        return self._mean(self.correct)

    @property
    def reasoning_rate(self) -> float:
        """Fraction of samples with a non-empty ``<think>`` block."""
        return self._mean([[uses_reasoning(c) for c in row] for row in self.completions])

    @property
    def pass_at_1_stderr(self) -> float:
        """Standard error of :attr:`pass_at_1` from sampling: the spread of per-example accuracies
        over sqrt(number of examples). Two runs differing by less than ~2 of these are not different."""
        return standard_error([sum(row) / len(row) for row in self.correct if row])

    @property
    def reflection_rate(self) -> float:
        """Fraction of samples containing a reflection word (in either language)."""
        return self._mean([[has_reflection(c) for c in row] for row in self.completions])

    @property
    def reflection_per_trace(self) -> float:
        """Among samples that reason, the fraction that reflect: whether reflection grows by itself,
        not only because reasoning does."""
        traces = [c for row in self.completions for c in row if uses_reasoning(c)]
        return sum(map(has_reflection, traces)) / len(traces) if traces else 0.0

    @property
    def language_mixing_rate(self) -> float:
        """Fraction of samples whose reasoning uses a second-language word (:func:`mixes_languages`)."""
        return self._mean([[mixes_languages(c) for c in row] for row in self.completions])

    @property
    def language_mixing_per_trace(self) -> float:
        """Among samples that reason, the fraction that mix languages: whether mixing grows by itself,
        or only rides along with reasoning."""
        traces = [c for row in self.completions for c in row if uses_reasoning(c)]
        return sum(map(mixes_languages, traces)) / len(traces) if traces else 0.0

    @property
    def k(self) -> int:
        """Samples per example."""
        return len(self.correct[0]) if self.correct else 0

    def pass_at(self, k: int) -> float:
        """Unbiased pass@k averaged over examples (needs at least ``k`` samples each)."""
        return sum(pass_at_k(len(row), sum(row), k) for row in self.correct) / max(1, len(self.correct))

    def cons_at_k(self, task: Task, examples: Sequence[Example]) -> float:
        """Majority-vote accuracy: the most common answer among each example's samples, verified."""
        if len(examples) != len(self.completions):
            raise ValueError("cons@k needs the examples this result was computed on")
        right = 0
        for example, texts in zip(examples, self.completions):
            vote = majority_answer([extract_answer(t) for t in texts])
            right += vote is not None and task.check_answer(vote, example)
        return right / max(1, len(examples))

    @property
    def mean_length(self) -> float:
        """Mean completion length in tokens."""
        return self._mean(self.lengths)

    def summary(self) -> dict[str, float]:
        """The headline numbers as a dict (handy for tables and logs)."""
        return {
            "pass@1": self.pass_at_1,
            "reasoning_rate": self.reasoning_rate,
            "reflection_rate": self.reflection_rate,
            "reflection_per_trace": self.reflection_per_trace,
            "language_mixing_rate": self.language_mixing_rate,
            "language_mixing_per_trace": self.language_mixing_per_trace,
            "mean_length": self.mean_length,
        }


def evaluate(
    model,
    tokenizer,
    task: Task,
    examples: list[Example],
    k: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 96,
    prefill: str = "",
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = False,
    prompt: Callable[[Example], Any] | None = None,
) -> EvalResult:
    """Sample ``k`` completions per example and verify each.

    ``prefill`` is appended to every prompt and prepended to every completion before scoring, e.g.
    ``"<think>"`` to force reasoning or ``"<answer>"`` to force a direct answer. ``prompt`` poses an
    example differently (its chat messages; default ``task.prompt``), e.g. with few-shot turns first.
    """
    result = EvalResult([], [], [], [])
    pose = prompt or task.prompt
    groups = sample_groups(model, tokenizer, [pose(e) for e in examples], k, max_new_tokens, temperature, seed,
                           batch_prompts=max(1, batch_size // k), prefill=prefill)
    for example, group in tqdm(zip(examples, groups), total=len(examples), desc="evaluate", disable=not progress,
                               leave=False):
        texts = [prefill + text for text in group.texts]
        result.completions.append(texts)
        result.correct.append([verify(task, t, example) for t in texts])
        result.lengths.append(group.lengths)
        result.truncated.append(group.truncated)
    return result


def kl_to_reference(
    policy,
    reference,
    tokenizer,
    task: Task,
    examples: list[Example],
    k: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 96,
    batch_prompts: int = 32,
    seed: int = 0,
) -> float:
    """How far ``policy`` has drifted from ``reference``: KL(policy || reference) per completion token.

    It is measured on ``k`` of the policy's own samples per example, with the k3 estimator that GRPO's
    loss and its logged ``kl`` use, so it can be set beside a run's log; unlike the log it needs no
    β > 0 (a run with ``beta=0`` keeps no reference). Both models must share ``tokenizer``.
    """
    if not examples or k < 1:
        raise ValueError(f"kl_to_reference needs at least one example and k >= 1, got {len(examples)} and {k}")
    generator = torch.Generator(device=next(policy.parameters()).device).manual_seed(seed)
    total, tokens = 0.0, 0
    for start in range(0, len(examples), batch_prompts):
        prompts = render_prompts(tokenizer, [task.prompt(e) for e in examples[start : start + batch_prompts]])
        out = rollout(policy, tokenizer, prompts, k, max_new_tokens, temperature, generator=generator)
        with torch.no_grad():
            batch = (out.prompt_ids, out.prompt_mask, out.completion_ids, out.completion_mask)
            logps, _ = completion_logps(policy, *batch, temperature=temperature)
            ref_logps, _ = completion_logps(reference, *batch, temperature=temperature)
        mask = out.completion_mask.float()
        total += float((per_token_kl(logps.float(), ref_logps.float()) * mask).sum())
        tokens += int(mask.sum())
    return total / max(1, tokens)


def evaluate_checkpoints(
    checkpoints: Sequence[str | Path],
    task: Task,
    examples: list[Example],
    load: Callable[[Path], tuple[Any, Any]],
    **evaluate_kwargs,
) -> list[tuple[int, EvalResult]]:
    """Evaluate each checkpoint directory (``step-000040`` ...) and return ``(step, result)`` pairs.

    ``load(path) -> (model, tokenizer)`` loads one checkpoint; use it to place the model on a device.
    """
    results = []
    for path in sorted(map(Path, checkpoints), key=lambda p: _step_of(p)):
        model, tokenizer = load(path)
        results.append((_step_of(path), evaluate(model, tokenizer, task, examples, **evaluate_kwargs)))
    return results


def _step_of(path: Path) -> int:
    digits = "".join(ch for ch in path.name if ch.isdigit())
    return int(digits) if digits else 0


__all__ = [
    "ALL_REFLECTION_WORDS", "REFLECTION_WORDS", "SECOND_LANGUAGE_REFLECTION_WORDS", "mixes_languages", "EvalResult", "evaluate", "evaluate_checkpoints", "extract_reasoning", "has_reflection",
    "majority_answer", "normalise_answer", "pass_at_k", "reflection_word_counts",
]
