"""Stops with real signals (SIGINT: Ctrl-C, or a notebook's stop button) at every point of a step,
then a resume that must equal the run that was never stopped: the same logged records, step for
step, and the same final weights, bit for bit.

In-process tests send SIGINT to this process from inside the step (during sampling, during the
reward, right after ``optimizer.step()``, during an evaluation, during a save); the subprocess test
sends it from outside, once mid-step and once twice in a row, as an impatient user would."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1lib.checkpoint import complete_checkpoints
from r1lib.grpo import GRPOTrainer
from r1lib.trainer import TrainerCallback

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from grpo_run import make_trainer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STEPS = 5


def sigint() -> None:
    """A real Ctrl-C: the signal is delivered to this (main) thread like one from the terminal."""
    os.kill(os.getpid(), signal.SIGINT)


def grpo(run_dir: Path, **overrides) -> GRPOTrainer:
    base = make_trainer(str(run_dir), STEPS)
    config = replace(base.config, **{"save_steps": 2, "eval_steps": 2, **overrides})
    return GRPOTrainer(base.model, base.tokenizer, base.task, base.reward_funcs, base.train_examples, config, run_dir,
                       eval_examples=base.task.generate(4, seed=9), progress=False)


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "step_time"} for line in lines]


def weights(trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference")
    trainer = grpo(run_dir)
    trainer.train()
    return records(run_dir), weights(trainer)


def interrupt_once(trainer, owner, name: str, at_call: int, before: bool) -> dict:
    """Replace ``owner.name`` by a wrapper that sends SIGINT on its ``at_call``-th call, before or
    after doing its work; returns a counter the test can read."""
    real = getattr(owner, name)
    calls = {"n": 0, "fired": False}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        fire = calls["n"] == at_call
        if fire and before:
            calls["fired"] = True
            sigint()
        result = real(*args, **kwargs)
        if fire and not before:
            calls["fired"] = True
            sigint()
        return result

    setattr(owner, name, wrapper)
    return calls


def finish_and_compare(run_dir: Path, reference, **overrides) -> GRPOTrainer:
    resumed = grpo(run_dir, **overrides)
    resumed.train(resume_from=True)
    assert resumed.outcome == "completed"
    expected_records, expected_weights = reference
    assert records(run_dir) == expected_records
    assert all(torch.equal(a, b) for a, b in zip(weights(resumed), expected_weights))
    return resumed


@pytest.mark.parametrize(
    "where",
    [
        "after the rollout drew from the generator",
        "inside a reward function",
        "right after optimizer.step()",
        "during an evaluation",
        "during a periodic save",
        "in the first step after a resume",
    ],
)
def test_a_sigint_anywhere_in_a_step_resumes_as_if_never_stopped(tmp_path, reference, where):
    run_dir = tmp_path / "run"
    trainer = grpo(run_dir)
    if where == "after the rollout drew from the generator":
        calls = interrupt_once(trainer, trainer, "sample", 3, before=False)
    elif where == "inside a reward function":
        real = trainer.reward_funcs[0]
        count = {"n": 0}

        def reward(*args, **kwargs):
            count["n"] += 1
            if count["n"] == 4:
                sigint()
            return real(*args, **kwargs)

        reward.__name__, reward.__qualname__, reward.__module__ = real.__name__, real.__qualname__, real.__module__
        trainer.reward_funcs[0] = reward
        calls = {"fired": True}
    elif where == "right after optimizer.step()":
        calls = interrupt_once(trainer, trainer.optimizer, "step", 3, before=False)
    elif where == "during an evaluation":
        calls = interrupt_once(trainer, trainer, "evaluate", 2, before=True)  # call 1 is step 0's evaluation
    elif where == "during a periodic save":
        calls = interrupt_once(trainer, trainer.model, "save_pretrained", 1, before=True)
    else:
        first = grpo(run_dir)
        interrupt_once(first, first, "sample", 3, before=True)
        first.train()
        trainer = grpo(run_dir)
        calls = interrupt_once(trainer, trainer, "sample", 1, before=False)
        trainer.train(resume_from=True)
        assert trainer.outcome == "interrupted" and calls["fired"]
        finish_and_compare(run_dir, reference)
        return

    trainer.train()
    assert trainer.outcome == "interrupted" and calls["fired"]
    stopped_at = trainer.state.step
    assert 0 < stopped_at < STEPS
    newest = complete_checkpoints(run_dir / "checkpoints")[-1]
    assert newest.name == f"step-{stopped_at:06d}", "the checkpoint must hold the last completed step"
    finish_and_compare(run_dir, reference)


def test_an_interrupted_update_is_applied_once(tmp_path, reference):
    """A SIGINT between optimizer.step() and the step count used to apply the update twice on resume."""
    run_dir = tmp_path / "run"
    trainer = grpo(run_dir)
    interrupt_once(trainer, trainer.optimizer, "step", 1, before=False)
    trainer.train()
    assert trainer.state.step == 1  # the update happened, so the step counts
    state = json.loads((run_dir / "checkpoints" / "step-000001" / "trainer_state.json").read_text())
    assert state["step"] == 1 and state["scheduler"]["last_epoch"] == 1
    finish_and_compare(run_dir, reference)


def run_script(output_dir: Path, steps: int, slow_reward: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_REWARD": str(slow_reward)}
    command = [sys.executable, str(ROOT / "tests" / "helpers" / "grpo_run.py"), "grpo", str(output_dir), str(steps)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_until_training(process: subprocess.Popen) -> None:
    for line in process.stdout:
        if line.strip() == b"training":
            return
    raise AssertionError(f"the run ended before training: {process.communicate()[0].decode()[-2000:]}")


def test_sigint_from_outside_mid_step_and_twice_in_a_row_lose_nothing(tmp_path):
    steps = 4
    run_dir, reference_dir = tmp_path / "stopped", tmp_path / "reference"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocess: float sums depend on the thread count
    try:
        reference = make_trainer(str(reference_dir), steps)
        reference.train()
    finally:
        torch.set_num_threads(threads)

    # A slow reward makes each step last at least 0.3 s, so the signals land in a step's middle.
    process = run_script(run_dir, steps, slow_reward=0.3)
    wait_until_training(process)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 0 and "interrupted: kept the" in output, output[-2000:]
    kept = complete_checkpoints(run_dir / "checkpoints")
    assert kept and kept[-1].name != f"step-{steps:06d}"

    # The same command continues the run; Ctrl-C twice within its first step, as an impatient user would.
    process = run_script(run_dir, steps, slow_reward=0.3)
    wait_until_training(process)
    time.sleep(0.15)
    process.send_signal(signal.SIGINT)
    time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=120)[0].decode()
    assert "interrupted" in output, output[-2000:]
    assert [p.name for p in complete_checkpoints(run_dir / "checkpoints")][-1] == kept[-1].name, "a save destroyed a checkpoint"

    process = run_script(run_dir, steps)
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 0, output[-2000:]
    expected = [{k: v for k, v in r.items() if k != "step_time"} for r in reference.state.history]
    assert records(run_dir) == expected
    final = complete_checkpoints(run_dir / "checkpoints")[-1]
    assert final.name == f"step-{steps:06d}"
    saved_weights = load_file(str(final / "model.safetensors"))
    assert all(torch.equal(saved_weights[name], tensor) for name, tensor in reference.model.state_dict().items()
               if name in saved_weights)


def test_a_callback_that_raises_keyboardinterrupt_after_a_step_leaves_a_resumable_run(tmp_path, reference):
    """A live plot or tracker callback that is interrupted itself raises from inside the step's
    logging, after the record is written: the run must still resume from a consistent checkpoint."""
    run_dir = tmp_path / "run"

    def stop_at_three(record):
        if record["step"] == 3:
            raise KeyboardInterrupt

    trainer = grpo(run_dir)
    trainer.add_callback(stop_at_three)
    trainer.train()
    assert trainer.outcome == "interrupted" and trainer.state.step == 3
    finish_and_compare(run_dir, reference)


def test_a_second_stop_after_resuming_from_a_stop_in_an_evaluation_logs_nothing_twice(tmp_path):
    """Stopped during step 1's evaluation (step 1 is no save step), resumed, stopped again in step 2:
    the second stop must save step 1 anew, not keep the checkpoint that still waits for step 1's
    evaluation, or the next resume logs step 1 twice."""
    settings = dict(eval_steps=1, save_steps=4)
    reference_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    expected = grpo(reference_dir, **settings)
    expected.train()
    first = grpo(run_dir, **settings)
    interrupt_once(first, first, "evaluate", 2, before=True)  # evaluation 1 is step 0's
    first.train()
    assert first.outcome == "interrupted" and first.state.step == 1
    second = grpo(run_dir, **settings)
    interrupt_once(second, second, "sample", 1, before=False)  # step 2's sampling
    second.train(resume_from=True)
    assert second.outcome == "interrupted" and second.state.step == 1
    finish_and_compare(run_dir, (records(reference_dir), weights(expected)), **settings)


def test_a_stop_during_step_0s_evaluation_is_an_interruption_and_the_run_starts_again(tmp_path, reference):
    run_dir = tmp_path / "run"
    trainer = grpo(run_dir)
    ended = []
    trainer.add_callback(type("Ends", (TrainerCallback,), {"on_train_end": lambda self, t: ended.append(t.outcome)})())
    interrupt_once(trainer, trainer, "evaluate", 1, before=True)
    trainer.train()
    assert trainer.outcome == "interrupted" and trainer.state.step == 0 and ended == ["interrupted"]
    finish_and_compare(run_dir, reference)
