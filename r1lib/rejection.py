"""Rejection sampling: sample several answers per prompt, verify each, keep one that passes.

DeepSeek-R1's stage 3 builds its reasoning data this way (correct, readable, single-language, not
overlong samples of the stage-2 model), and notebook 07 builds distillation traces with the same
loop from a teacher.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from .format import is_readable_format
from .rewards import RewardFunc, tiny_language_consistency_reward
from .rollout import render_prompts, rollout
from .records import PromptCompletion
from .tasks.base import Example, Task, verify


REJECTION_FILTERS = ("correct", "readable", "single_language", "short_enough")


@torch.no_grad()
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
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    # Sampling a little past max_tokens is what lets the "short_enough" check see an overlong answer.
    limit = max_tokens + 16 if "short_enough" in filters else max_tokens
    kept, tokens = [], 0
    counts = {"sampled": 0, **{name: 0 for name in REJECTION_FILTERS}}
    for start in range(0, len(prompts), batch_prompts):
        chunk = list(prompts[start : start + batch_prompts])
        rendered = render_prompts(tokenizer, [task.prompt(e) for e in chunk])
        out = rollout(model, tokenizer, rendered, samples_per_prompt, limit, temperature, generator=generator)
        lengths = out.completion_lengths.tolist()
        tokens += int(out.prompt_mask.sum()) // samples_per_prompt + sum(lengths)
        for i, example in enumerate(chunk):
            chosen = None
            for r in range(i * samples_per_prompt, (i + 1) * samples_per_prompt):
                checks = rejection_checks(out.texts[r], lengths[r], example, task, max_tokens, language_reward)
                counts["sampled"] += 1
                for name, passed in checks.items():
                    counts[name] += passed
                if chosen is None and all(checks[name] for name in filters) and not out.is_truncated[r]:
                    chosen = out.texts[r]
            if chosen is not None:
                kept.append(PromptCompletion(task.prompt(example), chosen))
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
