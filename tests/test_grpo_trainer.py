"""The GRPO trainer's mechanics on a random tiny model: degenerate batches, gradient accumulation,
num_iterations, dynamic sampling, reference refresh, bad rewards, and SIGKILL-resume for every
trainer built on the shared loop."""

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
from r1lib.grpo import GRPOTrainer, ScoredGroups, score_groups
from r1lib.rewards import make_accuracy_reward
from r1lib.tasks import ChainTask

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from grpo_run import MAKERS, length_reward, make_trainer  # noqa: E402

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
    assert metrics["reward_std"] == 0.0
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_all_truncated_and_empty_completions_stay_finite(tmp_path):
    # max_completion_length=1: the random model never starts with EOS, so all 8 completions are cut
    # after one token; with mask_truncated_completions none of them may reach the loss.
    trainer = trainer_with(tmp_path, reward_funcs=[length_reward], max_completion_length=1, mask_truncated_completions=True)
    before = copy.deepcopy(trainer.model.state_dict())
    metrics = trainer.step()
    assert all_finite(metrics) and metrics["completions/clipped_ratio"] == 1.0
    assert metrics["completions/mean_length"] == 1.0 and metrics["num_tokens"] == 8.0
    assert trainer._batch.completion_mask.sum() == 8 and trainer._batch.loss_mask.sum() == 0  # all masked
    assert metrics["loss"] == 0.0 and metrics["kl"] == 0.0
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())  # nothing to learn from
    trainer = trainer_with(tmp_path, reward_funcs=[lambda p, c, **k: [0.0 if i % 2 else 1.0 for i in range(len(c))]],
                           loss_type="grpo", scale_rewards="group")
    trainer.model.lm_head.register_forward_hook(lambda m, i, o: o.index_fill(-1, torch.tensor([trainer.tokenizer.eos_token_id]), 1e4))
    metrics = trainer.step()  # every completion is just EOS: empty text, identical within groups
    assert all_finite(metrics) and metrics["completions/mean_length"] == 1.0


def test_reward_std_is_the_whole_batch_std_as_in_trl(tmp_path):
    trainer = trainer_with(tmp_path, reward_funcs=[lambda p, c, **k: [float(i // 4) for i in range(len(c))]])
    groups, metrics = trainer.generate_groups()
    # Groups [0,0,0,0] and [1,1,1,1]: no spread inside a group, yet the batch's std is sqrt(8/7)/2.
    assert metrics["frac_reward_zero_std"] == 1.0
    assert metrics["reward_std"] == pytest.approx(torch.tensor([0.0] * 4 + [1.0] * 4).std().item())


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_gradient_accumulation_matches_one_big_batch(tmp_path, loss_type):
    whole = trainer_with(tmp_path, loss_type=loss_type, per_device_train_batch_size=8, gradient_accumulation_steps=1)
    groups, _ = whole.generate_groups()
    split = trainer_with(tmp_path, loss_type=loss_type, per_device_train_batch_size=4, gradient_accumulation_steps=2)
    split.model.load_state_dict(whole.model.state_dict())
    whole.optimise(whole.prepare(groups))
    split.optimise(split.prepare(groups))
    for (name, a), b in zip(whole.model.named_parameters(), split.model.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=1e-4), name


def test_num_iterations_reuses_a_batch_one_update_per_step_and_the_clip_fires(tmp_path):
    trainer = trainer_with(tmp_path, num_iterations=2, beta=0.0, learning_rate=5e-2, max_steps=4, epsilon=0.05)
    calls = {"n": 0}
    real = trainer.sample

    def counting(examples):
        calls["n"] += 1
        return real(examples)

    trainer.sample = counting
    history = trainer.train()
    assert [r["step"] for r in history] == [1, 2, 3, 4]  # max_steps counts updates, as in TRL
    assert calls["n"] == 2  # one generation batch per num_iterations updates
    assert trainer.optimizer.state[next(trainer.model.parameters())]["step"] == 4
    assert "reward" in history[0] and "reward" not in history[1]  # batch metrics on generation steps only
    assert history[0]["clip_ratio/region_mean"] == 0.0  # first use: pi == pi_old
    assert history[1]["clip_ratio/region_mean"] > 0.0  # second use: the policy moved and the clip cuts in


def test_a_reused_batch_survives_a_checkpoint(tmp_path):
    reference = trainer_with(tmp_path / "a", num_iterations=2, max_steps=4, save_steps=1).train()
    trainer = trainer_with(tmp_path / "b", num_iterations=2, max_steps=4, save_steps=1)
    real = trainer.step
    trainer.step = lambda: (_ for _ in ()).throw(KeyboardInterrupt) if trainer.state.step == 3 else real()
    trainer.train()  # stopped after step 3, in the middle of the second generation batch
    assert (tmp_path / "b" / "run" / "checkpoints" / "step-000003" / "trainer_tensors.safetensors").exists()
    resumed = trainer_with(tmp_path / "b", num_iterations=2, max_steps=4, save_steps=1).train(resume_from=True)
    assert resumed[-1]["loss"] == pytest.approx(reference[-1]["loss"], abs=1e-6)


def test_dynamic_sampling_drops_zero_spread_groups_and_refills(tmp_path):
    calls = {"n": 0}

    def alternating_reward(prompts, completions, **columns):
        """The first batch has no spread at all; later ones do."""
        calls["n"] += 1
        if calls["n"] == 1:
            return [1.0] * len(completions)
        return [float(i % 2) for i in range(len(completions))]

    trainer = trainer_with(tmp_path, reward_funcs=[alternating_reward], dynamic_sampling=True, beta=0.0)
    groups, metrics = trainer.generate_groups()
    assert metrics["frac_reward_zero_std"] == 1.0
    assert metrics["dynamic_sampling/extra_groups"] == 2 and metrics["dynamic_sampling/kept_groups"] == 2
    assert groups.num_groups == 2 and groups.rollout.completion_ids.shape[0] == 8
    assert groups.group_std().min() > 0
    capped = trainer_with(tmp_path, reward_funcs=[constant_reward], dynamic_sampling=True, max_extra_groups=3, beta=0.0)
    assert capped.generate_groups()[1]["dynamic_sampling/extra_groups"] == 3


def test_scored_groups_select_and_concat(tmp_path):
    trainer = trainer_with(tmp_path)
    examples = trainer.stream.take(2)
    groups = trainer.score(examples, trainer.sample(examples))
    swapped = groups.select([1, 0])
    assert swapped.examples == examples[::-1] and swapped.completions == groups.completions[4:] + groups.completions[:4]
    assert swapped.completion_ids == groups.completion_ids[4:] + groups.completion_ids[:4]
    joined = ScoredGroups.concat([groups.select([0]), groups.select([1])], trainer.tokenizer.pad_token_id)
    assert joined.completions == groups.completions and torch.equal(joined.rewards, groups.rewards)
    assert joined.reward_columns == groups.reward_columns


def test_reward_functions_receive_completion_ids_and_columns(tmp_path):
    seen = {}

    def spy(prompts, completions, completion_ids, question, answer, **columns):
        seen.update(prompts=prompts, completions=completions, ids=completion_ids, question=question, answer=answer)
        return [float(len(ids)) for ids in completion_ids]

    trainer = trainer_with(tmp_path, reward_funcs=[spy])
    examples = trainer.stream.take(2)
    out = trainer.sample(examples)
    groups = trainer.score(examples, out)
    assert [len(ids) for ids in seen["ids"]] == out.completion_lengths.tolist()
    assert trainer.tokenizer.decode(seen["ids"][0], skip_special_tokens=True) == out.texts[0]
    assert seen["question"] == [examples[0].question] * 4 + [examples[1].question] * 4
    assert groups.rewards.tolist() == [float(n) for n in out.completion_lengths.tolist()]


@pytest.mark.parametrize(("returned", "count"), [(lambda n: [1.0] * (2 * n), 16), (lambda n: [1.0] * (n - 1), 7)])
def test_a_reward_returning_the_wrong_number_of_scores_is_named(tmp_path, returned, count):
    def miscounted(prompts, completions, **columns):
        return returned(len(completions))

    trainer = trainer_with(tmp_path, reward_funcs=[miscounted])
    with pytest.raises(ValueError, match=f"reward function 'miscounted' returned {count} scores for 8 completions"):
        trainer.step()


def test_an_always_nan_reward_warns_and_is_not_logged_as_zero(tmp_path):
    def broken(prompts, completions, **columns):
        return [float("nan")] * len(completions)

    trainer = trainer_with(tmp_path, reward_funcs=[broken, length_reward], max_steps=1)
    with pytest.warns(UserWarning, match=r"'broken' abstained \(returned None or NaN\) on all 8 completions"):
        history = trainer.train()
    assert history[-1]["rewards/broken/mean"] is None
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert logged["rewards/broken/mean"] is None and logged["rewards/length_reward/mean"] > 0


def test_prompts_longer_than_the_model_are_refused_before_any_compute(tmp_path):
    base = make_trainer(str(tmp_path / "run"), 2)
    task = ChainTask()
    long_example = task.make_example([1] * 125)  # 249 characters + 2 chat tokens + 8 new tokens > 256
    longer = task.make_example([1] * 126)
    examples = [long_example, *base.train_examples[:3], longer]
    run = tmp_path / "refused"
    with pytest.raises(ValueError) as error:
        GRPOTrainer(base.model, base.tokenizer, base.task, base.reward_funcs, examples, base.config, run)
    message = str(error.value)
    assert "2 of 5 training prompts are too long: the longest has 253 tokens" in message
    assert "max_completion_length=8 a sequence reaches 261 positions, beyond the model's limit of 256" in message
    assert "keep only examples whose prompt has at most 248 tokens, or lower max_completion_length" in message
    assert not run.exists()  # refused before anything was written
    with pytest.raises(ValueError, match="lower max_completion_length below 256"):
        GRPOTrainer(base.model, base.tokenizer, base.task, base.reward_funcs, base.train_examples,
                    replace(base.config, max_completion_length=300), None)
    fits = GRPOTrainer(base.model, base.tokenizer, base.task, base.reward_funcs, [task.make_example([1] * 122)],
                       base.config, None)  # 243 characters + 2 chat tokens + 8 new tokens <= 256 fits
    assert fits.longest_prompt == 245


def test_score_groups_is_the_public_scoring_function(tmp_path):
    trainer = trainer_with(tmp_path)
    examples = trainer.stream.take(2)
    out = trainer.sample(examples)
    direct = score_groups(examples, out, [trainer.task.prompt(e) for e in examples],
                          [make_accuracy_reward(trainer.task)])
    assert set(direct.reward_columns) == {"accuracy"} and direct.rewards.shape == (8,)


def test_reference_refresh_copies_the_policy(tmp_path):
    trainer = trainer_with(tmp_path, sync_ref_model=True, ref_model_sync_steps=2, ref_model_mixup_alpha=1.0)
    trainer.step()
    assert not all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(), trainer.ref_model.parameters()))
    trainer.step()
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(), trainer.ref_model.parameters()))


def test_completions_log_holds_whole_groups(tmp_path):
    trainer = trainer_with(tmp_path, log_completions=8, max_steps=2)
    trainer.train()
    records = [json.loads(line) for line in (tmp_path / "run" / "completions.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1] * 8 + [2] * 8
    assert len({r["question"] for r in records if r["step"] == 1}) == 2  # two prompts with 4 completions each


# ----------------------------------------------------------------------------- SIGKILL and resume


def run_script(kind, output_dir, max_steps, wait=True, slow=0.0):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_STEPS": str(slow)}
    command = [sys.executable, str(ROOT / "tests" / "helpers" / "grpo_run.py"), kind, str(output_dir), str(max_steps)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if wait:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output.decode()[-3000:]
    return process


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kind", ["grpo", "reward_model", "pretrain"])
def test_sigkill_then_resume_continues_the_same_run(tmp_path, kind):
    """Every trainer resumes through the same code; the resumed run equals the uninterrupted one."""
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    process = run_script(kind, killed_dir, 8, wait=False, slow=0.3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocess: float sums depend on the thread count
    try:
        reference = [r for r in MAKERS[kind](str(reference_dir), 8).train() if r["step"] > 0]
    finally:
        torch.set_num_threads(threads)

    deadline = time.time() + 240
    while time.time() < deadline and not (killed_dir / "checkpoints" / "step-000004" / "trainer_state.json").exists():
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (killed_dir / "checkpoints" / "step-000004").exists(), "the run never reached its 4th step"
    for checkpoint in (killed_dir / "checkpoints").glob("step-*"):
        names = {p.name for p in checkpoint.iterdir()}
        assert {"model.safetensors", "optimizer.safetensors", "trainer_state.json", "trainer_tensors.safetensors"} <= names

    run_script(kind, killed_dir, 8)  # the same command again: it resumes
    resumed = [r for r in read_metrics(killed_dir) if r["step"] > 0]
    assert [m["step"] for m in resumed] == list(range(1, 9)), "steps must continue without gaps or repeats"
    for mine, theirs in zip(resumed, reference):
        assert mine["loss"] == pytest.approx(theirs["loss"], abs=1e-6), mine["step"]
        if kind == "grpo":
            assert mine["reward"] == pytest.approx(theirs["reward"], abs=1e-6), mine["step"]
    optimizer_tensors = load_file(str(killed_dir / "checkpoints" / "step-000008" / "optimizer.safetensors"))
    assert {float(v) for k, v in optimizer_tensors.items() if k.endswith(".step")} == {8.0}
    assert not list((killed_dir / "checkpoints").glob(".*")), "stale temporary checkpoint left behind"
    assert latest_checkpoint(killed_dir / "checkpoints").name == "step-000008"
