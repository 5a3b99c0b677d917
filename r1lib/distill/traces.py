"""Distillation traces: the teacher answers training prompts and only verified answers are kept.

This is how DeepSeek distilled R1 into Qwen and Llama students (about 800k samples, then plain SFT
with :class:`r1lib.sft.SFTTrainer`). The sampling and verifying are the pipeline's rejection sampler
(:func:`r1lib.rejection.rejection_sample`); what is added here is the teacher's cost, so that a
method that uses traces can be charged for them (:class:`r1lib.compute.ComputeLedger`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..records import PromptCompletion
from ..rejection import rejection_sample
from ..tasks.base import Example, Task
from ..trainer import parameter_count


@dataclass
class Traces:
    """Verified teacher samples, and what producing them cost."""

    examples: list[PromptCompletion]
    counts: dict[str, int]
    teacher_flops: float
    seconds: float


def generate_traces(
    teacher, tokenizer, task: Task, prompts: Sequence[Example], samples_per_prompt: int = 4, temperature: float = 1.0,
    max_new_tokens: int = 64, seed: int = 0,
) -> Traces:
    """The teacher's verified answers to ``prompts`` (at most one per prompt), via the pipeline's
    rejection sampler, with the teacher FLOPs the sampling cost."""
    began = time.time()
    kept, counts, tokens = rejection_sample(teacher, tokenizer, task, prompts, samples_per_prompt, temperature,
                                            max_new_tokens, seed, filters=("correct",))
    return Traces(kept, counts, 2.0 * parameter_count(teacher) * tokens, time.time() - began)
