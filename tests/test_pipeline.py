"""Multi-stage R1: the readable format and its rewriting, stage filters, task mixtures, rewards that
abstain, and the whole pipeline killed in stage 3 and resumed."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from r1lib.cold_start import readable, reference_cold_start, rewrite_readable, single_language
from r1lib.format import is_readable_format, parse_readable
from r1lib.pipeline import STAGES, ColdStartConfig, PipelineConfig, RejectionSamplingConfig
from r1lib.rejection import rejection_checks
from r1lib.rewards import make_accuracy_reward, make_script_consistency_reward, readable_format_reward, scoped_to_task
from r1lib.tasks import ChainTask, Example, GeneralTask
from r1lib.tasks.mixture import MixtureTask, interleave, tag
from r1lib.trainer import Trainer, TrainerCallback

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from pipeline_run import make_pipeline, run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_readable_format_needs_reasoning_summary_and_answer():
    good = "<think>3+4 so 7</think>3+4 = 7.<answer>7</answer>"
    assert parse_readable(good).summary == "3+4 = 7." and is_readable_format(good)
    for bad in ["<think>3+4 so 7</think><answer>7</answer>",  # no summary
                "<think></think>sum<answer>7</answer>",  # empty reasoning
                "3+4 = 7.<think>3+4 so 7</think><answer>7</answer>",  # summary first
                "<think>a</think>x<answer>7</answer><answer>7</answer>",
                "<think>a</think><b>x</b><answer>7</answer>",  # markup in the summary
                "<think>a</think>" + "x" * 400 + "<answer>7</answer>"]:
        assert not is_readable_format(bad), bad
    assert readable_format_reward(None, [good, "<answer>7</answer>"]) == [1.0, 0.0]


def test_cold_start_rewrite_keeps_only_verified_reasoning_in_one_language():
    task = ChainTask()
    example = task.make_example([3, 5, 9])
    rewritten = rewrite_readable("<think>3+5+9 luego 8+9 so 7</think><answer>7</answer>", example, task)
    assert rewritten == "<think>3+5+9 so 8+9 so 7</think>3+5+9 = 7.<answer>7</answer>"
    assert rewrite_readable("<think>3+5+9 so 8+9 so 6</think><answer>6</answer>", example, task) is None  # wrong
    assert rewrite_readable("<answer>7</answer>", example, task) is None  # right, but no reasoning to show
    assert single_language("espera, Luego so") == "wait, so so"
    solved = Example("Tom has 3 apples and buys 4.", "7", {"solution": "3+4=7\n#### 7"})
    [cold] = reference_cold_start(task, [solved])
    assert cold.completion == readable("3+4=7", "Tom has 3 apples and buys 4. = 7.", "7")


def test_rejection_filters():
    task = ChainTask()
    example = task.make_example([3, 4])
    good = "<think>3+4 so 7</think>3+4 = 7.<answer>7</answer>"
    assert all(rejection_checks(good, 20, example, task, max_tokens=48).values())
    checks = rejection_checks("<think>3+4 luego 7</think>3+4 = 7.<answer>7</answer>", 60, example, task, max_tokens=48)
    assert checks == {"correct": True, "readable": True, "single_language": False, "short_enough": False}
    assert not rejection_checks("<think>3+4 so 6</think>3+4 = 6.<answer>6</answer>", 20, example, task, 48)["correct"]


def test_rewards_abstain_outside_their_task_and_mixtures_route():
    chain, general = ChainTask(), GeneralTask()
    mixed = interleave({"reasoning": chain.generate(3, seed=0), "general": general.generate(2, seed=0)}, seed=1)
    mixture = MixtureTask.of(reasoning=chain, general=general)
    assert {e.info["task"] for e in mixed} == {"reasoning", "general"}
    for e in mixed:
        assert mixture.prompt(e) == (chain if e.info["task"] == "reasoning" else general).prompt(e)
    accuracy = scoped_to_task(make_accuracy_reward(chain), "reasoning")
    completions = ["<answer>" + e.answer + "</answer>" for e in mixed]
    scores = accuracy([mixture.prompt(e) for e in mixed], completions, answer=[e.answer for e in mixed],
                      question=[e.question for e in mixed], task=[e.info["task"] for e in mixed])
    assert [s is None for s in scores] == [e.info["task"] == "general" for e in mixed]
    assert all(s == 1.0 for s in scores if s is not None)
    assert accuracy(None, completions) == [None] * len(completions)  # no task column: nothing applies
    with pytest.raises(ValueError, match="names task 'poetry'"):
        mixture.prompt(tag(chain.generate(1, seed=0), "poetry")[0])


def test_script_consistency_counts_each_foreign_character():
    reward = make_script_consistency_reward()
    scores = reward(None, ["<think>so the sum is 9</think>", "<think>so 总和 is 9</think>", "<think>3+4</think>"])
    assert scores == [1.0, pytest.approx(2 / 4), None]


def test_configs_validate():
    with pytest.raises(ValueError, match="source"):
        ColdStartConfig(source="humans")
    with pytest.raises(ValueError, match="non_reasoning_fraction"):
        RejectionSamplingConfig(non_reasoning_fraction=1.0)
    from r1lib.profiles import get_profile
    from r1lib.pipeline import tiny_pipeline_config

    profile = get_profile("smoke")
    config = tiny_pipeline_config(profile.grpo, profile.sft)
    with pytest.raises(ValueError, match="rejection_sft_start"):
        PipelineConfig(**{**config.__dict__, "rejection_sft_start": "r1_zero"})


def test_sigkill_in_stage_3_resumes_there_with_the_same_table(tmp_path):
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_STEPS": "0.25"}
    process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "helpers" / "pipeline_run.py"), str(killed)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def kill_in_stage_3() -> None:  # watches while the reference runs here, so that the kill is not late
        deadline = time.time() + 300
        while time.time() < deadline and not list((killed / "rejection_sft" / "checkpoints").glob("step-*/trainer_state.json")):
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)

    watcher = threading.Thread(target=kill_in_stage_3)
    watcher.start()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic as the subprocess
    try:
        reference = run(tmp_path / "reference")
    finally:
        torch.set_num_threads(threads)
        watcher.join()
    process.wait()
    assert list((killed / "rejection_sft" / "checkpoints").glob("step-*")), "the run never got into stage 3"
    assert not (killed / "rejection_sft" / "stage.json").exists(), "killed too late: stage 3 had finished"
    before = len((killed / "pipeline.jsonl").read_text().splitlines())

    completed = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "pipeline_run.py"), str(killed)],
                               env={**env, "SLOW_STEPS": "0"}, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    events = [json.loads(line) for line in (killed / "pipeline.jsonl").read_text().splitlines()[before:]]
    happened = {(e["stage"], e["event"]) for e in events}
    for stage in ("r1_zero", "cold_start_data", "cold_start", "reasoning_rl", "reward_model", "rejection_data"):
        assert (stage, "skipped") in happened and (stage, "started") not in happened, stage
    assert ("rejection_sft", "resumed") in happened and ("all_scenarios_rl", "finished") in happened
    resumed = json.loads((killed / "table.json").read_text())
    for stage, row in reference.items():
        for column, value in row.items():
            assert resumed[stage][column] == pytest.approx(value, abs=1e-6), (stage, column)


# ---------------------------------------------------------------------- Ctrl-C inside a stage


class StopButtonAt(TrainerCallback):
    """Presses the stop button once ``step`` is logged: a SIGINT, as Ctrl-C and a notebook's stop button
    send, which the trainer turns into a saved checkpoint and ``outcome == "interrupted"``."""

    def __init__(self, step: int) -> None:
        self.step, self.pressed = step, False

    def on_log(self, trainer, record) -> None:
        if record["step"] >= self.step and not self.pressed:
            self.pressed = True
            signal.raise_signal(signal.SIGINT)


class FirstStep(TrainerCallback):
    """Records the step a run begins at (after resuming)."""

    def __init__(self) -> None:
        self.began: int | None = None

    def on_train_begin(self, trainer) -> None:
        self.began = trainer.state.step


def with_callback(monkeypatch, stage: str, callback: TrainerCallback) -> None:
    """Give ``callback`` to the trainer the pipeline builds for ``stage``."""
    original = Trainer.train

    def train(self, *args, **kwargs):
        if self.output_dir is not None and self.output_dir.name == stage and callback not in self.callbacks:
            self.add_callback(callback)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", train)


def tiny_stages(root, stage: str):
    """The smoke pipeline with R1-Zero and the reward model cut to 4 steps, a checkpoint every 2; the
    stages before ``stage`` do nothing, so that ``run()`` reaches it at once."""
    pipeline = make_pipeline(root)
    for earlier in STAGES[: STAGES.index(stage)]:
        setattr(pipeline, earlier, lambda: None)
    config = pipeline.config
    pipeline.config = replace(
        config,
        r1_zero=replace(config.r1_zero, num_generations=4, per_device_train_batch_size=8, max_completion_length=12,
                        max_steps=4, save_steps=2, eval_steps=4, eval_examples=4, log_completions=0),
        reward_model=replace(config.reward_model, per_device_train_batch_size=4, warmup_steps=0, max_steps=4,
                             save_steps=2, eval_steps=4),
    )
    return pipeline


@pytest.mark.parametrize("stage", ["r1_zero", "reward_model"])
def test_a_stage_stopped_with_ctrl_c_is_not_finished_and_resumes(stage, tmp_path, monkeypatch):
    pipeline = tiny_stages(tmp_path, stage)
    after = STAGES[STAGES.index(stage) + 1]
    with monkeypatch.context() as patch:
        with_callback(patch, stage, StopButtonAt(2))
        with pytest.raises(KeyboardInterrupt, match=f"stage {stage} was interrupted at step 2 of 4"):
            pipeline.run(until=after)
    folder = tmp_path / stage
    assert not (folder / "stage.json").exists() and not (folder / "final").exists()
    assert (folder / "checkpoints" / "step-000002" / "trainer_state.json").exists()
    events = [(e["stage"], e["event"]) for e in pipeline.events()]
    assert events[-2:] == [(stage, "started"), (stage, "interrupted")]  # and the next stage never began
    assert not any(name == after for name, _ in events)

    again = tiny_stages(tmp_path, stage)
    first = FirstStep()
    with monkeypatch.context() as patch:
        with_callback(patch, stage, first)
        again.run(until=stage)
    assert first.began == 2  # resumed from the checkpoint, not trained again from step 0
    assert [(e["stage"], e["event"]) for e in again.events()][-2:] == [(stage, "resumed"), (stage, "finished")]
    assert json.loads((folder / "stage.json").read_text())["steps"] == 4
    steps = [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in steps if s > 0] == [1, 2, 3, 4]  # each step logged once across the two runs
