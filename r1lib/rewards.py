"""Rule-based rewards with TRL's signature: ``f(prompts, completions, **columns) -> list[float | None]``.

Every function here receives arbitrary model output. None of them evaluates it, each one is linear
in the length of the text, and none raises: a completion that breaks a reward gets ``None``
("does not apply"), which the trainer treats like TRL does (ignored when summing rewards).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from .format import TAGS, completion_text, extract_answer, extract_reasoning, is_readable_format, is_strict_format
from .tasks.base import Example, Task, verify
from .tasks.bilingual import FIRST_LANGUAGE, SECOND_LANGUAGE, prompt_language

RewardFunc = Callable[..., list[float | None]]


def never_raises(func: RewardFunc) -> RewardFunc:
    """Wrap a reward so that an exception on one completion yields ``None`` for that completion only."""

    @functools.wraps(func)
    def safe(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
        try:
            return func(prompts, completions, **columns)
        except Exception:  # noqa: BLE001 - a reward must never take training down
            # Retry one completion at a time, so that one bad row costs only its own score.
            prompt_list = list(prompts) if isinstance(prompts, (list, tuple)) else []
            scores: list[float | None] = []
            for i, completion in enumerate(completions):
                row = {k: [v[i]] for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == len(completions)}
                prompt = prompt_list[i] if i < len(prompt_list) else None
                try:
                    scores.extend(func([prompt], [completion], **row))
                except Exception:  # noqa: BLE001
                    scores.append(None)
            return scores

    return safe


def make_accuracy_reward(task: Task, name: str = "accuracy") -> RewardFunc:
    """1.0 when the ``<answer>`` verifies against the ``answer`` (and ``question``) columns with ``task``, else 0.0.

    ``None`` where the check itself failed on that completion.
    """

    @never_raises
    def accuracy(
        prompts: Sequence[Any], completions: Sequence[Any], answer: Sequence[str], question: Sequence[str] | None = None,
        **_: Any,
    ) -> list[float | None]:
        return [None if c is None else float(c) for c in _correctness(task, completions, answer, question)]

    accuracy.__name__ = name
    return accuracy


@never_raises
def format_reward(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
    """1.0 for a strictly well-formed ``[<think>…</think>]<answer>…</answer>`` completion, else 0.0."""
    return [float(is_strict_format(completion_text(c))) for c in completions]


@never_raises
def readable_format_reward(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
    """1.0 for the readable format of multi-stage R1, ``<think>…</think>summary<answer>…</answer>``, else 0.0."""
    return [float(is_readable_format(completion_text(c))) for c in completions]


def scoped_to_task(reward: RewardFunc, task_name: str) -> RewardFunc:
    """``reward`` on the rows whose ``task`` column is ``task_name``, ``None`` (does not apply) elsewhere.

    With prompts of several kinds in one batch (R1's last RL stage mixes reasoning and general
    prompts), each reward scores only its own kind, as TRL allows.
    """

    @functools.wraps(reward)
    def scoped(prompts: Sequence[Any], completions: Sequence[Any], task: Sequence[str] | None = None, **columns: Any):
        if task is None:
            return [None] * len(completions)
        rows = [i for i, name in enumerate(task) if name == task_name]
        scores: list[float | None] = [None] * len(completions)
        if rows:
            picked = {k: [v[i] for i in rows] for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == len(completions)}
            prompt_list = list(prompts) if isinstance(prompts, (list, tuple)) else [None] * len(completions)
            for i, score in zip(rows, reward([prompt_list[i] for i in rows], [completions[i] for i in rows], **picked)):
                scores[i] = score
        return scores

    scoped.__name__ = f"{getattr(reward, '__name__', 'reward')}"
    scoped.task_name = task_name  # type: ignore[attr-defined]  # lets scoring tell "not its task" from "broken"
    return scoped


def combine_rewards(
    per_function: Sequence[Sequence[float | None]], weights: Sequence[float] | None = None
) -> list[float]:
    """Weighted sum over reward functions per completion, skipping ``None`` (as TRL's nansum does).

    Non-finite scores are treated as ``None``. A completion where every function returned ``None``
    gets 0.0.
    """
    if not per_function:
        raise ValueError("need at least one reward function")
    weights = list(weights) if weights is not None else [1.0] * len(per_function)
    if len(weights) != len(per_function):
        raise ValueError(f"{len(weights)} weights for {len(per_function)} reward functions")
    lengths = {len(scores) for scores in per_function}
    if len(lengths) != 1:
        raise ValueError(f"reward functions returned different numbers of scores: {sorted(lengths)}")
    total = [0.0] * lengths.pop()
    for scores, weight in zip(per_function, weights):
        for i, score in enumerate(scores):
            if score is not None and math.isfinite(score):
                total[i] += weight * float(score)
    return total


# ----------------------------------------------------------------------------- format, partial credit


@never_raises
def soft_format_reward(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
    """1.0 for the strict format, 0.5 when an ``<answer>…</answer>`` block is present anywhere, else 0.0.

    A gentler slope than :func:`format_reward` for a model that has not found the format yet.
    """
    scores: list[float | None] = []
    for completion in completions:
        text = completion_text(completion)
        scores.append(1.0 if is_strict_format(text) else 0.5 if extract_answer(text) is not None else 0.0)
    return scores


@never_raises
def tag_count_reward(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
    """0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` that appears exactly once."""
    texts = [completion_text(c) for c in completions]
    return [0.25 * sum(1 for tag in TAGS if text.count(tag) == 1) for text in texts]


# ----------------------------------------------------------------------------- language consistency


# The tiny world's connector words (r1lib.tiny.tokenizer.CONNECTORS_EN/_ES, without their spaces);
# spelled out here so that importing the rewards does not import transformers. A test keeps them in sync.
TINY_TARGET_WORDS = frozenset({"so", "wait"})
TINY_FOREIGN_WORDS = frozenset({"luego", "espera"})


# Runs of letters: \w minus digits and underscore. One character class, so matching is linear.
_WORD = re.compile(r"[^\W\d_]+")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text``, split on every non-letter (digits and ``_`` split too)."""
    return [w.lower() for w in _WORD.findall(text)]


def _reasoning_or_text(completion: Any) -> str:
    """The ``<think>`` block of a completion, or the whole completion when there is none."""
    text = completion_text(completion)
    reasoning = extract_reasoning(text)
    return text if reasoning is None else reasoning


def make_language_consistency_reward(
    target_words: set[str] | frozenset[str],
    foreign_words: set[str] | frozenset[str] | None = None,
    name: str = "language_consistency",
) -> RewardFunc:
    """DeepSeek-R1's language-consistency reward: the share of the reasoning's words in the target language.

    The reasoning is the ``<think>`` block (the whole completion when there is none). With
    ``foreign_words=None`` every word counts and the score is ``|target words| / |words|``; with a
    foreign vocabulary only words of either vocabulary are language words, the rest (numbers,
    names, symbols) are neutral. Reasoning without any language word gets None (does not apply).
    """
    target = frozenset(w.lower() for w in target_words)
    foreign = None if foreign_words is None else frozenset(w.lower() for w in foreign_words)
    if not target:
        raise ValueError("target_words must not be empty")
    if foreign is not None and target & foreign:
        raise ValueError(f"words in both languages: {sorted(target & foreign)}")

    @never_raises
    def language_consistency(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
        scores: list[float | None] = []
        for completion in completions:
            found = words(_reasoning_or_text(completion))
            in_target = sum(1 for w in found if w in target)
            counted = len(found) if foreign is None else in_target + sum(1 for w in found if w in foreign)
            scores.append(in_target / counted if counted else None)
        return scores

    language_consistency.__name__ = name
    return language_consistency


def make_prompt_language_consistency_reward(
    vocabularies: dict[str, set[str] | frozenset[str]],
    language_of: Callable[[Any], str] = prompt_language,
    name: str = "language_consistency",
) -> RewardFunc:
    """The language-consistency reward with the target read from each prompt, as the paper defines it:
    the share of the reasoning's language words that are in the prompt's language.

    ``vocabularies`` maps each language to its words; ``language_of(prompt)`` names a prompt's
    language (a key of ``vocabularies``). Words of no vocabulary are neutral; reasoning without any
    language word gets None. A prompt in an unknown language gets None too (nothing to judge by).
    """
    lowered = {language: frozenset(w.lower() for w in words_) for language, words_ in vocabularies.items()}
    if len(lowered) < 2 or not all(lowered.values()):
        raise ValueError("need at least two languages, each with at least one word")
    every = [w for vocabulary in lowered.values() for w in vocabulary]
    if len(every) != len(set(every)):
        raise ValueError("a word belongs to two languages")
    language_words = frozenset(every)

    @never_raises
    def language_consistency(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
        if prompts is None:  # no prompts to read a language from: every reasoning is judged against the first
            prompts = [None] * len(completions)
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        scores: list[float | None] = []
        for prompt, completion in zip(prompts, completions):
            target = lowered.get(language_of(prompt))
            found = [w for w in words(_reasoning_or_text(completion)) if w in language_words]
            scores.append(sum(1 for w in found if w in target) / len(found) if found and target else None)
        return scores

    language_consistency.__name__ = name
    return language_consistency


# English prompts want so/wait, prompts posed in the second language luego/espera (r1lib.tasks.bilingual).
tiny_language_consistency_reward = make_prompt_language_consistency_reward(
    {FIRST_LANGUAGE: TINY_TARGET_WORDS, SECOND_LANGUAGE: TINY_FOREIGN_WORDS})


def make_script_consistency_reward(name: str = "language_consistency") -> RewardFunc:
    """Language consistency for real models: the share of the reasoning's words written in Latin script.

    A stand-in for the paper's share of target-language words when the target is English and the
    mixing is into other scripts (R1-Zero mixed Chinese into English reasoning). Each non-Latin
    character of a word counts as one word, so that unspaced scripts are not undercounted.
    Reasoning without any letters gets None.
    """

    @never_raises
    def language_consistency(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
        scores: list[float | None] = []
        for completion in completions:
            latin = other = 0
            for word in _WORD.findall(_reasoning_or_text(completion)):
                if word.isascii():
                    latin += 1
                else:
                    other += sum(1 for ch in word if not ch.isascii())
            scores.append(latin / (latin + other) if latin + other else None)
        return scores

    language_consistency.__name__ = name
    return language_consistency


# ----------------------------------------------------------------------------- length-aware rewards


LENGTH_UNITS = ("characters", "tokens")


def _unit(unit: str | None, tokenizer: Any | None) -> str:
    """The length unit of a length-aware reward: tokens by default when a tokenizer is given."""
    unit = unit or ("tokens" if tokenizer is not None else "characters")
    if unit not in LENGTH_UNITS:
        raise ValueError(f"unit must be one of {LENGTH_UNITS}, got {unit!r}")
    return unit


def _lengths(completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None, unit: str, tokenizer: Any | None) -> list[int]:
    """Each completion's length in ``unit``.

    Tokens come from ``completion_ids`` when the caller passes them (trainers do, as TRL does; EOS
    included), so nothing is tokenised twice; otherwise from ``tokenizer``.
    """
    if unit == "characters":
        return [len(completion_text(c)) for c in completions]
    if completion_ids is not None:
        if len(completion_ids) != len(completions):
            raise ValueError(f"{len(completion_ids)} completion_ids for {len(completions)} completions")
        return [len(ids) for ids in completion_ids]
    if tokenizer is None:
        raise ValueError("counting tokens needs completion_ids (trainers pass them) or a tokenizer")
    return [len(_token_ids(completion_text(c), tokenizer)) for c in completions]


def _token_ids(text: str, tokenizer: Any) -> list[int]:
    # verbose=False: a completion longer than the model's context is exactly what a length reward
    # measures, so the tokenizer's warning about it is noise here.
    return list(tokenizer.encode(text, add_special_tokens=False, verbose=False))


def _correctness(
    task: Task, completions: Sequence[Any], answer: Sequence[Any], question: Sequence[Any] | None = None
) -> list[bool | None]:
    """Whether each completion verifies (:func:`r1lib.tasks.base.verify`); None where the check itself failed."""
    questions = question if question is not None else [""] * len(completions)
    verdicts: list[bool | None] = []
    for completion, gold, asked in zip(completions, answer, questions, strict=True):
        try:
            verdicts.append(verify(task, completion_text(completion), Example(str(asked), str(gold))))
        except Exception:  # noqa: BLE001 - one broken check must not void the others' scores
            verdicts.append(None)
    return verdicts


def make_cosine_scaled_reward(
    task: Task,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    max_len: int = 1000,
    tokenizer: Any | None = None,
    name: str = "cosine_scaled",
    unit: str | None = None,
) -> RewardFunc:
    """Correctness scaled by length along a half cosine ("Demystifying Long CoT Reasoning", Yeo et al. 2025).

    With ``t = min(length / max_len, 1)`` and ``c = (1 + cos(pi t)) / 2`` (1 at length 0, 0 at
    ``max_len``): a correct answer gets ``min_value_correct + (max_value_correct - min_value_correct) c``
    (short and right is best), a wrong one gets ``max_value_wrong + (min_value_wrong - max_value_wrong) c``
    (short and wrong is worst: thinking longer is encouraged when it does not help yet).
    Lengths are in ``unit`` (characters, or tokens: the default when a ``tokenizer`` is given).
    """
    unit = _unit(unit, tokenizer)
    if max_len <= 0:
        raise ValueError(f"max_len must be positive, got {max_len}")
    if not min_value_wrong <= max_value_wrong or not min_value_correct <= max_value_correct:
        raise ValueError("need min_value_wrong <= max_value_wrong and min_value_correct <= max_value_correct")

    @never_raises
    def cosine_scaled(
        prompts: Sequence[Any], completions: Sequence[Any], answer: Sequence[Any], question: Sequence[Any] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None, **_: Any,
    ) -> list[float | None]:
        scores: list[float | None] = []
        lengths = _lengths(completions, completion_ids, unit, tokenizer)
        for length, correct in zip(lengths, _correctness(task, completions, answer, question)):
            if correct is None:
                scores.append(None)
                continue
            progress = min(length / max_len, 1.0)
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
            if correct:
                scores.append(min_value_correct + (max_value_correct - min_value_correct) * shape)
            else:
                scores.append(max_value_wrong + (min_value_wrong - max_value_wrong) * shape)
        return scores

    cosine_scaled.__name__ = name
    return cosine_scaled


def _prompt_key(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else repr(prompt)


def make_kimi_length_reward(
    task: Task, tokenizer: Any | None = None, name: str = "kimi_length", unit: str | None = None
) -> RewardFunc:
    """Kimi k1.5's length reward, relative to the other completions of the same prompt in the batch.

    ``lam = 0.5 - (len - min_len) / (max_len - min_len)`` over the group; a correct completion gets
    ``lam`` (the shortest +0.5, the longest -0.5), a wrong one ``min(0, lam)`` (never rewarded for
    being short). A group whose completions all have one length gets 0.0. Lengths are in ``unit``
    (characters, or tokens: the default when a ``tokenizer`` is given).
    """
    unit = _unit(unit, tokenizer)

    @never_raises
    def kimi_length(
        prompts: Sequence[Any], completions: Sequence[Any], answer: Sequence[Any], question: Sequence[Any] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None, **_: Any,
    ) -> list[float | None]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        lengths = _lengths(completions, completion_ids, unit, tokenizer)
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(_prompt_key(prompt), []).append(i)
        correctness = _correctness(task, completions, answer, question)
        scores: list[float | None] = [None] * len(completions)
        for members in groups.values():
            shortest, longest = min(lengths[i] for i in members), max(lengths[i] for i in members)
            for i in members:
                if correctness[i] is None:
                    continue
                lam = 0.0 if longest == shortest else 0.5 - (lengths[i] - shortest) / (longest - shortest)
                scores[i] = lam if correctness[i] else min(0.0, lam)
        return scores

    kimi_length.__name__ = name
    return kimi_length


def make_soft_overlong_punishment(
    max_completion_length: int,
    soft_cache_length: int,
    tokenizer: Any | None = None,
    name: str = "soft_overlong_punishment",
    unit: str | None = None,
) -> RewardFunc:
    """DAPO's soft overlong punishment: 0 up to ``max - cache``, then linearly down to -1 at ``max``.

    Completions longer than ``max_completion_length`` get -1. Truncated completions are then
    discouraged smoothly instead of by a cliff. Lengths are in ``unit`` (characters, or tokens: the
    default when a ``tokenizer`` is given); a trainer's ``max_completion_length`` counts tokens.
    """
    unit = _unit(unit, tokenizer)
    if not 0 < soft_cache_length <= max_completion_length:
        raise ValueError(
            f"need 0 < soft_cache_length <= max_completion_length, got {soft_cache_length}, {max_completion_length}"
        )
    free = max_completion_length - soft_cache_length

    @never_raises
    def soft_overlong_punishment(
        prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None,
        **_: Any,
    ) -> list[float | None]:
        scores: list[float | None] = []
        for length in _lengths(completions, completion_ids, unit, tokenizer):
            if length <= free:
                scores.append(0.0)
            elif length <= max_completion_length:
                scores.append((free - length) / soft_cache_length)
            else:
                scores.append(-1.0)
        return scores

    soft_overlong_punishment.__name__ = name
    return soft_overlong_punishment


def make_repetition_penalty(
    ngram_size: int = 3, max_penalty: float = -1.0, tokenizer: Any | None = None, name: str = "repetition_penalty"
) -> RewardFunc:
    """``max_penalty`` times the share of repeated n-grams: ``(1 - distinct / total) * max_penalty``.

    N-grams are over whitespace-separated, lower-cased words, or over token ids when a ``tokenizer``
    is given (the ``completion_ids`` a trainer passes are used as they are). Text with fewer than
    ``ngram_size`` units gets 0.0. Scores lie in ``[max_penalty, 0]``.
    """
    if ngram_size < 1:
        raise ValueError(f"ngram_size must be >= 1, got {ngram_size}")
    if max_penalty > 0:
        raise ValueError(f"max_penalty must be <= 0 (it is a penalty), got {max_penalty}")

    @never_raises
    def repetition_penalty(
        prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None,
        **_: Any,
    ) -> list[float | None]:
        scores: list[float | None] = []
        for i, completion in enumerate(completions):
            if tokenizer is None:
                units = completion_text(completion).lower().split()
            else:
                units = list(completion_ids[i]) if completion_ids is not None else _token_ids(completion_text(completion), tokenizer)
            total = len(units) - ngram_size + 1
            if total <= 0:
                scores.append(0.0)
                continue
            distinct = len({tuple(units[i : i + ngram_size]) for i in range(total)})
            scores.append((1.0 - distinct / total) * max_penalty)
        return scores

    repetition_penalty.__name__ = name
    return repetition_penalty
