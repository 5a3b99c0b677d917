"""One call that turns a profile into everything a run needs, for either profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import load_model_and_tokenizer
from .profiles import Profile
from .rewards import RewardFunc, format_reward, make_accuracy_reward
from .tasks.base import Example, Task
from .tasks.registry import load_task


@dataclass
class Experiment:
    """A model, its tokenizer, a task with disjoint train/eval examples, and the R1-Zero rewards."""

    profile: Profile
    model: Any
    tokenizer: Any
    task: Task
    train_examples: list[Example]
    eval_examples: list[Example]
    reward_funcs: list[RewardFunc]


def build_experiment(profile: Profile, seed: int = 0, task: str | None = None) -> Experiment:
    """Load the profile's model and its task's data (``task`` overrides the profile's).

    Tiny-world tasks are generated; hub tasks are loaded (from ``profile.data_dir`` when set).
    """
    model, tokenizer = load_model_and_tokenizer(profile.model)
    data = load_task(task or profile.task, profile.num_train_prompts, profile.num_eval_prompts, seed, profile.data_dir)
    rewards = [make_accuracy_reward(data.task), format_reward]
    return Experiment(profile, model, tokenizer, data.task, data.train, data.eval, rewards)
