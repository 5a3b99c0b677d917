"""A small GRPO run on a random tiny model, used by the kill-and-resume test as a subprocess.

    python tests/helpers/grpo_run.py OUTPUT_DIR MAX_STEPS
"""

import sys

import torch

from r1lib.grpo import GRPOConfig, GRPOTrainer
from r1lib.rewards import format_reward, make_accuracy_reward
from r1lib.tasks import ChainTask
from r1lib.tiny.model import TinyModelConfig, build_tiny_model
from r1lib.tiny.tokenizer import build_tiny_tokenizer


def length_reward(prompts, completions, **columns):
    """Gives every group reward spread, so that each step really changes the weights."""
    return [len(c) / 10 for c in completions]


def make_trainer(output_dir: str, max_steps: int) -> GRPOTrainer:
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), seed=0)
    task = ChainTask()
    config = GRPOConfig(
        num_generations=4, per_device_train_batch_size=8, max_steps=max_steps, save_steps=2, eval_steps=1000,
        max_completion_length=8, learning_rate=1e-2, beta=0.05, log_completions=2,
        mask_truncated_completions=False,  # a random model never stops; keep its tokens in the loss
    )
    return GRPOTrainer(
        model, tokenizer, task, [make_accuracy_reward(task), format_reward, length_reward],
        task.generate(40, seed=0), config, output_dir, progress=False,
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    make_trainer(sys.argv[1], int(sys.argv[2])).train(resume_from=True)
