"""Does DAPO's dynamic sampling reach a target pass@1 in fewer optimizer steps? (tiny world, CPU)

    python benchmarks/dynamic_sampling.py [--steps 100] [--target 0.75]

Runs the cpu profile's R1-Zero GRPO twice from the shipped base, with dynamic sampling off and on,
evaluating held-out pass@1 every ``--eval-every`` steps. Prints, for each, the first step at which
pass@1 reached ``--target``, the rollouts it took to get there, and the wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import ROOT  # noqa: F401  (puts the repository on the path when run from anywhere)
from r1lib.experiment import build_experiment
from r1lib.grpo import GRPOTrainer
from r1lib.profiles import get_profile, with_overrides


def run(dynamic: bool, steps: int, eval_every: int, eval_examples: int):
    profile = with_overrides(get_profile("cpu"), dynamic_sampling=dynamic, max_steps=steps, eval_steps=eval_every,
                             save_steps=10_000, log_completions=0)
    exp = build_experiment(profile, seed=0)
    with tempfile.TemporaryDirectory() as out:
        trainer = GRPOTrainer(exp.model, exp.tokenizer, exp.task, exp.reward_funcs, exp.train_examples, profile.grpo,
                              out, eval_examples=exp.eval_examples[:eval_examples], progress=False)
        began = time.time()
        history = trainer.train()
    return history, time.time() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--eval-examples", type=int, default=256)
    parser.add_argument("--target", type=float, default=0.75)
    args = parser.parse_args()
    for dynamic in (False, True):
        history, seconds = run(dynamic, args.steps, args.eval_every, args.eval_examples)
        evals = [(m["step"], m["eval/pass@1"]) for m in history if "eval/pass@1" in m]
        reached = next((step for step, value in evals if value >= args.target), None)
        groups = sum(m.get("dynamic_sampling/extra_groups", 0) for m in history if reached is None or m["step"] <= reached)
        print(f"dynamic_sampling={dynamic!s:5}: pass@1 curve " + " ".join(f"{s}:{v:.2f}" for s, v in evals))
        print(f"    first step with pass@1 >= {args.target}: {reached}  (extra refill groups until then: {groups}),"
              f" best {max(v for _, v in evals):.3f}, {seconds:.0f}s for {args.steps} steps")


if __name__ == "__main__":
    main()
