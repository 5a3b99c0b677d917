"""Notebook 07's equal-compute comparison: an arm interrupted by Ctrl-C is not done, and resumes."""

import json

import pytest

from r1lib.configs import DistillConfig
from r1lib.course.equal_compute import EqualComputeComparison
from r1lib.distill import DistillTrainer
from r1lib.models import ModelSpec
from r1lib.records import PromptCompletion, save_jsonl
from r1lib.tasks import ChainTask


def test_an_interrupted_arm_is_not_done_and_stops_the_comparison(tiny_base_path, tmp_path, monkeypatch):
    task = ChainTask(max_terms=3)
    traces = [PromptCompletion(task.prompt(e), f"<answer>{e.answer}</answer>") for e in task.generate(16, seed=0)]
    save_jsonl(traces, tmp_path / "traces" / "traces.jsonl")  # cached traces: no teacher sampling
    (tmp_path / "traces" / "traces.json").write_text(json.dumps({"counts": {}, "teacher_flops": 0.0, "seconds": 0.0}))
    config = DistillConfig(per_device_train_batch_size=4, divergence="forward_kl", eval_steps=1000)
    comparison = EqualComputeComparison(tiny_base_path, ModelSpec(str(tiny_base_path)), task, task.generate(16, seed=1),
                                        [], tmp_path, grpo=None, distill=config, reward_funcs=[], progress=False)
    monkeypatch.setattr(comparison, "_steps_within", lambda *args: 4)
    original_step = DistillTrainer.training_step

    def interrupted_step(self):  # Ctrl-C in the middle of step 3's compute
        if self.state.step == 2:
            raise KeyboardInterrupt
        return original_step(self)

    monkeypatch.setattr(DistillTrainer, "training_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt, match="arm 'logit_kd' interrupted at step 2"):
        comparison._distill("logit_kd", "kd", config, budget=1e30)
    assert not (tmp_path / "logit_kd" / "result.json").exists() and comparison._done("logit_kd") is None
    assert (tmp_path / "logit_kd" / "checkpoints" / "step-000002").exists()

    monkeypatch.setattr(DistillTrainer, "training_step", original_step)  # run again: the arm resumes and finishes
    result = comparison._distill("logit_kd", "kd", config, budget=1e30)
    assert [r["step"] for r in result.history] == [1, 2, 3, 4] and result.ledger.steps == 4
    assert json.loads((tmp_path / "logit_kd" / "result.json").read_text())["steps"] == 4
    assert comparison._done("logit_kd") is not None

    stopped = comparison._distill("budgeted", "kd", config, budget=1.0)  # a budget stop is an arm's legitimate end
    assert json.loads((tmp_path / "budgeted" / "result.json").read_text())["steps"] == 1 and stopped.ledger.steps == 1
