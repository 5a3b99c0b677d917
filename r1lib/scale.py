"""The way out to a cluster: the course's tasks and rewards, unchanged, on TRL and accelerate.

r1lib's own trainers are for one device and for reading. Beyond one GPU, the same
:class:`~r1lib.tasks.base.Task` objects and reward functions plug into TRL's trainers, which
accelerate spreads over several GPUs (DDP, DeepSpeed ZeRO-3 or FSDP2) and which can sample with
vLLM, either inside the training processes (*colocate*) or from a separate ``trl vllm-serve``.

Two commands::

    # write accelerate.yaml, the TRL settings (grpo.json) and launch.sh for 8 GPUs, one serving vLLM
    python -m r1lib.scale write --stage grpo --setup zero3 --gpus 8 --generation vllm-server --out launch/
    bash launch/launch.sh

    # what launch.sh runs in every process: TRL's GRPOTrainer with r1lib's task and rewards
    python -m r1lib.scale train --stage grpo --args launch/grpo.json --model Qwen/Qwen2.5-1.5B --task gsm8k

In Python, :func:`trl_grpo_trainer` builds the TRL trainer from r1lib objects, and
``to_trl_*_config`` translate r1lib configs (which use TRL's names) into TRL's classes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .configs import DistillConfig, GRPOConfig, SFTConfig
from .rewards import RewardFunc, format_reward, make_accuracy_reward
from .tasks.base import Example, Task

STAGES = ("grpo", "sft", "distill")
SETUPS = ("single", "ddp", "zero3", "fsdp2")
GENERATIONS = ("transformers", "vllm-colocate", "vllm-server")
PRECISIONS = ("bf16", "fp16")


# ---------------------------------------------------------------------------- r1lib -> TRL

def trl_dataset(task: Task, examples: Sequence[Example]):
    """A ``datasets.Dataset`` in TRL's conversational prompt format, with the columns r1lib's rewards read."""
    from datasets import Dataset

    if not examples:
        raise ValueError("no examples to turn into a dataset")
    return Dataset.from_list([{"prompt": list(task.prompt(e)), "answer": e.answer, "question": e.question}
                              for e in examples])


def _shared_settings(config, trl_class, skip: set[str]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(trl_class)}
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                if f.name in names and f.name not in skip}
    settings["warmup_steps"] = config.num_warmup_steps  # r1lib's warmup_ratio, resolved (transformers 5 dropped it)
    if settings.get("num_train_epochs", 0) is None:
        del settings["num_train_epochs"]  # r1lib: None means "count max_steps"; transformers wants a number
    elif "num_train_epochs" in settings:
        settings["max_steps"] = -1  # in r1lib epochs override max_steps; in transformers max_steps > 0 would win
    settings["lr_scheduler_kwargs"] = dict(config.lr_scheduler_kwargs) or None
    return settings


def _runtime_settings(output_dir: str | Path) -> dict[str, Any]:
    return dict(output_dir=str(output_dir), report_to="none", use_cpu=not torch.cuda.is_available(),
                save_strategy="steps", eval_strategy="no")


def grpo_settings(config: GRPOConfig) -> dict[str, Any]:
    """TRL ``GRPOConfig`` keyword arguments for every setting r1lib's ``config`` shares with it (the
    same names mean the same things; ``per_device_train_batch_size`` counts completions in both).
    r1lib-only settings (dynamic sampling, the evaluation sample) have no TRL counterpart."""
    import trl

    if not isinstance(config, GRPOConfig):
        raise TypeError(f"need an r1lib GRPOConfig, got {type(config).__name__}")
    if config.dynamic_sampling:
        warnings.warn("TRL's GRPOTrainer has no dynamic sampling: groups with one reward get zero advantage",
                      stacklevel=3)
    settings = _shared_settings(config, trl.GRPOConfig, skip={"log_completions", "eval_steps"})
    # TRL's log_completions prints a table at every logging step: the count is kept, the switch left to the user.
    settings.update(log_completions=False, num_completions_to_print=config.log_completions or None)
    return settings


def sft_settings(config: SFTConfig) -> dict[str, Any]:
    """TRL ``SFTConfig`` keyword arguments from r1lib's (loss on the completion only in both)."""
    import trl

    if not isinstance(config, SFTConfig) or isinstance(config, DistillConfig):
        raise TypeError(f"need an r1lib SFTConfig, got {type(config).__name__}")
    return _shared_settings(config, trl.SFTConfig, skip={"eval_steps"})


def gkd_settings(config: DistillConfig) -> dict[str, Any]:
    """TRL's (experimental) ``GKDConfig`` keyword arguments from r1lib's ``DistillConfig``: ``lmbda``
    is the share of on-policy batches in both, and the divergence becomes GKD's ``beta`` (0 forward
    KL, 1 reverse KL, between them the generalised JSD). ``top_k`` has no GKD counterpart."""
    from trl.experimental.gkd import GKDConfig

    if not isinstance(config, DistillConfig):
        raise TypeError(f"need an r1lib DistillConfig, got {type(config).__name__}")
    settings = _shared_settings(config, GKDConfig, skip={"eval_steps", "beta", "temperature"})
    settings.update(beta={"forward_kl": 0.0, "reverse_kl": 1.0}.get(config.divergence, config.beta),
                    temperature=config.temperature)
    dropped = [name for name, default in (("kd_temperature", 1.0), ("top_k", None)) if getattr(config, name) != default]
    if dropped:
        warnings.warn(f"TRL's GKD trainer has no counterpart of {dropped}: they are dropped", stacklevel=3)
    return settings


def to_trl_grpo_config(config: GRPOConfig, output_dir: str | Path, **overrides: Any):
    """TRL's ``GRPOConfig`` equivalent to ``config`` (see :func:`grpo_settings`), writing to ``output_dir``."""
    import trl

    return trl.GRPOConfig(**{**grpo_settings(config), **_runtime_settings(output_dir), **overrides})


def to_trl_sft_config(config: SFTConfig, output_dir: str | Path, **overrides: Any):
    """TRL's ``SFTConfig`` equivalent to ``config``, writing to ``output_dir``."""
    import trl

    return trl.SFTConfig(**{**sft_settings(config), **_runtime_settings(output_dir), **overrides})


def to_trl_gkd_config(config: DistillConfig, output_dir: str | Path, **overrides: Any):
    """TRL's ``GKDConfig`` equivalent to ``config`` (see :func:`gkd_settings`), writing to ``output_dir``."""
    from trl.experimental.gkd import GKDConfig

    return GKDConfig(**{**gkd_settings(config), **_runtime_settings(output_dir), **overrides})


def trl_grpo_trainer(model, tokenizer, task: Task, train_examples: Sequence[Example], args,
                     reward_funcs: Sequence[RewardFunc] | None = None, **kwargs: Any):
    """TRL's ``GRPOTrainer`` on an r1lib task, with r1lib's reward functions (by default R1-Zero's
    accuracy and format rewards). ``model`` is a loaded model or a hub name / path (with ZeRO-3,
    pass the name so that TRL loads it sharded); ``args`` a TRL ``GRPOConfig``
    (see :func:`to_trl_grpo_config`)."""
    import trl

    rewards = list(reward_funcs) if reward_funcs is not None else [make_accuracy_reward(task), format_reward]
    return trl.GRPOTrainer(model=model, processing_class=tokenizer, args=args, reward_funcs=rewards,
                           train_dataset=trl_dataset(task, train_examples), **kwargs)


# ---------------------------------------------------------------------------- launch plans

@dataclass(frozen=True)
class LaunchPlan:
    """Where and how a stage runs: how many GPUs, how they share the model, how it samples."""

    stage: str = "grpo"
    setup: str = "single"  # one GPU, DDP (each GPU a full copy), DeepSpeed ZeRO-3 or FSDP2 (sharded)
    gpus: int = 1
    generation: str = "transformers"  # or vLLM in the training processes, or a separate vLLM server
    mixed_precision: str = "bf16"  # "fp16" on GPUs older than compute capability 8.0 (a T4)
    model: str = "Qwen/Qwen2.5-1.5B"
    teacher: str | None = None  # the distillation teacher
    task: str = "gsm8k"  # the grpo stage's r1lib task
    data: str | None = None  # the sft and distill stages' records (jsonl in TRL's prompt-completion shape)
    lora_r: int | None = None  # train a LoRA adapter of this rank instead of all weights

    def __post_init__(self) -> None:
        for name, allowed in (("stage", STAGES), ("setup", SETUPS), ("generation", GENERATIONS),
                              ("mixed_precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"LaunchPlan.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 1:
            raise ValueError(f"LaunchPlan.gpus must be a positive integer, got {self.gpus!r}")
        if self.generation == "vllm-server" and self.gpus < 2:
            raise ValueError("a separate vLLM server needs its own GPU: use gpus >= 2, or generation 'vllm-colocate'")
        if self.setup == "single" and self.training_gpus != 1:
            raise ValueError(f"setup 'single' trains on one GPU; with {self.gpus} GPUs choose ddp, zero3 or fsdp2")
        if self.setup != "single" and self.training_gpus < 2:
            raise ValueError(f"setup {self.setup!r} needs at least two training GPUs (have {self.training_gpus})")
        if self.generation != "transformers" and self.stage != "grpo":
            raise ValueError(f"vLLM generation is for the grpo stage ({self.stage} here: SFT samples nothing, and "
                             "TRL's GKD trainer samples with transformers); use generation 'transformers'")
        if self.stage == "distill" and not self.teacher:
            raise ValueError("the distill stage needs a teacher model")
        if self.stage != "grpo" and not self.data:
            raise ValueError(f"the {self.stage} stage needs data: a jsonl of prompt-completion records (e.g. the "
                             "pipeline's cold_start.jsonl or rejection.jsonl)")
        if self.lora_r is not None and (isinstance(self.lora_r, bool) or not isinstance(self.lora_r, int) or self.lora_r < 1):
            raise ValueError(f"LaunchPlan.lora_r must be None or a positive integer, got {self.lora_r!r}")

    @property
    def training_gpus(self) -> int:
        """GPUs that train (all but the one serving vLLM)."""
        return self.gpus - 1 if self.generation == "vllm-server" else self.gpus


def accelerate_config(plan: LaunchPlan) -> dict[str, Any]:
    """The ``accelerate launch --config_file`` settings for ``plan``."""
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE", "debug": False, "machine_rank": 0, "num_machines": 1,
        "num_processes": plan.training_gpus, "main_training_function": "main", "mixed_precision": plan.mixed_precision,
        "rdzv_backend": "static", "same_network": True, "use_cpu": False, "downcast_bf16": "no",
    }
    if plan.setup == "single":
        config["distributed_type"] = "NO"
    elif plan.setup == "ddp":
        config["distributed_type"] = "MULTI_GPU"
    elif plan.setup == "zero3":
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = {
            "zero_stage": 3, "zero3_init_flag": True, "zero3_save_16bit_model": True,
            "offload_optimizer_device": "none", "offload_param_device": "none", "deepspeed_multinode_launcher": "standard",
        }
    else:
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_reshard_after_forward": True,
            "fsdp_cpu_ram_efficient_loading": True, "fsdp_offload_params": False,
            "fsdp_state_dict_type": "FULL_STATE_DICT", "fsdp_activation_checkpointing": False,
        }
    return config


def trl_settings(plan: LaunchPlan, config: GRPOConfig | SFTConfig | DistillConfig, output_dir: str) -> dict[str, Any]:
    """The TRL config for ``plan``'s stage as a JSON-able dict (what ``train --args`` reads); it is
    checked by building the TRL config once."""
    settings = {"grpo": grpo_settings, "sft": sft_settings, "distill": gkd_settings}[plan.stage](config)
    settings.update(bf16=plan.mixed_precision == "bf16", fp16=plan.mixed_precision == "fp16")
    if plan.generation == "vllm-colocate":
        settings.update(use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.3)
    elif plan.generation == "vllm-server":
        settings.update(use_vllm=True, vllm_mode="server", vllm_server_host="127.0.0.1", vllm_server_port=8000)
    settings.update(_runtime_settings(output_dir))
    del settings["use_cpu"]  # decided where it runs
    convert = {"grpo": to_trl_grpo_config, "sft": to_trl_sft_config, "distill": to_trl_gkd_config}[plan.stage]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checked = {k: v for k, v in settings.items() if k != "output_dir"}
        convert(config, output_dir, **{**checked, "bf16": False, "fp16": False, "use_cpu": True})  # on any machine
    return settings


def launch_commands(plan: LaunchPlan, folder: str | Path) -> list[str]:
    """The shell commands that run ``plan`` from ``folder`` (where :func:`write_launch` put its files)."""
    folder = Path(folder)
    dtype = "bfloat16" if plan.mixed_precision == "bf16" else "half"  # vLLM on a T4 must be told half
    train = (f"accelerate launch --config_file {shlex.quote(str(folder / 'accelerate.yaml'))} -m r1lib.scale train "
             f"--stage {plan.stage} --args {shlex.quote(str(folder / (plan.stage + '.json')))} "
             f"--model {shlex.quote(plan.model)}")
    train += f" --task {plan.task}" if plan.stage == "grpo" else f" --data {shlex.quote(str(plan.data))}"
    if plan.teacher:
        train += f" --teacher {shlex.quote(plan.teacher)}"
    if plan.lora_r:
        train += f" --lora-r {plan.lora_r}"
    if plan.generation != "vllm-server":
        return [train]
    rest = ",".join(str(i) for i in range(1, plan.gpus))
    return [
        f"CUDA_VISIBLE_DEVICES=0 trl vllm-serve --model {shlex.quote(plan.model)} --dtype {dtype} "
        "--host 127.0.0.1 --port 8000 &",
        "SERVER=$!; trap 'kill $SERVER' EXIT  # the server holds GPU 0 until training ends",
        "until curl -sf http://127.0.0.1:8000/health >/dev/null; do sleep 5; done  # wait for the server",
        f"CUDA_VISIBLE_DEVICES={rest} {train}",
    ]


def write_launch(plan: LaunchPlan, config: GRPOConfig | SFTConfig | DistillConfig, folder: str | Path,
                 output_dir: str = "runs/scale") -> dict[str, Path]:
    """Write ``accelerate.yaml``, ``<stage>.json`` (TRL settings) and ``launch.sh`` into ``folder``."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"accelerate": folder / "accelerate.yaml", "trl": folder / f"{plan.stage}.json", "launch": folder / "launch.sh"}
    paths["accelerate"].write_text(yaml.safe_dump(accelerate_config(plan), sort_keys=True))
    paths["trl"].write_text(json.dumps(trl_settings(plan, config, output_dir), indent=2, sort_keys=True) + "\n")
    script = ["#!/usr/bin/env bash", f"# {plan}", "set -euo pipefail", *launch_commands(plan, folder)]
    paths["launch"].write_text("\n".join(script) + "\n")
    paths["launch"].chmod(0o755)
    return paths


# ---------------------------------------------------------------------------- the command line

def _train(args: argparse.Namespace) -> None:
    import trl

    from .models import load_tokenizer, resolve_model_location
    from .tasks.registry import load_task

    settings = json.loads(Path(args.args).read_text())
    extra = {}
    if args.lora_r:
        from peft import LoraConfig

        extra["peft_config"] = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, target_modules="all-linear",
                                          task_type="CAUSAL_LM")
    location, local = resolve_model_location(args.model)
    tokenizer = load_tokenizer(location, local_files_only=local)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if args.stage == "grpo":
        data = load_task(args.task, args.num_train_prompts, 0, args.seed, args.data_dir)
        trainer = trl_grpo_trainer(location, tokenizer, data.task, data.train, trl.GRPOConfig(**settings), **extra)
    else:
        from datasets import Dataset

        from .sft import load_sft_jsonl

        if not args.data:
            raise SystemExit(f"the {args.stage} stage needs --data, a jsonl of prompt/completion records")
        records = [e.to_record() for e in load_sft_jsonl(args.data)]
        if args.stage == "sft":
            trainer = trl.SFTTrainer(model=location, processing_class=tokenizer, args=trl.SFTConfig(**settings),
                                     train_dataset=Dataset.from_list(records), **extra)
        else:
            from trl.experimental.gkd import GKDConfig, GKDTrainer

            messages = [{"messages": r["prompt"] + r["completion"]} for r in records]
            trainer = GKDTrainer(model=location, teacher_model=args.teacher, processing_class=tokenizer,
                                 args=GKDConfig(**settings), train_dataset=Dataset.from_list(messages), **extra)
    trainer.train(resume_from_checkpoint=args.resume or None)
    trainer.save_model()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m r1lib.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write accelerate and TRL configurations and launch.sh")
    write.add_argument("--stage", choices=STAGES, default="grpo")
    write.add_argument("--setup", choices=SETUPS, default="single")
    write.add_argument("--gpus", type=int, default=1)
    write.add_argument("--generation", choices=GENERATIONS, default="transformers")
    write.add_argument("--precision", choices=PRECISIONS, default=None, help="default: from this machine's GPU, else bf16")
    write.add_argument("--model", default="Qwen/Qwen2.5-1.5B")
    write.add_argument("--teacher", default=None)
    write.add_argument("--task", default="gsm8k", help="the grpo stage's task (an r1lib task name)")
    write.add_argument("--data", default=None, help="sft/distill: a jsonl of prompt-completion records")
    write.add_argument("--lora-r", type=int, default=None,
                       help="LoRA rank (default: the profile's, e.g. 16 for gpu); 0 trains all weights")
    write.add_argument("--profile", default="gpu", help="the r1lib profile whose stage config is translated")
    write.add_argument("--output-dir", default="runs/scale", help="where the TRL run writes checkpoints")
    write.add_argument("--out", required=True, help="folder for the written files")
    train = commands.add_parser("train", help="run one stage with TRL (what launch.sh starts in each process)")
    train.add_argument("--stage", choices=STAGES, required=True)
    train.add_argument("--args", required=True, help="the TRL settings written by `write`")
    train.add_argument("--model", required=True)
    train.add_argument("--teacher", default=None)
    train.add_argument("--task", default="gsm8k")
    train.add_argument("--data", default=None, help="SFT/distillation records (jsonl)")
    train.add_argument("--data-dir", default=None, help="local task files (e.g. gsm8k train.jsonl); default: the hub")
    train.add_argument("--num-train-prompts", type=int, default=7473)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--lora-r", type=int, default=None, help="train a LoRA adapter of this rank")
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir")
    args = parser.parse_args(argv)
    if args.command == "train":
        _train(args)
        return
    from .hardware import device_info, mixed_precision
    from .profiles import get_profile

    info = device_info()
    precision = args.precision or (mixed_precision(info) if info.kind == "cuda" else "bf16")
    profile = get_profile(args.profile)
    lora_r = args.lora_r if args.lora_r is not None else (profile.model.lora.r if profile.model.lora else None)
    plan = LaunchPlan(args.stage, args.setup, args.gpus, args.generation, precision, args.model, args.teacher,
                      args.task, args.data, lora_r or None)
    config = {"grpo": profile.grpo, "sft": profile.sft, "distill": profile.distill}[args.stage]
    paths = write_launch(plan, config, args.out, args.output_dir)
    for path in paths.values():
        print(f"wrote {path}")
    print("run:\n  " + "\n  ".join(launch_commands(plan, args.out)))


if __name__ == "__main__":
    main()
