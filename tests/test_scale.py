"""The way out to a cluster: r1lib's tasks and rewards on TRL, and launch files accelerate accepts."""

import dataclasses
import inspect
import json
import os
import re
import shlex
import subprocess
import time
import warnings
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from r1lib.configs import GRPOConfig
from r1lib.profiles import TINY_BASE, get_profile
from r1lib.scale import (GENERATIONS, SETUPS, LaunchPlan, launch_commands, main, split_batch, to_trl_grpo_config,
                         write_launch)

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def valid_plans():
    """Every valid plan; the precision alternates so that both reach every file."""
    count = 0
    for setup in SETUPS:
        for generation in GENERATIONS:
            for stage in ("grpo", "sft", "distill"):
                gpus = {"single": 1, "ddp": 2, "zero3": 8, "fsdp2": 4}[setup] + (generation == "vllm-server")
                try:
                    plan = LaunchPlan(stage, setup, gpus, generation, ("bf16", "fp16")[count % 2],
                                      teacher="Qwen/Qwen2.5-7B", data=None if stage == "grpo" else "records.jsonl",
                                      lora_r=16)
                except ValueError:
                    continue
                count += 1
                yield plan


def stage_config(profile, stage):
    return {"grpo": profile.grpo, "sft": profile.sft, "distill": profile.distill}[stage]


def test_every_launch_configuration_loads_in_accelerate_trl_and_bash(tmp_path, monkeypatch):
    import trl
    from trl.experimental.gkd import GKDConfig

    monkeypatch.chdir(tmp_path)
    profile = get_profile("gpu")
    plans = list(valid_plans())
    assert len(plans) == 4 * 3 + 4 + 4  # GRPO with each way of generating; SFT and GKD with transformers
    assert {plan.mixed_precision for plan in plans} == {"bf16", "fp16"}
    expected_type = {"single": "NO", "ddp": "MULTI_GPU", "zero3": "DEEPSPEED", "fsdp2": "FSDP"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batches that do not split over 7 processes: tested below
        written = [(plan, write_launch(plan, stage_config(profile, plan.stage), tmp_path / str(i)))
                   for i, plan in enumerate(plans)]
    for plan, paths in written:
        loaded = load_config_from_file(str(paths["accelerate"]))  # accelerate's own loader
        assert loaded.distributed_type.value == expected_type[plan.setup]
        assert loaded.num_processes == plan.training_gpus
        assert loaded.mixed_precision == plan.mixed_precision
        if plan.setup == "zero3":
            assert loaded.deepspeed_config["zero_stage"] == 3
        if plan.setup == "fsdp2":
            assert loaded.fsdp_config["fsdp_version"] == 2
        settings = json.loads(paths["trl"].read_text())
        assert (settings["bf16"], settings["fp16"]) == (plan.mixed_precision == "bf16", plan.mixed_precision == "fp16")
        trl_class = {"grpo": trl.GRPOConfig, "sft": trl.SFTConfig, "distill": GKDConfig}[plan.stage]
        # One process standing for all of them: TRL checks the generation batch over the processes.
        trl_class(**{**settings, "bf16": False, "fp16": False, "use_cpu": True,
                     "per_device_train_batch_size": settings["per_device_train_batch_size"] * plan.training_gpus})
        assert settings.get("use_vllm", False) == (plan.generation != "transformers")
        script = paths["launch"].read_text()
        syntax = subprocess.run(["bash", "-n", str(paths["launch"])], capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
        assert '--config_file "$HERE/accelerate.yaml"' in script and "--lora-r 16" in script
        assert (f"--data {tmp_path / 'records.jsonl'}" in script) == (plan.stage != "grpo")  # made absolute
        assert ("trl vllm-serve" in script) == (plan.generation == "vllm-server")


def test_bad_launch_plans_say_what_to_change():
    with pytest.raises(ValueError, match="with 2 GPUs choose ddp, zero3 or fsdp2"):
        LaunchPlan(setup="single", gpus=2, mixed_precision="bf16")
    with pytest.raises(ValueError, match="needs its own GPU"):
        LaunchPlan(generation="vllm-server", gpus=1, mixed_precision="bf16")
    with pytest.raises(ValueError, match="needs a teacher"):
        LaunchPlan(stage="distill", data="records.jsonl", mixed_precision="bf16")
    with pytest.raises(ValueError, match="the sft stage needs data"):
        LaunchPlan(stage="sft", mixed_precision="bf16")
    with pytest.raises(ValueError, match="LaunchPlan.setup must be one of"):
        LaunchPlan(setup="zero2", mixed_precision="bf16")
    with pytest.raises(ValueError, match="vLLM generation is for the grpo stage"):
        LaunchPlan(stage="sft", generation="vllm-colocate", data="records.jsonl", mixed_precision="bf16")
    with pytest.raises(ValueError, match=r"mixed_precision is required: 'bf16' for target GPUs .* 'fp16'"):
        LaunchPlan()  # the precision is the target's: never a guess


# ---------------------------------------------------------------------------- dependencies

def declared(group: str) -> dict:
    """``{name: Requirement}`` of the project's dependencies (``group`` "") or one optional extra."""
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    requirements = project["dependencies"] if not group else project["optional-dependencies"][group]
    return {Requirement(line).name.lower(): Requirement(line) for line in requirements}


def trl_extra(extra: str, name: str):
    """The specifier of ``name`` in the installed TRL's own ``extra`` (what TRL supports)."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    for line in requires("trl"):
        requirement = Requirement(line)
        if requirement.name == name and requirement.marker and requirement.marker.evaluate({"extra": extra}):
            return requirement.specifier
    raise AssertionError(f"TRL has no {name} in its {extra} extra")


def test_dependencies_are_declared_in_the_tested_ranges():
    from importlib.metadata import version

    base, gpu, scale = declared(""), declared("gpu"), declared("scale")
    # Installed (and tested) versions are inside the ranges, untested ones outside.
    for name, group, outside in (("transformers", base, ["4.57.0", "5.23.0", "6.0.0"]), ("trl", gpu, ["1.15.0", "1.17.0"]),
                                 ("accelerate", gpu, ["1.6.0"])):
        assert version(name) in group[name].specifier, (name, version(name), group[name])
        assert not any(v in group[name].specifier for v in outside), (name, group[name])
    assert "1.7.0" in gpu["accelerate"].specifier  # FSDP2's first release
    assert "pyyaml" in gpu and version("pyyaml") in gpu["pyyaml"].specifier  # r1lib.scale writes accelerate.yaml
    # The scale extra brings DeepSpeed and vLLM in the ranges the pinned TRL supports (its own extras).
    assert "r1lib" in scale and "gpu" in scale["r1lib"].extras
    assert scale["deepspeed"].specifier == trl_extra("deepspeed", "deepspeed")
    assert scale["vllm"].specifier == trl_extra("vllm", "vllm")
    assert "5.1.0" not in scale["transformers"].specifier  # TRL's deepspeed extra excludes it


# ---------------------------------------------------------------------------- launch.sh

def vllm_serve_arguments(script: str) -> list[str]:
    """The arguments launch.sh gives ``trl vllm-serve``."""
    (line,) = [line for line in script.splitlines() if "trl vllm-serve" in line and line.endswith("&")]
    words = shlex.split(line)
    return words[words.index("vllm-serve") + 1:words.index("&")]


@pytest.mark.parametrize("precision, dtype", [("bf16", "bfloat16"), ("fp16", "half")])
def test_vllm_serve_arguments_parse_with_trls_own_parser(precision, dtype, tmp_path):
    """TRL's `trl vllm-serve` parser (trl.scripts.vllm_serve: ScriptArguments and TrlParser, which import
    no vLLM) reads every argument launch.sh passes: an unknown one would go on to `vllm serve` unchecked."""
    from trl.generation.vllm_client import VLLMClient
    from trl.scripts.vllm_serve import build_command, make_parser

    plan = LaunchPlan("grpo", "zero3", 5, "vllm-server", precision, model="Qwen/Qwen2.5-7B")
    paths = write_launch(plan, get_profile("gpu").grpo, tmp_path)
    script, settings = paths["launch"].read_text(), json.loads(paths["trl"].read_text())
    script_args, unknown = make_parser(prog="trl vllm-serve").parse_args_and_config(
        args=vllm_serve_arguments(script), return_remaining_strings=True)
    assert unknown == []
    assert (script_args.model, script_args.dtype) == ("Qwen/Qwen2.5-7B", dtype)
    assert (script_args.host, script_args.port) == (settings["vllm_server_host"], settings["vllm_server_port"])
    command = build_command(script_args)
    assert command[command.index("--dtype") + 1] == dtype
    # launch.sh waits on the health route TRL's own client checks.
    health = re.search(r'base_url\}(/health/?)"', inspect.getsource(VLLMClient.check_server)).group(1)
    assert f"curl -sf http://{script_args.host}:{script_args.port}{health} " in script


STUBS = {
    # A server that starts (and runs until killed), or dies at once.
    "trl": 'echo $$ > "$STUB_LOG/server.pid"\n[ "$STUB_SERVER" = die ] && exit 1\nexec sleep 60\n',
    # Healthy once the server has started, as a real one.
    "curl": 'echo "$@" >> "$STUB_LOG/curl"\n[ "$STUB_SERVER" = healthy ] && [ -f "$STUB_LOG/server.pid" ]\n',
    "accelerate": 'printf "%s\\n" "$PWD" "${CUDA_VISIBLE_DEVICES:-}" "$@" > "$STUB_LOG/accelerate"\n'
                  'exit "${STUB_TRAIN_RC:-0}"\n',
}


def run_launch(script: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run launch.sh from another folder, with stand-ins for trl, curl and accelerate."""
    stubs, log, elsewhere = tmp_path / "stubs", tmp_path / "log", tmp_path / "elsewhere"
    for folder in (stubs, log, elsewhere):
        folder.mkdir(exist_ok=True)
    for name, body in STUBS.items():
        (stubs / name).write_text("#!/usr/bin/env bash\n" + body)
        (stubs / name).chmod(0o755)
    environment = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", "STUB_LOG": str(log),
                   "R1LIB_VLLM_POLL_S": "0.1", **env}
    return subprocess.run(["bash", str(script.resolve())], cwd=elsewhere, env=environment, capture_output=True,
                          text=True, timeout=30)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_stopped(pid: int) -> None:
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid), "launch.sh left the vLLM server running"


def test_launch_script_runs_from_any_folder_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the plan's folder, data and output_dir are given relative to here
    plan = LaunchPlan("sft", "ddp", 2, "transformers", "bf16", data="records.jsonl")
    paths = write_launch(plan, get_profile("gpu").sft, "launch", output_dir="runs/sft")
    result = run_launch(paths["launch"], tmp_path)
    assert result.returncode == 0, result.stderr
    cwd, gpus, *argv = (tmp_path / "log" / "accelerate").read_text().splitlines()
    assert cwd == str(tmp_path / "elsewhere")
    given = {name: argv[argv.index(name) + 1] for name in ("--config_file", "--args", "--data")}
    assert Path(given["--config_file"]) == (tmp_path / "launch" / "accelerate.yaml").resolve()
    assert Path(given["--args"]) == (tmp_path / "launch" / "sft.json").resolve()
    assert given["--data"] == str(tmp_path / "records.jsonl")
    assert gpus == ""  # all GPUs train: no vLLM server holds one
    assert json.loads(paths["trl"].read_text())["output_dir"] == str(tmp_path / "runs" / "sft")
    assert launch_commands(plan, "launch")[0].startswith(f"accelerate launch --config_file {tmp_path}/launch/")


@pytest.fixture
def server_plan(tmp_path):
    plan = LaunchPlan("grpo", "single", 2, "vllm-server", "bf16", model=str(TINY_BASE))
    return write_launch(plan, get_profile("gpu").grpo, tmp_path / "launch")["launch"]


def test_launch_script_trains_once_the_server_is_healthy_then_stops_it(server_plan, tmp_path):
    result = run_launch(server_plan, tmp_path, STUB_SERVER="healthy", STUB_TRAIN_RC="3")
    assert result.returncode == 3, result.stderr  # training's exit status, not the clean-up's
    _, gpus, *argv = (tmp_path / "log" / "accelerate").read_text().splitlines()
    assert gpus == "1" and argv[argv.index("--model") + 1] == str(TINY_BASE)  # GPU 0 is the server's
    assert "-sf http://127.0.0.1:8000/health" in (tmp_path / "log" / "curl").read_text()
    assert_stopped(int((tmp_path / "log" / "server.pid").read_text()))


def test_launch_script_stops_when_the_server_dies(server_plan, tmp_path):
    result = run_launch(server_plan, tmp_path, STUB_SERVER="die")
    assert result.returncode == 1
    assert "the vLLM server (trl vllm-serve) exited before http://127.0.0.1:8000/health answered" in result.stderr
    assert not (tmp_path / "log" / "accelerate").exists()


def test_launch_script_gives_up_on_a_server_that_never_answers(server_plan, tmp_path):
    start = time.monotonic()
    result = run_launch(server_plan, tmp_path, STUB_SERVER="hangs", R1LIB_VLLM_WAIT_S="1")
    assert result.returncode == 1 and time.monotonic() - start < 10
    assert "did not answer http://127.0.0.1:8000/health within 1 s (R1LIB_VLLM_WAIT_S)" in result.stderr
    assert not (tmp_path / "log" / "accelerate").exists()
    assert_stopped(int((tmp_path / "log" / "server.pid").read_text()))


# ---------------------------------------------------------------------------- settings for the target

def test_split_batch_keeps_the_batch_per_optimizer_step():
    assert split_batch(16, 1, 2) == (8, 1) and split_batch(4, 4, 8) == (2, 1) and split_batch(4, 4, 2) == (4, 2)
    assert split_batch(16, 1, 7) is None and split_batch(4, 4, 3) is None
    for per_device in range(1, 17):
        for accumulation in range(1, 5):
            for processes in range(1, 9):
                split = split_batch(per_device, accumulation, processes)
                if split is not None:
                    assert split[0] * split[1] * processes == per_device * accumulation and split[0] <= per_device
                else:
                    assert per_device * accumulation % processes


def test_the_batch_per_step_is_the_configs_on_any_number_of_gpus(tmp_path):
    import trl

    profile = get_profile("gpu")
    assert (profile.grpo.per_device_train_batch_size, profile.grpo.gradient_accumulation_steps) == (16, 1)
    ddp = json.loads(write_launch(LaunchPlan("grpo", "ddp", 2, mixed_precision="bf16"), profile.grpo,
                                  tmp_path / "ddp")["trl"].read_text())
    assert (ddp["per_device_train_batch_size"], ddp["gradient_accumulation_steps"]) == (8, 1)
    trl_config = trl.GRPOConfig(**{**ddp, "bf16": False, "use_cpu": True, "per_device_train_batch_size": 8 * 2})
    assert trl_config.generation_batch_size // trl_config.num_generations == profile.grpo.prompts_per_step == 2
    sft = json.loads(write_launch(LaunchPlan("sft", "zero3", 8, mixed_precision="bf16", data="r.jsonl"), profile.sft,
                                  tmp_path / "sft")["trl"].read_text())
    assert (sft["per_device_train_batch_size"], sft["gradient_accumulation_steps"]) == (1, 2)  # 1 x 16 = 8 x 1 x 2
    with pytest.warns(UserWarning, match=r"batch of 16 completions per optimizer step \(per_device_train_batch_size "
                      r"16 x gradient_accumulation_steps 1\) does not split over 7 training processes.* takes 112 "
                      r"completions \(14 prompts instead of 2\)"):
        paths = write_launch(LaunchPlan("grpo", "zero3", 8, "vllm-server", "bf16"), profile.grpo, tmp_path / "seven")
    assert json.loads(paths["trl"].read_text())["per_device_train_batch_size"] == 16


def test_checkpoints_are_limited(tmp_path):
    profile = get_profile("gpu")
    plan = LaunchPlan("grpo", "zero3", 4, mixed_precision="bf16")
    assert profile.grpo.save_total_limit is None
    written = json.loads(write_launch(plan, profile.grpo, tmp_path / "a")["trl"].read_text())
    assert written["save_total_limit"] == 2
    kept = dataclasses.replace(profile.grpo, save_total_limit=5)
    assert json.loads(write_launch(plan, kept, tmp_path / "b")["trl"].read_text())["save_total_limit"] == 5


def test_write_needs_the_targets_precision(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["write", "--stage", "grpo", "--out", str(tmp_path / "none")])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "--precision is required (bf16 or fp16): it is the target GPUs', not this machine's" in error
    main(["write", "--stage", "grpo", "--setup", "ddp", "--gpus", "3", "--generation", "vllm-server",
          "--precision", "fp16", "--out", str(tmp_path / "t4")])
    assert load_config_from_file(str(tmp_path / "t4" / "accelerate.yaml")).mixed_precision == "fp16"
    settings = json.loads((tmp_path / "t4" / "grpo.json").read_text())
    assert (settings["fp16"], settings["bf16"]) == (True, False)
    assert "--dtype half" in (tmp_path / "t4" / "launch.sh").read_text()


def test_another_model_needs_its_own_learning_rate_and_lora_rank(tmp_path, capsys):
    profile = get_profile("gpu")
    base = ["write", "--stage", "grpo", "--precision", "bf16", "--setup", "zero3", "--gpus", "8"]
    with pytest.raises(SystemExit):
        main([*base, "--model", "Qwen/Qwen2.5-7B", "--out", str(tmp_path / "a")])
    assert ("the gpu profile's learning rate (1e-05) and LoRA rank 16 were chosen for Qwen/Qwen2.5-0.5B, not for "
            "Qwen/Qwen2.5-7B: pass --learning-rate and --lora-r") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--model", "Qwen/Qwen2.5-7B", "--lora-r", "0", "--out", str(tmp_path / "b")])
    assert "not for Qwen/Qwen2.5-7B: pass --learning-rate for it" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    main([*base, "--model", "Qwen/Qwen2.5-7B", "--lora-r", "0", "--learning-rate", "1e-6",
          "--out", str(tmp_path / "c")])
    assert json.loads((tmp_path / "c" / "grpo.json").read_text())["learning_rate"] == 1e-6
    script = (tmp_path / "c" / "launch.sh").read_text()
    assert "--model Qwen/Qwen2.5-7B" in script and "--lora-r" not in script  # all weights
    main([*base, "--out", str(tmp_path / "d")])  # the profile's own model: its settings hold
    assert json.loads((tmp_path / "d" / "grpo.json").read_text())["learning_rate"] == profile.grpo.learning_rate
    script = (tmp_path / "d" / "launch.sh").read_text()
    assert f"--model {profile.model.name_or_path}" in script and "--lora-r 16" in script


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


@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
def test_gkd_divergences_match_their_names(divergence):
    """r1lib's divergence, translated to GKD's beta, is the divergence TRL's loss computes: checked
    against the value by hand on two distributions over two tokens."""
    import math

    import torch
    from trl.experimental.gkd import GKDTrainer

    from r1lib.configs import DistillConfig
    from r1lib.scale import gkd_settings

    student, teacher = (0.5, 0.5), (0.9, 0.1)
    beta = gkd_settings(DistillConfig(divergence=divergence))["beta"]

    def kl(p, q):
        return sum(a * math.log(a / b) for a, b in zip(p, q))

    mixture = [(1 - beta) * s + beta * t for s, t in zip(student, teacher)]
    expected = {"forward_kl": kl(teacher, student), "reverse_kl": kl(student, teacher),
                "jsd": beta * kl(teacher, mixture) + (1 - beta) * kl(student, mixture)}[divergence]
    loss = GKDTrainer.generalized_jsd_loss(torch.tensor([[student]]).log(), torch.tensor([[teacher]]).log(), beta=beta)
    assert expected > 0.05 and loss.item() == pytest.approx(expected, rel=1e-5)


def test_trl_grpo_trains_two_steps_on_the_tiny_model_with_r1lib_rewards(tmp_path, monkeypatch, capsys):
    """The command line end to end: write the single-GPU files, shrink the run, and train with TRL."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    main(["write", "--stage", "grpo", "--profile", "smoke", "--out", str(tmp_path / "launch"),
          "--output-dir", str(tmp_path / "run"), "--model", str(TINY_BASE), "--task", "chain", "--precision", "bf16"])
    assert f"bash {tmp_path / 'launch' / 'launch.sh'}" in capsys.readouterr().out
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
    from r1lib.records import PromptCompletion, save_jsonl
    from r1lib.tasks import ChainTask

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    task = ChainTask()
    records = [PromptCompletion(task.prompt(e), f"<think>{e.question}</think><answer>{e.answer}</answer>")
               for e in task.generate(16, seed=0)]
    save_jsonl(records, tmp_path / "records.jsonl")
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
    assert len(losses) == 2
    if stage == "sft":
        assert all(loss > 0.1 for loss in losses)  # the base's cross-entropy on the records (about 1.3)
    else:
        # The teacher is the student: before any update the divergence is 0, up to float error of either sign
        # (-1.3e-10 seen); it never goes below that. That it is positive for distributions that differ is
        # checked in test_gkd_divergences_match_their_names.
        assert abs(losses[0]) < 1e-6 and all(loss > -1e-6 for loss in losses)
    assert (tmp_path / "run" / "model.safetensors").is_file()
