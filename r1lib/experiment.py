"""One call that turns a profile into everything a GRPO run needs, for either profile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import load_model_and_tokenizer
from .profiles import Profile
from .rewards import RewardFunc, format_reward, make_accuracy_reward
from .tasks.base import Example, Task
from .tasks.chain import ChainTask
from .tasks.gsm8k import GSM8KTask, load_gsm8k

EVAL_SEED = 12345  # the tiny world's evaluation set; training prompts are drawn disjoint from it


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


def build_experiment(profile: Profile, seed: int = 0) -> Experiment:
    """Load the profile's model and data. The tiny world is generated; GSM8K is loaded."""
    model, tokenizer = load_model_and_tokenizer(profile.model)
    task: Task
    if profile.task == "chain":
        task = ChainTask()
        eval_examples = task.generate(profile.num_eval_prompts, seed=EVAL_SEED)
        train_examples = task.generate(profile.num_train_prompts, seed=seed, exclude=[e.question for e in eval_examples])
    elif profile.task == "gsm8k":
        task = GSM8KTask()
        local = {s: Path(profile.data_dir) / f"{s}.jsonl" for s in ("train", "test")} if profile.data_dir else {}
        train_examples = load_gsm8k("train", local.get("train"), limit=profile.num_train_prompts)
        eval_examples = load_gsm8k("test", local.get("test"), limit=profile.num_eval_prompts)
    else:
        raise ValueError(f"unknown task {profile.task!r}")
    rewards = [make_accuracy_reward(task), format_reward]
    return Experiment(profile, model, tokenizer, task, train_examples, eval_examples, rewards)
