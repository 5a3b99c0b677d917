"""Resuming a LoRA run: 2 steps, a checkpoint, a fresh model and trainer, 1 more step, must equal an
uninterrupted 3-step run bit for bit (adapter weights and the step-3 loss), for GRPO and SFT."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from r1lib.configs import GRPOConfig, SFTConfig
from r1lib.grpo import GRPOTrainer
from r1lib.models import LoraSettings, ModelSpec, load_model_and_tokenizer
from r1lib.records import PromptCompletion
from r1lib.sft import SFTTrainer
from r1lib.tasks import ChainTask
from r1lib.tiny.model import TinyModelConfig, build_tiny_model
from r1lib.trainer import TrainerCallback

SMALL = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
LORA = LoraSettings(r=4, alpha=8, dropout=0.1)  # dropout draws from the global RNG: the checkpoint must restore it


def length_reward(prompts, completions, **columns):
    """A random model is never right; rewarding length gives every group a spread, so LoRA moves."""
    return [float(len(c)) for c in completions]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    path = tmp_path_factory.mktemp("lora-base") / "qwen2"
    build_tiny_model(tiny_tokenizer, SMALL, seed=0).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


def load_lora(base_dir: Path):
    """The base with a LoRA adapter and gradient checkpointing, as the gpu profile loads it; seeded,
    because peft draws lora_A's initial values."""
    torch.manual_seed(0)
    return load_model_and_tokenizer(ModelSpec(str(base_dir), lora=LORA, gradient_checkpointing=True))


# A schedule that changes every step, so that a scheduler restored wrong changes the step-3 update.
SCHEDULE = dict(max_steps=3, save_steps=2, eval_steps=3, learning_rate=1e-2, lr_scheduler_type="cosine",
                warmup_steps=1)


def grpo_trainer(model, tokenizer, out: Path) -> GRPOTrainer:
    task = ChainTask()
    config = GRPOConfig(num_generations=2, per_device_train_batch_size=4, max_completion_length=6, beta=0.1,
                        **SCHEDULE)
    return GRPOTrainer(model, tokenizer, task, [length_reward], task.generate(16, seed=0), config, out, progress=False)


def sft_trainer(model, tokenizer, out: Path) -> SFTTrainer:
    task = ChainTask()
    examples = [PromptCompletion(task.prompt(e), f"<answer>{e.answer}</answer>") for e in task.generate(16, seed=0)]
    return SFTTrainer(model, tokenizer, examples, SFTConfig(per_device_train_batch_size=4, **SCHEDULE), out,
                      progress=False)


class StopAt2(TrainerCallback):
    """Ends the run after step 2 (its checkpoint is saved), as a budget or the stop button would."""

    def on_log(self, trainer, record) -> None:
        if record["step"] == 2:
            trainer.request_stop()


def adapter(model) -> dict[str, torch.Tensor]:
    """The trainable (LoRA) weights by name, copied."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("make_trainer", [grpo_trainer, sft_trainer], ids=["grpo", "sft"])
def test_lora_resume_equals_an_uninterrupted_run(make_trainer, base_dir, tmp_path):
    model, tokenizer = load_lora(base_dir)
    start = adapter(model)
    straight = make_trainer(model, tokenizer, tmp_path / "straight").train()
    expected = adapter(model)
    assert expected.keys() and all("lora_" in n for n in expected)
    assert any(not torch.equal(expected[n], start[n]) for n in expected), "the adapter never moved"

    model, tokenizer = load_lora(base_dir)
    first = make_trainer(model, tokenizer, tmp_path / "resumed")
    first.callbacks.append(StopAt2())
    first.train()
    assert first.state.step == 2 and first.outcome == "stopped"
    assert (tmp_path / "resumed" / "checkpoints" / "step-000002" / "adapter_model.safetensors").exists()

    model, tokenizer = load_lora(base_dir)  # a fresh process's model: a new adapter, as at step 0
    torch.manual_seed(1234)  # whatever the global RNG holds now, the checkpoint's must win
    trainer = make_trainer(model, tokenizer, tmp_path / "resumed")
    resumed = trainer.train(resume_from=True)

    assert trainer.state.step == 3 and trainer.outcome == "completed"
    got = adapter(model)
    assert got.keys() == expected.keys()
    different = [n for n in expected if not torch.equal(got[n], expected[n])]
    assert not different, f"{len(different)} adapter tensors differ after resuming, e.g. {different[:3]}"
    assert resumed[-1]["step"] == straight[-1]["step"] == 3
    assert resumed[-1]["loss"] == straight[-1]["loss"]


def test_an_adapter_checkpoint_missing_weights_the_model_has_is_refused(base_dir, tmp_path):
    """An adapter trained on fewer modules used to load silently, the others keeping fresh values."""
    from dataclasses import replace as replaced

    from r1lib.checkpoint import load_weights, save_checkpoint

    narrow, tokenizer = load_model_and_tokenizer(
        ModelSpec(str(base_dir), lora=replaced(LORA, target_modules=("q_proj",))))
    save_checkpoint(tmp_path / "narrow", narrow, tokenizer)
    wide, _ = load_lora(base_dir)
    with pytest.raises(ValueError, match=r"lacks adapter weights the model has: \[.*(k_proj|v_proj|o_proj)"):
        load_weights(wide, tmp_path / "narrow")
