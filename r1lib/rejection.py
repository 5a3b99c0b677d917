"""Rejection sampling: sample several answers per prompt, verify each, keep one that passes.

DeepSeek-R1's stage 3 builds its reasoning data this way (correct, readable, single-language, not
overlong samples of the stage-2 model), and notebook 07 builds distillation traces with the same
loop from a teacher.

The loop itself, :func:`sample_groups` (or :func:`sample_batches`, one rollout batch at a time),
is the one place where r1lib samples a group of completions per prompt outside training: the cold
start, evaluation, distillation traces and the pipeline's reward-model picks all read its groups.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

import torch

from .format import Messages, is_readable_format
from .records import PromptCompletion
from .rewards import RewardFunc, tiny_language_consistency_reward
from .rollout import render_prompts, rollout
from .tasks.base import Example, Task, verify

REJECTION_FILTERS = ("correct", "readable", "single_language", "short_enough")


@dataclass(frozen=True)
class SampleGroup:
    """The completions sampled for one prompt (``samples_per_prompt`` of each list)."""

    index: int  # the prompt's position in the prompts given to the sampler
    prompt: Messages
    texts: list[str]  # what the model wrote, after any prefill
    lengths: list[int]  # completion tokens, EOS included
    truncated: list[bool]  # no stop token within the token limit
    prompt_tokens: int  # the rendered prompt's tokens (prefill included)

    @property
    def tokens(self) -> int:
        """Tokens the model processed for this group: the prompt once, then every sampled token."""
        return self.prompt_tokens + sum(self.lengths)

    def best(self, scores: Sequence[float]) -> int | None:
        """The sample with the highest of ``scores`` (one per sample) among those that ended by
        themselves (the first on a tie), or None when every sample was truncated."""
        if len(scores) != len(self.texts):
            raise ValueError(f"{len(scores)} scores for {len(self.texts)} samples")
        finished = [r for r, cut in enumerate(self.truncated) if not cut]
        return max(finished, key=lambda r: scores[r]) if finished else None


def sample_batches(
    model, tokenizer, prompts: Sequence[Messages], samples_per_prompt: int, max_new_tokens: int,
    temperature: float = 1.0, seed: int | torch.Generator = 0, batch_prompts: int | None = 64, prefill: str = "",
) -> Iterator[list[SampleGroup]]:
    """Sample ``samples_per_prompt`` completions per prompt, ``batch_prompts`` prompts per rollout
    (None: all in one), and yield each rollout's groups, in the order of ``prompts``.

    ``seed`` seeds a generator on the model's device, or is a generator to draw from. Each batch is
    sampled when it is asked for, so a caller that stops early never samples the rest. ``prefill`` is
    appended to every rendered prompt (the texts do not repeat it).
    """
    if batch_prompts is not None and batch_prompts < 1:
        raise ValueError(f"batch_prompts must be at least 1 or None, got {batch_prompts}")
    generator = seed if isinstance(seed, torch.Generator) else (
        torch.Generator(device=next(model.parameters()).device).manual_seed(seed))
    step = batch_prompts or max(1, len(prompts))
    return (_sample_batch(model, tokenizer, prompts[start : start + step], start, samples_per_prompt, max_new_tokens,
                          temperature, generator, prefill) for start in range(0, len(prompts), step))


def _sample_batch(
    model, tokenizer, prompts: Sequence[Messages], first_index: int, samples_per_prompt: int, max_new_tokens: int,
    temperature: float, generator: torch.Generator, prefill: str,
) -> list[SampleGroup]:
    """One rollout over ``prompts``, cut into their groups (row ``r`` belongs to prompt ``r // samples_per_prompt``)."""
    out = rollout(model, tokenizer, render_prompts(tokenizer, list(prompts), prefill=prefill), samples_per_prompt,
                  max_new_tokens, temperature, generator=generator)
    lengths, truncated = out.completion_lengths.tolist(), out.is_truncated.tolist()
    prompt_tokens = out.prompt_mask.sum(dim=1).tolist()
    groups = []
    for i, prompt in enumerate(prompts):
        rows = slice(i * samples_per_prompt, (i + 1) * samples_per_prompt)
        groups.append(SampleGroup(first_index + i, prompt, out.texts[rows], lengths[rows], truncated[rows],
                                  prompt_tokens[i * samples_per_prompt]))
    return groups


def sample_groups(
    model, tokenizer, prompts: Sequence[Messages], samples_per_prompt: int, max_new_tokens: int,
    temperature: float = 1.0, seed: int | torch.Generator = 0, batch_prompts: int | None = 64, prefill: str = "",
) -> Iterator[SampleGroup]:
    """:func:`sample_batches`, one prompt's group at a time (the same samples for the same arguments)."""
    return chain.from_iterable(sample_batches(model, tokenizer, prompts, samples_per_prompt, max_new_tokens,
                                              temperature, seed, batch_prompts, prefill))


def rejection_sample(
    model, tokenizer, task: Task, prompts: Sequence[Example], samples_per_prompt: int, temperature: float,
    max_tokens: int, seed: int, filters: Sequence[str] = REJECTION_FILTERS,
    language_reward: RewardFunc = tiny_language_consistency_reward, batch_prompts: int = 64,
) -> tuple[list[PromptCompletion], dict[str, int], int]:
    """Sample ``samples_per_prompt`` answers per prompt and keep the first that passes every filter.

    Filters are any of :data:`REJECTION_FILTERS` (see :func:`rejection_checks`). Returns the kept
    examples (at most one per prompt), how many samples passed each check, and the number of tokens
    the model processed (each prompt once, then every sampled token), for compute accounting.
    """
    unknown = set(filters) - set(REJECTION_FILTERS)
    if unknown:
        raise ValueError(f"unknown filters {sorted(unknown)}; choose from {REJECTION_FILTERS}")
    # Sampling a little past max_tokens is what lets the "short_enough" check see an overlong answer.
    limit = max_tokens + 16 if "short_enough" in filters else max_tokens
    kept, tokens = [], 0
    counts = {"sampled": 0, **{name: 0 for name in REJECTION_FILTERS}}
    groups = sample_groups(model, tokenizer, [task.prompt(e) for e in prompts], samples_per_prompt, limit,
                           temperature, seed, batch_prompts)
    for example, group in zip(prompts, groups):
        tokens += group.tokens
        chosen = None
        for text, length, truncated in zip(group.texts, group.lengths, group.truncated):
            checks = rejection_checks(text, length, example, task, max_tokens, language_reward)
            counts["sampled"] += 1
            for name, passed in checks.items():
                counts[name] += passed
            if chosen is None and all(checks[name] for name in filters) and not truncated:
                chosen = text
        if chosen is not None:
            kept.append(PromptCompletion(group.prompt, chosen))
    return kept, counts, tokens


def interleave_sft(first: Sequence[PromptCompletion], second: Sequence[PromptCompletion], seed: int) -> list[PromptCompletion]:
    """Both lists shuffled together (seeded)."""
    mixed = list(first) + list(second)
    random.Random(seed).shuffle(mixed)
    return mixed


def rejection_checks(text: str, length: int, example: Example, task: Task, max_tokens: int,
                     language_reward: RewardFunc = tiny_language_consistency_reward) -> dict[str, bool]:
    """Stage 3's filters for one reasoning sample: correct, readable format, one language, not overlong."""
    language = language_reward([task.prompt(example)], [text])[0]  # the prompt names the target language
    return {
        "correct": verify(task, text, example),
        "readable": is_readable_format(text),
        "single_language": language is None or language >= 1.0,
        "short_enough": length <= max_tokens,
    }
