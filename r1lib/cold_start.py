"""Cold-start data for multi-stage R1: a few readable long chains of thought.

DeepSeek-R1 started its second model from "thousands" of long chain-of-thought examples in one
readable format, ``|special_token|<reasoning_process>|special_token|<summary>``, collected with
few-shot prompting and from R1-Zero's own outputs, then cleaned up by human annotators. The tiny
world does the same with rules:

1. sample R1-Zero's final policy on training prompts and keep the samples that verify;
2. rewrite each into one language, the prompt's (``r1lib.tasks.bilingual``): the connectors of the
   other language become the prompt's;
3. add a short summary for the reader between the reasoning and the answer:
   ``<think>3+5+9 so 8+9 so 7</think>3+5+9 = 7.<answer>7</answer>``.

For datasets with written solutions (GSM8K), :func:`reference_cold_start` builds the same format
from the solutions instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .records import PromptCompletion
from .format import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, extract_answer, extract_reasoning
from .rejection import sample_groups
from .tasks.base import Example, Task, verify
from .tasks.bilingual import FIRST_LANGUAGE, SECOND_LANGUAGE, example_language

# The tiny world's connector words (r1lib.tiny.tokenizer), translated into each language.
TRANSLATIONS = {
    FIRST_LANGUAGE: {"luego": "so", "espera": "wait"},
    SECOND_LANGUAGE: {"so": "luego", "wait": "espera"},
}
_WORD = re.compile(r"[^\W\d_]+")


def single_language(text: str, translation: dict[str, str] = TRANSLATIONS[FIRST_LANGUAGE]) -> str:
    """``text`` with every word of ``translation`` replaced by its translation (by default, the
    second language's connectors by the first's)."""
    return _WORD.sub(lambda m: translation.get(m.group(0).lower(), m.group(0)), text)


def default_summary(example: Example, answer: str) -> str:
    """A one-line summary for the reader: the problem and its answer (``3+5+9 = 7.``)."""
    return f"{example.question} = {answer}." if len(example.question) <= 60 else f"The answer is {answer}."


def readable(reasoning: str, summary: str, answer: str) -> str:
    """Assemble the readable format: ``<think>reasoning</think>summary<answer>answer</answer>``."""
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{summary}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


def rewrite_readable(
    completion: str, example: Example, task: Task,
    summarise: Callable[[Example, str], str] = default_summary,
) -> str | None:
    """R1-Zero's completion in the readable format and in the language ``example`` is posed in, or
    None when it does not verify or does not reason."""
    reasoning, answer = extract_reasoning(completion), extract_answer(completion)
    if reasoning is None or not reasoning.strip() or answer is None or not verify(task, completion, example):
        return None
    translation = TRANSLATIONS[example_language(example)]
    return readable(single_language(reasoning, translation), summarise(example, answer), answer)


def build_cold_start(
    model, tokenizer, task: Task, examples: Sequence[Example], samples_per_prompt: int = 4, temperature: float = 1.0,
    max_new_tokens: int = 64, seed: int = 0, max_examples: int | None = None, batch_prompts: int = 64,
    summarise: Callable[[Example, str], str] = default_summary,
) -> list[PromptCompletion]:
    """Sample ``model`` on ``examples`` and keep at most one rewritten, verified sample per prompt.

    Stops once ``max_examples`` are collected (None: all that pass). The result is deterministic for
    a given ``seed``.
    """
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be None (all) or >= 1, got {max_examples}")
    collected: list[PromptCompletion] = []
    groups = sample_groups(model, tokenizer, [task.prompt(e) for e in examples], samples_per_prompt, max_new_tokens,
                           temperature, seed, batch_prompts)
    for example, group in zip(examples, groups):
        rewritten = (rewrite_readable(text, example, task, summarise) for text in group.texts)
        first = next((r for r in rewritten if r is not None), None)
        if first is not None:
            collected.append(PromptCompletion(group.prompt, first))
        if max_examples is not None and len(collected) >= max_examples:
            break  # the batches after this one are never sampled
    return collected


def reference_cold_start(
    task: Task, examples: Sequence[Example], solution_key: str = "solution",
    summarise: Callable[[Example, str], str] = default_summary,
) -> list[PromptCompletion]:
    """Cold-start examples from written solutions (``example.info[solution_key]``, e.g. GSM8K's): the
    solution without its ``#### answer`` line as the reasoning, then a summary and the answer."""
    collected = []
    for example in examples:
        solution = str(example.info.get(solution_key, "")).split("####")[0].strip()
        if solution:
            completion = readable(solution, summarise(example, example.answer), example.answer)
            collected.append(PromptCompletion(task.prompt(example), completion))
    return collected
