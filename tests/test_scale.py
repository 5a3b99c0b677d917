"""The way out to a cluster: r1lib's tasks and rewards on TRL, and launch files accelerate accepts."""

import dataclasses
import json

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from r1lib.configs import GRPOConfig
from r1lib.profiles import TINY_BASE, get_profile
from r1lib.scale import GENERATIONS, SETUPS, LaunchPlan, main, to_trl_grpo_config, write_launch


def valid_plans():
    for setup in SETUPS:
        for generation in GENERATIONS:
            for stage in ("grpo", "sft", "distill"):
                gpus = {"single": 1, "ddp": 2, "zero3": 8, "fsdp2": 4}[setup] + (generation == "vllm-server")
                try:
                    yield LaunchPlan(stage, setup, gpus, generation, teacher="Qwen/Qwen2.5-7B",
                                     data=None if stage == "grpo" else "records.jsonl", lora_r=16)
                except ValueError:
                    continue


def test_every_launch_configuration_loads_in_accelerate_and_trl(tmp_path):
    import trl
    from trl.experimental.gkd import GKDConfig

    profile = get_profile("gpu")
    plans = list(valid_plans())
    assert len(plans) == 4 * 3 + 4 + 4  # GRPO with each way of generating; SFT and GKD with transformers
    expected_type = {"single": "NO", "ddp": "MULTI_GPU", "zero3": "DEEPSPEED", "fsdp2": "FSDP"}
    for i, plan in enumerate(plans):
        config = {"grpo": profile.grpo, "sft": profile.sft, "distill": profile.distill}[plan.stage]
        paths = write_launch(plan, config, tmp_path / str(i))
        loaded = load_config_from_file(str(paths["accelerate"]))
        assert loaded.distributed_type.value == expected_type[plan.setup] and loaded.num_processes == plan.training_gpus
        if plan.setup == "zero3":
            assert loaded.deepspeed_config["zero_stage"] == 3
        if plan.setup == "fsdp2":
            assert loaded.fsdp_config["fsdp_version"] == 2
        settings = json.loads(paths["trl"].read_text())
        trl_class = {"grpo": trl.GRPOConfig, "sft": trl.SFTConfig, "distill": GKDConfig}[plan.stage]
        trl_class(**{**settings, "bf16": False, "fp16": False, "use_cpu": True})
        assert settings.get("use_vllm", False) == (plan.generation != "transformers")
        script = paths["launch"].read_text()
        assert f"--config_file {paths['accelerate']}" in script and "--lora-r 16" in script
        assert ("--data records.jsonl" in script) == (plan.stage != "grpo")
        assert ("trl vllm-serve" in script) == (plan.generation == "vllm-server")


def test_bad_launch_plans_say_what_to_change():
    with pytest.raises(ValueError, match="with 2 GPUs choose ddp, zero3 or fsdp2"):
        LaunchPlan(setup="single", gpus=2)
    with pytest.raises(ValueError, match="needs its own GPU"):
        LaunchPlan(generation="vllm-server", gpus=1)
    with pytest.raises(ValueError, match="needs a teacher"):
        LaunchPlan(stage="distill", data="records.jsonl")
    with pytest.raises(ValueError, match="the sft stage needs data"):
        LaunchPlan(stage="sft")
    with pytest.raises(ValueError, match="LaunchPlan.setup must be one of"):
        LaunchPlan(setup="zero2")
    with pytest.raises(ValueError, match="vLLM generation is for the grpo stage"):
        LaunchPlan(stage="sft", generation="vllm-colocate", data="records.jsonl")


def test_shared_settings_keep_their_values_in_trl(tmp_path):
    config = GRPOConfig(num_generations=4, per_device_train_batch_size=8, learning_rate=3e-5, warmup_ratio=0.1,
                        max_steps=50, beta=0.02, epsilon=0.25, loss_type="dr_grpo", scale_rewards="none",
                        max_completion_length=33, num_iterations=2, lr_scheduler_type="cosine")
    trl_config = to_trl_grpo_config(config, tmp_path)
    for name in ("num_generations", "per_device_train_batch_size", "learning_rate", "max_steps", "beta", "epsilon",
                 "loss_type", "scale_rewards", "max_completion_length", "num_iterations"):
        assert getattr(trl_config, name) == getattr(config, name), name
    assert trl_config.lr_scheduler_type.value == "cosine" and trl_config.warmup_steps == 5  # 10% of 50 steps


def test_sft_and_gkd_settings_translate(tmp_path):
    from r1lib.configs import DistillConfig, SFTConfig
    from r1lib.scale import to_trl_gkd_config, to_trl_sft_config

    sft = to_trl_sft_config(SFTConfig(max_steps=7, learning_rate=1e-4), tmp_path)
    assert sft.max_steps == 7 and sft.learning_rate == 1e-4
    epochs = to_trl_sft_config(SFTConfig(num_train_epochs=2), tmp_path)
    assert epochs.num_train_epochs == 2 and epochs.max_steps == -1  # r1lib's epochs win, as in r1lib
    gkd = to_trl_gkd_config(DistillConfig(divergence="reverse_kl", lmbda=0.5, temperature=0.8), tmp_path)
    assert (gkd.beta, gkd.lmbda, gkd.temperature) == (1.0, 0.5, 0.8)
    with pytest.warns(UserWarning, match="kd_temperature"):
        to_trl_gkd_config(DistillConfig(kd_temperature=2.0), tmp_path)


def test_trl_grpo_trains_two_steps_on_the_tiny_model_with_r1lib_rewards(tmp_path, monkeypatch, capsys):
    """The command line end to end: write the single-GPU files, shrink the run, and train with TRL."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    main(["write", "--stage", "grpo", "--profile", "smoke", "--out", str(tmp_path / "launch"),
          "--output-dir", str(tmp_path / "run"), "--model", str(TINY_BASE), "--task", "chain", "--precision", "bf16"])
    assert "accelerate launch --config_file" in capsys.readouterr().out
    settings_path = tmp_path / "launch" / "grpo.json"
    settings = json.loads(settings_path.read_text())
    settings.update(max_steps=2, save_steps=2, per_device_train_batch_size=8, num_generations=4, bf16=False,
                    max_completion_length=24, logging_steps=1, use_cpu=True, log_completions=False)
    settings_path.write_text(json.dumps(settings))
    main(["train", "--stage", "grpo", "--args", str(settings_path), "--model", str(TINY_BASE), "--task", "chain",
          "--num-train-prompts", "16"])
    state = json.loads((tmp_path / "run" / "checkpoint-2" / "trainer_state.json").read_text())
    steps = [entry for entry in state["log_history"] if "rewards/accuracy/mean" in entry]
    assert [entry["step"] for entry in steps] == [1, 2]
    assert all(0.0 <= entry["rewards/accuracy/mean"] <= 1.0 and "rewards/format_reward/mean" in entry for entry in steps)
    assert any(entry["rewards/format_reward/mean"] > 0 for entry in steps)  # the base writes the format sometimes
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize("stage", ["sft", "distill"])
def test_trl_sft_and_gkd_train_two_steps_on_r1lib_records(stage, tmp_path, monkeypatch):
    """`train --stage sft|distill` on a jsonl the pipeline would write: TRL's SFTTrainer and GKD trainer."""
    from r1lib.sft import SFTExample, save_sft_jsonl
    from r1lib.tasks import ChainTask

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    task = ChainTask()
    records = [SFTExample(task.prompt(e), f"<think>{e.question}</think><answer>{e.answer}</answer>")
               for e in task.generate(16, seed=0)]
    save_sft_jsonl(records, tmp_path / "records.jsonl")
    main(["write", "--stage", stage, "--profile", "smoke", "--out", str(tmp_path / "launch"), "--precision", "bf16",
          "--output-dir", str(tmp_path / "run"), "--model", str(TINY_BASE), "--data", str(tmp_path / "records.jsonl"),
          *(["--teacher", str(TINY_BASE)] if stage == "distill" else [])])
    settings_path = tmp_path / "launch" / f"{stage}.json"
    settings = json.loads(settings_path.read_text())
    settings.update(max_steps=2, save_steps=2, per_device_train_batch_size=4, bf16=False, logging_steps=1, use_cpu=True)
    if stage == "distill":
        settings.update(lmbda=0.5, max_new_tokens=8)  # one of the two steps samples on-policy (seeded)
    settings_path.write_text(json.dumps(settings))
    main(["train", "--stage", stage, "--args", str(settings_path), "--model", str(TINY_BASE),
          "--data", str(tmp_path / "records.jsonl"), *(["--teacher", str(TINY_BASE)] if stage == "distill" else [])])
    state = json.loads((tmp_path / "run" / "checkpoint-2" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 2 and all(loss >= 0 for loss in losses)
    if stage == "distill":
        assert losses[0] < 1e-4  # the teacher is the student: a divergence of zero (up to float error)
    assert (tmp_path / "run" / "model.safetensors").is_file()
