"""Held-out preference accuracy of a tiny-world reward model trained on the general task.

    python benchmarks/reward_model_accuracy.py [--steps 500] [--held-out 16] [--backbone data/tiny-base]

Requests (e.g. ``greet Ana``) are split into a held-out set and the rest; the reward model trains
with the Bradley-Terry loss on preference pairs of the rest only and is then scored on pairs of the
held-out requests, each with every kind of rejected reply. Prints the untrained and trained
accuracy, overall and per rejection kind, and the training time. Runs on one CPU thread.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from r1lib.reward_model import (
    RewardModel,
    RewardModelConfig,
    build_tiny_reward_model,
    preference_accuracy,
    train_reward_model,
)
from r1lib.tasks.general import REJECTION_KINDS, GeneralTask
from r1lib.tiny.model import TinyModelConfig
from r1lib.tiny.tokenizer import build_tiny_tokenizer


def accuracy_by_kind(scorer: RewardModel, pairs: list) -> dict[str, float]:
    """Overall accuracy and one entry per rejection kind."""
    result = {"all": preference_accuracy(scorer, pairs)}
    for kind in REJECTION_KINDS:
        result[kind] = preference_accuracy(scorer, [p for p in pairs if p.kind == kind])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--held-out", type=int, default=16, help="number of held-out requests (of 60)")
    parser.add_argument("--repeats", type=int, default=6, help="pairs per held-out request (kinds cycle)")
    parser.add_argument("--hidden-size", type=int, default=64, help="ignored with --backbone")
    parser.add_argument("--layers", type=int, default=2, help="ignored with --backbone")
    parser.add_argument("--backbone", default=None, help="a saved tiny causal LM to start from (e.g. data/tiny-base)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    tokenizer = build_tiny_tokenizer()
    task = GeneralTask()
    held = random.Random(args.seed).sample(task.all_examples(), args.held_out)
    held_questions = {e.question for e in held}
    train_pairs = task.preference_pairs(max(2000, args.steps * args.batch_size), seed=args.seed, exclude=held_questions)
    test_pairs = task.pairs_for(held * args.repeats, seed=args.seed + 1)

    shape = TinyModelConfig(
        hidden_size=args.hidden_size, num_layers=args.layers, num_heads=4, intermediate_size=2 * args.hidden_size
    )
    model = build_tiny_reward_model(tokenizer, seed=args.seed, config=shape, backbone=args.backbone)
    scorer = RewardModel(model, tokenizer)
    before = accuracy_by_kind(scorer, test_pairs)
    config = RewardModelConfig(
        max_steps=args.steps, per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
        seed=args.seed
    )
    start = time.perf_counter()
    history = train_reward_model(model, tokenizer, train_pairs, config)
    seconds = time.perf_counter() - start
    after = accuracy_by_kind(scorer, test_pairs)

    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params:,} parameters, {args.steps} steps x {args.batch_size} pairs in {seconds:.1f} s")
    print(f"final training loss {history[-1]['loss']:.3f}")
    print(f"{len(held)} held-out requests, {len(test_pairs)} held-out pairs")
    print(f"{'rejection':<14}{'untrained':>10}{'trained':>10}")
    for kind in before:
        print(f"{kind:<14}{before[kind]:>10.3f}{after[kind]:>10.3f}")


if __name__ == "__main__":
    main()
