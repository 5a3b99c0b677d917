"""Small runs on random tiny models, used by the kill-and-resume tests as subprocesses.

    python tests/helpers/grpo_run.py KIND OUTPUT_DIR MAX_STEPS

KIND is ``grpo``, ``reward_model`` or ``pretrain``; each resumes from OUTPUT_DIR when it can.
With ``SLOW_STEPS=seconds`` in the environment each step is followed by a pause, so that a test
can kill the run in its middle; with ``SLOW_REWARD=seconds`` (grpo only) the pause is inside each
step, in its reward, so that a signal lands mid-step.
"""

import os
import sys
import time

import torch

from r1lib.configs import GRPOConfig, RewardModelConfig
from r1lib.grpo import GRPOTrainer
from r1lib.reward_model import RewardModelTrainer
from r1lib.rewards import format_reward, make_accuracy_reward
from r1lib.tasks import ChainTask
from r1lib.tasks.general import GeneralTask
from r1lib.tiny.model import TinyModelConfig, build_tiny_model
from r1lib.tiny.pretrain import PretrainConfig, PretrainTrainer
from r1lib.tiny.reward_model import build_tiny_reward_model
from r1lib.tiny.tokenizer import build_tiny_tokenizer
from r1lib.trainer import TrainerCallback

SMALL = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)


def length_reward(prompts, completions, **columns):
    """Gives every group reward spread, so that each step really changes the weights."""
    return [len(c) / 10 for c in completions]


def make_trainer(output_dir: str, max_steps: int, **overrides) -> GRPOTrainer:
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, SMALL, seed=0)
    task = ChainTask()
    settings = dict(
        num_generations=4, per_device_train_batch_size=8, max_steps=max_steps, save_steps=2, eval_steps=1000,
        max_completion_length=8, learning_rate=1e-2, beta=0.05, log_completions=2,
        mask_truncated_completions=False,  # a random model never stops; keep its tokens in the loss
    )
    settings.update(overrides)
    return GRPOTrainer(
        model, tokenizer, task, [make_accuracy_reward(task), format_reward, length_reward],
        task.generate(40, seed=0), GRPOConfig(**settings), output_dir, progress=False,
    )


def make_reward_model_trainer(output_dir: str, max_steps: int) -> RewardModelTrainer:
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_reward_model(tokenizer, seed=0, config=SMALL)
    pairs = GeneralTask().preference_pairs(40, seed=0)
    config = RewardModelConfig(max_steps=max_steps, per_device_train_batch_size=8, save_steps=2, warmup_steps=2,
                               learning_rate=3e-3)
    return RewardModelTrainer(model, tokenizer, pairs, config, output_dir, progress=False)


def make_pretrain_trainer(output_dir: str, max_steps: int) -> PretrainTrainer:
    tokenizer = build_tiny_tokenizer()
    config = PretrainConfig(max_steps=max_steps, per_device_train_batch_size=8, warmup_steps=2, save_steps=2,
                            eval_steps=10_000, eval_examples=4, model=SMALL)
    return PretrainTrainer(build_tiny_model(tokenizer, SMALL, seed=0), tokenizer, config, output_dir, progress=False)


class StartSignal(TrainerCallback):
    """Prints a line when training begins, so that a test knows when to send its signals."""

    def on_train_begin(self, trainer) -> None:
        print("training", flush=True)


MAKERS = {"grpo": make_trainer, "reward_model": make_reward_model_trainer, "pretrain": make_pretrain_trainer}


if __name__ == "__main__":
    torch.set_num_threads(1)
    kind, output_dir, max_steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    trainer = MAKERS[kind](output_dir, max_steps)
    pause = float(os.environ.get("SLOW_STEPS", "0"))
    if pause:
        trainer.add_callback(lambda record: time.sleep(pause))
    reward_pause = float(os.environ.get("SLOW_REWARD", "0"))
    if reward_pause:
        real_length_reward = trainer.reward_funcs[-1]

        def length_reward(prompts, completions, **columns):  # the same name, so the same metric keys
            time.sleep(reward_pause)
            return real_length_reward(prompts, completions, **columns)

        trainer.reward_funcs[-1] = length_reward
        trainer.add_callback(StartSignal())
    trainer.train(resume_from=True)
