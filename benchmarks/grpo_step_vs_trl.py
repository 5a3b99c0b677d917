"""One GRPO step (rollout + update): r1lib's GRPOTrainer vs TRL's GRPOTrainer, same process.

    python benchmarks/grpo_step_vs_trl.py [--model data/tiny-base] [--steps 6]

Both train the same tiny model with 8 prompts x 8 completions per step, at most 40 new tokens,
temperature 1, beta 0 and the dr_grpo loss, with the same two rewards. Prints the median seconds
per step of each, their ratio r1lib / TRL (the goal is <= 0.5 on the CPU) and peak memory.
Peak memory is resident memory of this one process, reset before each phase: a phase that runs
after the other may include memory the other left allocated.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

import torch

from _common import ROOT, peak_memory_mb, reset_peak_memory
from r1lib.grpo import GRPOConfig, GRPOTrainer
from r1lib.models import ModelSpec, load_model_and_tokenizer
from r1lib.rewards import format_reward, make_accuracy_reward
from r1lib.tasks import ChainTask

PROMPTS, GENERATIONS, MAX_NEW = 8, 8, 40


def time_r1lib(model_path: str, steps: int, examples, task) -> list[float]:
    model, tokenizer = load_model_and_tokenizer(ModelSpec(model_path))
    config = GRPOConfig(num_generations=GENERATIONS, per_device_train_batch_size=PROMPTS * GENERATIONS,
                        max_completion_length=MAX_NEW, max_steps=steps, beta=0.0, loss_type="dr_grpo",
                        learning_rate=1e-5, save_steps=10_000, eval_steps=10_000, log_completions=0)
    with tempfile.TemporaryDirectory() as out:
        trainer = GRPOTrainer(model, tokenizer, task, [make_accuracy_reward(task), format_reward], examples,
                              config, out, progress=False)
        trainer.generator.manual_seed(0)
        times = []
        for _ in range(steps):
            began = time.perf_counter()
            trainer.step()
            times.append(time.perf_counter() - began)
    return times


def time_trl(model_path: str, steps: int, examples, task) -> list[float]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer as TRLTrainer

    model, tokenizer = load_model_and_tokenizer(ModelSpec(model_path))
    dataset = Dataset.from_list([{"prompt": task.prompt(e), "answer": e.answer} for e in examples])
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = TRLConfig(output_dir=out, use_cpu=not torch.cuda.is_available(), report_to="none", max_steps=steps,
                         per_device_train_batch_size=PROMPTS * GENERATIONS, num_generations=GENERATIONS,
                         max_completion_length=MAX_NEW, temperature=1.0, beta=0.0, loss_type="dr_grpo",
                         learning_rate=1e-5, logging_steps=10_000, save_strategy="no", disable_tqdm=True,
                         dataloader_num_workers=0, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = TRLTrainer(model=model, processing_class=tokenizer, args=args, train_dataset=dataset,
                                 reward_funcs=[make_accuracy_reward(task), format_reward], callbacks=[Stamp()])
            trainer.train()
    return [end - begin for begin, end in zip(stamps[0::2], stamps[1::2])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "data" / "tiny-base"))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    task = ChainTask()
    examples = task.generate(PROMPTS * (args.steps + 2), seed=5)
    times: dict[str, list[float]] = {"TRL": [], "r1lib": []}
    peaks: dict[str, float] = {}
    # Alternate the two a few times so that a noisy machine's slow spells land on both sides.
    for _ in range(args.rounds):
        for name, timer in (("TRL", time_trl), ("r1lib", time_r1lib)):
            reset_peak_memory()
            times[name] += timer(args.model, args.steps + 1, examples, task)[1:]  # the first step warms up
            peaks[name] = max(peaks.get(name, 0.0), peak_memory_mb())
    results = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in results.items():
        print(f"{name:>6}: {seconds:.3f} s per step (median of {len(times[name])}), peak memory {peaks[name]:.0f} MB")
    print(f"torch threads {torch.get_num_threads()}, {PROMPTS} prompts x {GENERATIONS} completions, max {MAX_NEW} new tokens")
    print(f"ratio r1lib / TRL (seconds per step): {results['r1lib'] / results['TRL']:.2f}  (goal <= 0.5)")


if __name__ == "__main__":
    main()
