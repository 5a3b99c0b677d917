"""Scoring sampled groups: the one place where reward functions are called during RL.

:func:`score_groups` calls every reward function with TRL's arguments (``prompts``,
``completions``, ``completion_ids`` and the dataset columns), checks what each returns, and packs
the result with the examples and the rollout into a :class:`ScoredGroups`: the object that
travels from sampling to the loss. The trainer and the notebooks use the same function.
"""

from __future__ import annotations

import math
import reprlib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from ..rewards import RewardFunc, combine_rewards
from ..rollout import Rollout, concat_rollouts
from ..tasks.base import Example, example_columns
from .loss import nanstd

Score = float | None


def reward_name(func: RewardFunc, index: int = 0) -> str:
    """The name a reward function is logged under (``rewards/<name>/mean``)."""
    return getattr(func, "__name__", None) or f"{type(func).__name__}_{index}"


def completion_id_lists(rollout: Rollout) -> list[list[int]]:
    """Each completion's generated token ids (EOS included, padding excluded), as TRL passes them."""
    lengths = rollout.completion_lengths.tolist()
    return [ids[:n] for ids, n in zip(rollout.completion_ids.tolist(), lengths)]


@dataclass
class ScoredGroups:
    """``num_generations`` completions for each of some prompts, with everything the rewards said.

    Row ``i`` of ``rollout``, ``rewards`` and each reward column belongs to ``examples[i // G]``.
    ``rewards`` is the weighted total per completion, NaN where no reward function could score it.
    """

    examples: list[Example]
    rollout: Rollout
    rewards: torch.Tensor  # (B,)
    reward_columns: dict[str, list[Score]]

    def __post_init__(self) -> None:
        rows = len(self.examples) * self.num_generations
        sizes = {len(self.rollout.texts), self.rewards.numel(), *(len(c) for c in self.reward_columns.values())}
        if sizes != {rows}:
            raise ValueError(f"{len(self.examples)} groups of {self.num_generations} need {rows} rows everywhere, got {sorted(sizes)}")

    @property
    def num_generations(self) -> int:
        return self.rollout.num_generations

    @property
    def num_groups(self) -> int:
        return len(self.examples)

    @property
    def completions(self) -> list[str]:
        return self.rollout.texts

    @property
    def completion_ids(self) -> list[list[int]]:
        return completion_id_lists(self.rollout)

    def group_std(self) -> torch.Tensor:
        """The reward spread of each group (num_groups,); 0 means no learning signal."""
        return nanstd(self.rewards.view(-1, self.num_generations), dim=1)

    def groups_with_spread(self) -> list[int]:
        """Indices of the groups whose rewards differ (DAPO's dynamic sampling keeps only these)."""
        return [i for i, s in enumerate(self.group_std().tolist()) if s > 1e-6]

    def select(self, groups: Sequence[int]) -> ScoredGroups:
        """The given groups, in that order."""
        g = self.num_generations
        rows = [r for i in groups for r in range(i * g, (i + 1) * g)]
        index = torch.tensor(rows, dtype=torch.long, device=self.rewards.device)
        return ScoredGroups(
            [self.examples[i] for i in groups],
            self.rollout.select_rows(rows),
            self.rewards[index],
            {name: [scores[r] for r in rows] for name, scores in self.reward_columns.items()},
        )

    @staticmethod
    def concat(parts: Sequence[ScoredGroups], pad_id: int) -> ScoredGroups:
        """The groups of all ``parts`` (same reward functions, same G), one after the other."""
        parts = [p for p in parts if p.num_groups]
        if not parts:
            raise ValueError("nothing to concatenate")
        names = list(parts[0].reward_columns)
        return ScoredGroups(
            [e for p in parts for e in p.examples],
            concat_rollouts([p.rollout for p in parts], pad_id),
            torch.cat([p.rewards for p in parts]),
            {n: [s for p in parts for s in p.reward_columns[n]] for n in names},
        )

    def metrics(self) -> dict[str, float]:
        """TRL's reward metrics: ``reward`` and ``reward_std`` (over the whole batch),
        ``frac_reward_zero_std`` and ``rewards/<name>/mean`` (NaN when a function scored nothing)."""
        metrics = {
            "reward": float(self.rewards.nanmean()),
            "reward_std": float(nanstd(self.rewards)),
            "frac_reward_zero_std": float((self.group_std() < 1e-6).float().mean()),
        }
        for name, scores in self.reward_columns.items():
            valid = [s for s in scores if s is not None]
            metrics[f"rewards/{name}/mean"] = sum(valid) / len(valid) if valid else math.nan
        return metrics


def as_reward_list(reward_funcs: RewardFunc | Sequence[RewardFunc]) -> list[RewardFunc]:
    """``reward_funcs`` as a list: one function alone is accepted too (a common slip, and TRL allows it)."""
    if callable(reward_funcs):
        return [reward_funcs]
    return list(reward_funcs)


def _score_list(result: object, name: str, count: int) -> list[object]:
    """What a reward function returned, as a list; anything but a sequence of scores is an error naming it."""
    # A string is iterable and a dict iterates its keys: both would be read as "scores" without this check.
    if result is None or isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable):
        raise TypeError(
            f"reward function {name!r} returned {reprlib.repr(result)}; it must return a list of {count} scores "
            "(one float or None per completion)"
        )
    scores = list(result)
    if len(scores) != count:
        raise ValueError(f"reward function {name!r} returned {len(scores)} scores for {count} completions")
    return scores


def _clean(score: object, name: str, index: int) -> Score:
    """A score as a float, or None when the function abstained (``None``, or NaN as in TRL).

    An infinite score is an error: it is a bug in the reward, and dropping it would hide the bug
    while the completion silently loses its reward.
    """
    if score is None:
        return None
    try:
        value = float(score)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"reward function {name!r} returned {score!r}; scores must be numbers or None") from None
    if math.isnan(value):
        return None  # TRL stores None as NaN and skips both alike (nansum)
    if math.isinf(value):
        raise ValueError(
            f"reward function {name!r} returned {value} for completion {index}; scores must be finite "
            "(return None where the reward does not apply)"
        )
    return value


def _warn_if_abstained(name: str, scores: list[Score], warned: set[str] | None) -> None:
    """Warn when a function scored none of a batch's completions, once per name in ``warned``."""
    if not scores or any(s is not None for s in scores) or (warned is not None and name in warned):
        return
    if warned is not None:
        warned.add(name)
    warnings.warn(
        f"reward function {name!r} abstained (returned None or NaN) on all {len(scores)} completions of a batch, "
        "so it adds nothing to their rewards. Fine if it only applies to examples this batch lacks; otherwise "
        "it is broken. (Warned once per run.)",
        stacklevel=3,
    )


def score_groups(
    examples: Sequence[Example],
    rollout: Rollout,
    prompts: Sequence[object],
    reward_funcs: RewardFunc | Sequence[RewardFunc],
    reward_weights: Sequence[float] | None = None,
    warned: set[str] | None = None,
) -> ScoredGroups:
    """Call every reward function on ``rollout`` and pack the scores into :class:`ScoredGroups`.

    ``prompts`` are the chat messages of each example (one per example; repeated here for its
    ``G`` completions). Each function receives ``prompts``, ``completions`` (texts),
    ``completion_ids`` (token id lists) and the examples' ``question`` and ``answer`` columns, as
    in TRL, and must return one score per completion.

    ``None`` means "does not apply" (abstain); NaN is read as ``None``, as in TRL. A function that
    abstains on every completion of the batch is warned about, once per name in ``warned`` when
    given (a trainer passes one set for its whole run). Errors, each naming the function: a return
    value that is not a list of scores (``TypeError``), the wrong number of scores or an infinite
    score (``ValueError``, with the completion's index).
    """
    reward_funcs = as_reward_list(reward_funcs)
    g = rollout.num_generations
    if len(prompts) != len(examples):
        raise ValueError(f"{len(prompts)} prompts for {len(examples)} examples")
    count = len(rollout.texts)
    if count != len(examples) * g:
        raise ValueError(f"the rollout has {count} completions; {len(examples)} examples x {g} need {len(examples) * g}")
    repeated = [p for p in prompts for _ in range(g)]
    columns = {k: [v for v in values for _ in range(g)] for k, values in example_columns(list(examples)).items()}
    ids = completion_id_lists(rollout)
    per_function: dict[str, list[Score]] = {}
    for index, func in enumerate(reward_funcs):
        name = reward_name(func, index)
        scores = _score_list(func(repeated, rollout.texts, completion_ids=ids, **columns), name, count)
        per_function[name] = [_clean(s, name, i) for i, s in enumerate(scores)]
        scope = getattr(func, "task_name", None)  # a reward scoped by scoped_to_task abstains on other tasks' rows
        if scope is None or scope in columns.get("task", ()):
            _warn_if_abstained(name, per_function[name], warned)
    if len(per_function) != len(reward_funcs):
        raise ValueError(f"reward functions need distinct names, got {[reward_name(f, i) for i, f in enumerate(reward_funcs)]}")
    total = torch.tensor(combine_rewards(list(per_function.values()), reward_weights), dtype=torch.float32)
    unscorable = [all(s is None for s in row) for row in zip(*per_function.values())]
    if unscorable:
        total[torch.tensor(unscorable, dtype=torch.bool)] = float("nan")  # see group_advantages
    return ScoredGroups(list(examples), rollout, total.to(rollout.completion_ids.device), per_function)
