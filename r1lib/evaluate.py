"""Evaluation: pass@1 averaged over k samples, reasoning and reflection rates, lengths."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .format import extract_answer, extract_reasoning, uses_reasoning
from .rollout import render_prompts, rollout
from .tasks.base import Example, Task

# The reflection words tracked in the Nature version of the R1 paper.
REFLECTION_WORDS = ("wait", "mistake", "however", "but", "retry", "error", "verify", "wrong", "evaluate", "check")
_REFLECTION_RE = re.compile(r"\b(" + "|".join(REFLECTION_WORDS) + r")\b", re.IGNORECASE)


def has_reflection(text: str) -> bool:
    """True when the completion contains one of :data:`REFLECTION_WORDS` as a whole word."""
    return _REFLECTION_RE.search(text) is not None


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
    def reflection_rate(self) -> float:
        """Fraction of samples containing a reflection word."""
        return self._mean([[has_reflection(c) for c in row] for row in self.completions])

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
) -> EvalResult:
    """Sample ``k`` completions per example and verify each.

    ``prefill`` is appended to every prompt and prepended to every completion before scoring, e.g.
    ``"<think>"`` to force reasoning or ``"<answer>"`` to force a direct answer.
    """
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    prompts_per_batch = max(1, batch_size // k)
    result = EvalResult([], [], [], [])
    chunks = range(0, len(examples), prompts_per_batch)
    for start in tqdm(chunks, desc="evaluate", disable=not progress, leave=False):
        chunk = examples[start : start + prompts_per_batch]
        prompts = render_prompts(tokenizer, [task.prompt(e) for e in chunk], prefill=prefill)
        out = rollout(model, tokenizer, prompts, k, max_new_tokens, temperature, generator=generator)
        lengths = out.completion_lengths.tolist()
        for i, example in enumerate(chunk):
            rows = range(i * k, (i + 1) * k)
            texts = [prefill + out.texts[r] for r in rows]
            result.completions.append(texts)
            result.correct.append([_is_correct(task, t, example) for t in texts])
            result.lengths.append([lengths[r] for r in rows])
            result.truncated.append([bool(out.is_truncated[r]) for r in rows])
    return result


def _is_correct(task: Task, completion: str, example: Example) -> bool:
    answer = extract_answer(completion)
    return answer is not None and task.check_answer(answer, example)


__all__ = ["REFLECTION_WORDS", "EvalResult", "evaluate", "extract_reasoning", "has_reflection"]
