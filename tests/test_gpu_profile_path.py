"""The GPU profile's code path (hub-style model directory, GSM8K jsonl, LoRA, KL to the adapter-free
reference), run on the CPU with a randomly initialised small Qwen2 model. Nothing is downloaded."""

import json
from dataclasses import replace

import pytest
import torch

from r1lib.checkpoint import latest_checkpoint
from r1lib.experiment import build_experiment
from r1lib.grpo import GRPOTrainer
from r1lib.models import LoraSettings, ModelSpec
from r1lib.profiles import get_profile, with_overrides
from r1lib.tasks import GSM8KTask


def write_gsm8k_jsonl(path, numbers):
    rows = [{"question": f"Sam has {i} pens and gets {i + 2} more. How many pens?", "answer": f"{i}+{i + 2}={2 * i + 2}\n#### {2 * i + 2}"}
            for i in numbers]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_gpu_profile_runs_on_cpu_with_local_files(random_model, tiny_tokenizer, tmp_path):
    model_dir = tmp_path / "qwen2-random"
    # Qwen2.5's context, so that GSM8K's long system prompt (one token per character here) fits: RoPE has no
    # position weights, and a prompt beyond the limit is refused (test_grpo_trainer covers that).
    random_model.config.max_position_embeddings = 32768
    random_model.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    data = tmp_path / "gsm8k"
    data.mkdir()
    write_gsm8k_jsonl(data / "train.jsonl", range(8))
    write_gsm8k_jsonl(data / "test.jsonl", range(100, 104))

    gpu = get_profile("gpu")
    assert gpu.model.name_or_path.startswith("Qwen/") and gpu.model.lora is not None and gpu.task == "gsm8k"
    assert gpu.model.gradient_checkpointing and gpu.grpo.fp16 != gpu.grpo.bf16  # one half precision, from the GPU
    profile = replace(
        # The gpu profile's model settings (LoRA, gradient checkpointing, SDPA) with fp16 turned off for the CPU.
        gpu, model=replace(gpu.model, name_or_path=str(model_dir), device="cpu", dtype="float32", lora=LoraSettings(r=4, alpha=8)),
        data_dir=str(data), num_train_prompts=8, num_eval_prompts=4,
    )
    profile = with_overrides(profile, num_generations=2, per_device_train_batch_size=4, max_completion_length=6,
                             max_steps=2, save_steps=1, eval_steps=2, beta=0.1, learning_rate=1e-2,
                             mask_truncated_completions=False)  # a random model never stops: keep it learning
    profile = with_overrides(profile, fp16=False, bf16=False)
    exp = build_experiment(profile)
    assert exp.model.is_gradient_checkpointing
    assert isinstance(exp.task, GSM8KTask) and exp.train_examples[0].answer == "2"
    assert not {e.question for e in exp.train_examples} & {e.question for e in exp.eval_examples}
    assert exp.tokenizer.apply_chat_template(exp.task.prompt(exp.train_examples[0]), tokenize=False).startswith("A conversation")

    base_before = {n: p.detach().clone() for n, p in exp.model.named_parameters() if "lora" not in n}
    lora_before = {n: p.detach().clone() for n, p in exp.model.named_parameters() if "lora_B" in n}
    def length_reward(prompts, completions, **columns):
        """A random model is never right; reward length so that groups have spread and LoRA learns."""
        return [float(len(c)) for c in completions]

    trainer = GRPOTrainer(exp.model, exp.tokenizer, exp.task, [*exp.reward_funcs, length_reward], exp.train_examples,
                          profile.grpo, tmp_path / "run", eval_examples=exp.eval_examples, progress=False)
    assert trainer.ref_model is None  # the reference is the model with its adapter disabled
    history = trainer.train()

    assert [m["step"] for m in history] == [0, 1, 2]
    # LoRA starts with B = 0: at step 1 the policy is exactly the adapter-free reference, so the k3 KL is
    # exactly 0; the first update moves B, and from step 2 the policy differs from the reference.
    assert history[1]["kl"] == 0.0
    assert history[2]["kl"] > 1e-6
    assert all("rewards/length_reward/mean" in m for m in history[1:])
    assert "eval/pass@1" in history[-1]
    params = dict(exp.model.named_parameters())
    assert all(torch.equal(params[n], p) for n, p in base_before.items())
    assert any(not torch.equal(params[n], p) for n, p in lora_before.items())
    checkpoint = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert checkpoint.name == "step-000002" and (checkpoint / "adapter_model.safetensors").exists()


def test_a_missing_local_model_path_is_not_tried_on_the_hub(tmp_path):
    from r1lib.models import load_model_and_tokenizer

    with pytest.raises(FileNotFoundError, match="no model directory at"):
        load_model_and_tokenizer(ModelSpec(str(tmp_path / "nowhere" / "model")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no model"):
        load_model_and_tokenizer(ModelSpec(str(tmp_path / "empty")))
    with pytest.raises(OSError, match="not a local directory, and loading it from the Hugging Face hub failed"):
        load_model_and_tokenizer(ModelSpec("no-such-owner/no-such-model-r1lib"))
