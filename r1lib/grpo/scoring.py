"""Scoring sampled groups: the one place where reward functions are called during RL.

:func:`score_groups` calls every reward function with TRL's arguments (``prompts``,
``completions``, ``completion_ids`` and the dataset columns), checks what each returns, and packs
the result with the examples and the rollout into a :class:`ScoredGroups`: the object that
travels from sampling to the loss. The trainer and the notebooks use the same function.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
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


def _clean(score: object, name: str) -> tuple[Score, bool]:
    """A score as float or None (abstained), and whether it was a non-finite number."""
    if score is None:
        return None, False
    try:
        value = float(score)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"reward function {name!r} returned {score!r}; scores must be numbers or None") from None
    return (value, False) if math.isfinite(value) else (None, True)


def score_groups(
    examples: Sequence[Example],
    rollout: Rollout,
    prompts: Sequence[object],
    reward_funcs: Sequence[RewardFunc],
    reward_weights: Sequence[float] | None = None,
) -> ScoredGroups:
    """Call every reward function on ``rollout`` and pack the scores into :class:`ScoredGroups`.

    ``prompts`` are the chat messages of each example (one per example; repeated here for its
    ``G`` completions). Each function receives ``prompts``, ``completions`` (texts),
    ``completion_ids`` (token id lists) and the examples' ``question`` and ``answer`` columns, as
    in TRL. A function that returns the wrong number of scores is an error naming it; ``None``
    means "does not apply"; a NaN is treated as ``None`` and warned about when a function returns
    nothing else for a whole batch.
    """
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
        scores = list(func(repeated, rollout.texts, completion_ids=ids, **columns))
        if len(scores) != count:
            raise ValueError(f"reward function {name!r} returned {len(scores)} scores for {count} completions")
        cleaned = [_clean(s, name) for s in scores]
        if count and all(bad for _, bad in cleaned):
            warnings.warn(f"reward function {name!r} returned NaN or inf for all {count} completions", stacklevel=2)
        per_function[name] = [s for s, _ in cleaned]
    if len(per_function) != len(reward_funcs):
        raise ValueError(f"reward functions need distinct names, got {[reward_name(f, i) for i, f in enumerate(reward_funcs)]}")
    total = torch.tensor(combine_rewards(list(per_function.values()), reward_weights), dtype=torch.float32)
    unscorable = [all(s is None for s in row) for row in zip(*per_function.values())]
    if unscorable:
        total[torch.tensor(unscorable, dtype=torch.bool)] = float("nan")  # see group_advantages
    return ScoredGroups(list(examples), rollout, total.to(rollout.completion_ids.device), per_function)
