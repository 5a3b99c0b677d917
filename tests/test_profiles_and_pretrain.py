import json
import random

import pytest
import torch

from r1lib.profiles import get_profile, with_overrides
from r1lib.tasks import ChainTask
from r1lib.tiny.pretrain import PretrainConfig, lr_factor, make_batch, pretrain
from r1lib.widgets import CompletionBrowser


def test_profile_selection(monkeypatch):
    monkeypatch.setenv("R1LIB_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    monkeypatch.delenv("R1LIB_PROFILE")
    assert get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")
    assert get_profile("gpu").model.dtype == "float16"
    with pytest.raises(ValueError, match="unknown profile 'tpu'"):
        get_profile("tpu")
    cpu = get_profile("cpu")
    assert with_overrides(cpu, beta=0.0).grpo.beta == 0.0 and cpu.grpo.beta == 0.01
    with pytest.raises(ValueError, match="num_generations"):
        with_overrides(cpu, num_generations=1)


def test_learning_rate_schedule():
    config = PretrainConfig(steps=1000, warmup_steps=100, min_lr_ratio=0.1)
    assert lr_factor(0, config) == pytest.approx(0.01)
    assert lr_factor(99, config) == pytest.approx(1.0)
    assert lr_factor(999, config) == pytest.approx(0.1, abs=1e-3)


def test_batches_mask_the_prompt(tiny_tokenizer):
    ids, mask, labels = make_batch(tiny_tokenizer, ChainTask(), random.Random(0), PretrainConfig(batch_size=4), 0.0)
    assert ids.shape == labels.shape == mask.shape and ids.shape[0] == 4
    assistant = tiny_tokenizer.convert_tokens_to_ids("<|assistant|>")
    for row, label in zip(ids.tolist(), labels.tolist()):
        cut = row.index(assistant) + 1
        assert all(x == -100 for x in label[:cut]) and label[cut] != -100  # loss starts at the reply


def test_short_pretraining_learns_and_resumes(tmp_path):
    config = PretrainConfig(steps=60, batch_size=16, warmup_steps=10, eval_every=30, eval_examples=16)
    stats = pretrain(tmp_path / "base", config, progress=False)
    log = [json.loads(line) for line in (tmp_path / "base.work" / "pretrain_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [30, 60]
    assert log[-1]["loss"] < 2.0  # from ~4.7 (uniform over 109 tokens): the format is being learned
    assert set(stats) >= {"pass@1", "reasoning_rate", "forced_reasoning_pass@1", "forced_direct_pass@1"}
    assert (tmp_path / "base" / "model.safetensors").exists() and (tmp_path / "base" / "tokenizer.json").exists()
    # A second call finds the finished work and resumes at the last step instead of starting over.
    again = pretrain(tmp_path / "base", config, progress=False)
    assert again == stats


def test_completion_browser_groups_by_step_and_prompt():
    records = [{"step": s, "question": q, "answer": "1", "completion": f"<answer>{i}</answer>", "reward": 1.0}
               for s in (1, 2) for q in ("1+0", "2+9") for i in range(3)]
    browser = CompletionBrowser(records)
    assert browser.steps == [1, 2] and browser.questions(2) == ["1+0", "2+9"]
    assert len(browser.completions(1, "2+9")) == 3
    with pytest.raises(ValueError, match="no completions"):
        CompletionBrowser([])
