"""The GRPO trainer's mechanics on a random tiny model: degenerate batches, gradient accumulation,
dynamic sampling, reference refresh, and checkpoint/resume including a SIGKILL mid-run."""

import copy
import json
import math
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

from r1lib.checkpoint import latest_checkpoint
from r1lib.grpo import GRPOTrainer

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from grpo_run import length_reward, make_trainer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def trainer_with(tmp_path, reward_funcs=None, **overrides) -> GRPOTrainer:
    base = make_trainer(str(tmp_path / "run"), 4)
    config = replace(base.config, **overrides)
    return GRPOTrainer(base.model, base.tokenizer, base.task, reward_funcs or base.reward_funcs,
                       base.train_examples, config, tmp_path / "run", progress=False)


def all_finite(metrics: dict) -> bool:
    return all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))


def constant_reward(prompts, completions, **columns):
    return [1.0] * len(completions)


def test_all_equal_rewards_give_zero_update_and_finite_metrics(tmp_path):
    trainer = trainer_with(tmp_path, reward_funcs=[constant_reward], beta=0.0, scale_rewards="batch")
    before = copy.deepcopy(trainer.model.state_dict())
    metrics = trainer.step()
    assert all_finite(metrics) and metrics["frac_reward_zero_std"] == 1.0 and metrics["loss"] == 0.0
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_all_truncated_and_empty_completions_stay_finite(tmp_path):
    # max_completion_length=1: every completion is one token and, almost surely, truncated and masked.
    trainer = trainer_with(tmp_path, reward_funcs=[length_reward], max_completion_length=1, mask_truncated_completions=True)
    metrics = trainer.step()
    assert all_finite(metrics)
    trainer = trainer_with(tmp_path, reward_funcs=[lambda p, c, **k: [0.0 if i % 2 else 1.0 for i in range(len(c))]],
                           loss_type="grpo", scale_rewards="group")
    trainer.model.lm_head.register_forward_hook(lambda m, i, o: o.index_fill(-1, torch.tensor([trainer.tokenizer.eos_token_id]), 1e4))
    metrics = trainer.step()  # every completion is just EOS: empty text, identical within groups
    assert all_finite(metrics) and metrics["completions/mean_length"] == 1.0


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_gradient_accumulation_matches_one_big_batch(tmp_path, loss_type):
    whole = trainer_with(tmp_path, loss_type=loss_type, per_device_train_batch_size=8, gradient_accumulation_steps=1)
    batch = whole.generate_batch()
    split = trainer_with(tmp_path, loss_type=loss_type, per_device_train_batch_size=4, gradient_accumulation_steps=2)
    split.model.load_state_dict(whole.model.state_dict())
    whole.optimise(batch)
    split.optimise(batch)
    for (name, a), b in zip(whole.model.named_parameters(), split.model.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=1e-4), name


def test_dynamic_sampling_drops_zero_spread_groups_and_refills(tmp_path):
    calls = {"n": 0}

    def alternating_reward(prompts, completions, **columns):
        """The first batch has no spread at all; later ones do."""
        calls["n"] += 1
        if calls["n"] == 1:
            return [1.0] * len(completions)
        return [float(i % 2) for i in range(len(completions))]

    trainer = trainer_with(tmp_path, reward_funcs=[alternating_reward], dynamic_sampling=True, beta=0.0)
    batch = trainer.generate_batch()
    assert batch.metrics["frac_reward_zero_std"] == 1.0
    assert batch.metrics["dynamic_sampling/extra_groups"] == 2 and batch.metrics["dynamic_sampling/kept_groups"] == 2
    assert len(batch.examples) == 2 and batch.rollout.completion_ids.shape[0] == 8
    assert batch.rewards.view(-1, 4).std(dim=1).min() > 0
    capped = trainer_with(tmp_path, reward_funcs=[constant_reward], dynamic_sampling=True, max_extra_groups=3, beta=0.0)
    assert capped.generate_batch().metrics["dynamic_sampling/extra_groups"] == 3


def test_reference_refresh_copies_the_policy(tmp_path):
    trainer = trainer_with(tmp_path, sync_ref_model=True, ref_model_sync_steps=2, ref_model_mixup_alpha=1.0)
    trainer.step()
    assert not all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(), trainer.ref_model.parameters()))
    trainer.step()
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(), trainer.ref_model.parameters()))


def test_keyboard_interrupt_saves_a_checkpoint(tmp_path):
    trainer = trainer_with(tmp_path, max_steps=10)
    real_step = trainer.step

    def step_then_interrupt():
        if trainer.state.step == 3:
            raise KeyboardInterrupt
        return real_step()

    trainer.step = step_then_interrupt
    history = trainer.train()
    assert [m["step"] for m in history] == [1, 2, 3]
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step-000003"


def run_script(output_dir, max_steps, wait=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "tests" / "helpers" / "grpo_run.py"), str(output_dir), str(max_steps)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if wait:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output.decode()[-3000:]
    return process


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_sigkill_then_resume_continues_the_same_run(tmp_path):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    run_script(reference_dir, 8)
    reference = read_metrics(reference_dir)

    process = run_script(killed_dir, 10_000, wait=False)
    deadline = time.time() + 240
    while time.time() < deadline and not (killed_dir / "checkpoints" / "step-000004" / "trainer_state.json").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (killed_dir / "checkpoints" / "step-000004").exists(), "the run never reached its 4th step"
    killed_at = max(m["step"] for m in read_metrics(killed_dir))
    for checkpoint in (killed_dir / "checkpoints").glob("step-*"):
        assert {"model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json"} <= {p.name for p in checkpoint.iterdir()}

    run_script(killed_dir, 8)
    resumed = read_metrics(killed_dir)
    assert [m["step"] for m in resumed] == list(range(1, 9)), "steps must continue without gaps or repeats"
    for mine, theirs in zip(resumed, reference):
        assert mine["reward"] == pytest.approx(theirs["reward"], abs=1e-5), mine["step"]
        assert mine["loss"] == pytest.approx(theirs["loss"], abs=1e-5), mine["step"]
    optimizer_tensors = load_file(str(killed_dir / "checkpoints" / "step-000008" / "optimizer.safetensors"))
    assert {float(v) for k, v in optimizer_tensors.items() if k.endswith(".step")} == {8.0}
    assert not list((killed_dir / "checkpoints").glob(".*")), "stale temporary checkpoint left behind"
    print(f"killed after step {killed_at}, resumed from {latest_checkpoint(killed_dir / 'checkpoints')}")
