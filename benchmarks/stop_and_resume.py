"""Reliability check: stop a training run many times at random moments, with real signals, resume it
each time, and compare the end with a run that was never stopped.

    python benchmarks/stop_and_resume.py [--kind grpo|reward_model|pretrain] [--stops 30] [--signal kill|int|int2]

``kill`` is SIGKILL (a crash, an out-of-memory kill, a closed laptop), ``int`` one SIGINT (Ctrl-C, a
notebook's stop button), ``int2`` two SIGINTs 20 ms apart (the impatient second Ctrl-C, which lands
while the first one saves). Each stop lands at a random moment: mid-step, during a save, during
start-up or resume. After every stop the same command runs again and continues the run.

It prints how many stops landed, how many checkpoints were found damaged (none should be), and
whether the final ``metrics.jsonl`` and weights equal the reference run's bit for bit. This is not
a unit test (it takes minutes); the test suite has one of each kind.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "tests" / "helpers" / "grpo_run.py"
SIGNALS = {"kill": [signal.SIGKILL], "int": [signal.SIGINT], "int2": [signal.SIGINT, signal.SIGINT]}


def command(kind: str, run_dir: Path, steps: int) -> list[str]:
    return [sys.executable, str(HELPER), kind, str(run_dir), str(steps)]


def environment(slow: float) -> dict[str, str]:
    # SLOW_REWARD pauses inside each GRPO step (so that signals land mid-step), SLOW_STEPS after each logged step
    return {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_REWARD": str(slow), "SLOW_STEPS": str(slow),
            "OMP_NUM_THREADS": "1"}


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "step_time"} for line in lines]


def damaged(run_dir: Path) -> list[str]:
    from r1lib.checkpoint import checkpoint_problem

    folder = run_dir / "checkpoints"
    return [p.name for p in folder.glob("step-*") if checkpoint_problem(p)] if folder.is_dir() else []


def weights(run_dir: Path, steps: int) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "checkpoints" / f"step-{steps:06d}" / "model.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", default="grpo", choices=["grpo", "reward_model", "pretrain"])
    parser.add_argument("--stops", type=int, default=30)
    parser.add_argument("--signal", default="kill", choices=sorted(SIGNALS))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="stop_and_resume-"))
    reference, stopped = work / "reference", work / "stopped"
    began = time.time()
    subprocess.run(command(args.kind, reference, args.steps), env=environment(0.0), check=True, capture_output=True)

    landed, damaged_seen, finished = 0, 0, False
    while landed < args.stops and not finished:
        process = subprocess.Popen(command(args.kind, stopped, args.steps), env=environment(0.15),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 5.0))  # start-up takes about 2 s: some stops land in it, most in steps
        if process.poll() is None:
            for number, sent in enumerate(SIGNALS[args.signal]):
                if number:
                    time.sleep(0.02)
                process.send_signal(sent)
            landed += 1
        finished = process.wait() == 0 and (stopped / "checkpoints" / f"step-{args.steps:06d}").exists()
        damaged_seen += len(damaged(stopped))
    subprocess.run(command(args.kind, stopped, args.steps), env=environment(0.0), check=True, capture_output=True)

    same_log = records(stopped) == records(reference)
    ref_weights, end_weights = weights(reference, args.steps), weights(stopped, args.steps)
    same_weights = ref_weights.keys() == end_weights.keys() and all(
        ref_weights[k].equal(end_weights[k]) for k in ref_weights)
    print(f"{args.kind}, {args.signal}: {landed} stops landed over {args.steps} steps; damaged checkpoints seen after "
          f"a stop: {damaged_seen}; final metrics.jsonl equal to the unstopped run: {same_log}; final weights "
          f"bitwise equal: {same_weights} ({time.time() - began:.0f} s, runs in {work})")
    if not (same_log and same_weights and damaged_seen == 0):
        sys.exit(1)


if __name__ == "__main__":
    main()
