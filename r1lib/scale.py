"""The way out to a cluster: the course's tasks and rewards, unchanged, on TRL and accelerate.

r1lib's own trainers are for one device and for reading. Beyond one GPU, the same
:class:`~r1lib.tasks.base.Task` objects and reward functions plug into TRL's trainers, which
accelerate spreads over several GPUs (DDP, DeepSpeed ZeRO-3 or FSDP2) and which can sample with
vLLM, either inside the training processes (*colocate*) or from a separate ``trl vllm-serve``.

Two commands::

    # write accelerate.yaml, the TRL settings (grpo.json) and launch.sh for 8 H100s, one serving vLLM
    python -m r1lib.scale write --stage grpo --setup zero3 --gpus 8 --generation vllm-server --precision bf16 \
        --out launch/
    bash launch/launch.sh

    # what launch.sh runs in every process: TRL's GRPOTrainer with r1lib's task and rewards
    python -m r1lib.scale train --stage grpo --args launch/grpo.json --model Qwen/Qwen2.5-0.5B --task gsm8k

The precision is the target GPUs' (``--precision``), never the writing machine's. A profile's
learning rate and LoRA rank were chosen for its own model: for another ``--model``, ``write`` asks for
``--learning-rate`` and ``--lora-r``. The batch of one optimizer step stays the config's on any number
of GPUs (split over the processes), and a warning names the numbers when it cannot be split.

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
from dataclasses import dataclass, field
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
SAVE_TOTAL_LIMIT = 2  # checkpoints kept: the newest to resume from, and one in case the newest was cut short
VLLM_HOST, VLLM_PORT = "127.0.0.1", 8000
VLLM_HEALTH = "/health"  # vLLM's route, which `trl vllm-serve` (TRL 1.16: `vllm serve`) and TRL's client use
VLLM_WAIT_S = 1200  # default wait for the server (launch.sh: R1LIB_VLLM_WAIT_S): loading a 7B and compiling


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

    stage: str = field(
        default="grpo",
        metadata={"help": f"The stage to run, one of {', '.join(STAGES)}."},
    )
    setup: str = field(
        default="single",
        metadata={"help": "How the GPUs share the model: 'single' (one GPU), 'ddp' (each GPU a full copy), "
                          "'zero3' (DeepSpeed ZeRO-3) or 'fsdp2' (FSDP2), the last two sharded."},
    )
    gpus: int = field(
        default=1,
        metadata={"help": "GPUs on the machine, including the one a separate vLLM server takes."},
    )
    generation: str = field(
        default="transformers",
        metadata={"help": "How the grpo stage samples: 'transformers', 'vllm-colocate' (vLLM in the training "
                          "processes) or 'vllm-server' (a separate vLLM server on its own GPU)."},
    )
    mixed_precision: str | None = field(
        default=None,
        metadata={"help": "The target GPUs' precision, required: 'bf16' from compute capability 8.0 (A100, H100), "
                          "'fp16' below (T4, V100). No default: the machine that writes the plan is often not the "
                          "one that runs it."},
    )
    model: str = field(
        default="Qwen/Qwen2.5-1.5B",
        metadata={"help": "The model trained: a hub name or a path on the target machine."},
    )
    teacher: str | None = field(
        default=None,
        metadata={"help": "The distillation teacher (hub name or path); the distill stage needs one."},
    )
    task: str = field(
        default="gsm8k",
        metadata={"help": "The grpo stage's r1lib task, by its name in r1lib.tasks.registry."},
    )
    data: str | None = field(
        default=None,
        metadata={"help": "The sft and distill stages' records: a jsonl in TRL's prompt-completion shape (e.g. the "
                          "pipeline's cold_start.jsonl or rejection.jsonl)."},
    )
    lora_r: int | None = field(
        default=None,
        metadata={"help": "Train a LoRA adapter of this rank instead of all weights. None: all weights."},
    )

    def __post_init__(self) -> None:
        if self.mixed_precision is None:
            raise ValueError("LaunchPlan.mixed_precision is required: 'bf16' for target GPUs of compute capability "
                             "8.0 or newer (A100, H100), 'fp16' for older ones (T4, V100)")
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
        if self.lora_r is not None and (isinstance(self.lora_r, bool) or not isinstance(self.lora_r, int)
                                        or self.lora_r < 1):
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


def split_batch(per_device: int, accumulation: int, processes: int) -> tuple[int, int] | None:
    """``(per_device_train_batch_size, gradient_accumulation_steps)`` for ``processes`` processes such
    that one optimizer step still takes ``per_device * accumulation`` items in all (what the config
    takes on one device); ``None`` when that batch does not split evenly. The micro-batch stays at most
    ``per_device``, the memory the config was sized for; accumulation makes up the rest."""
    total, rest = divmod(per_device * accumulation, processes)
    if rest:
        return None
    size = max(d for d in range(1, min(per_device, total) + 1) if total % d == 0)
    return size, total // size


def _batch_settings(plan: LaunchPlan, config: GRPOConfig | SFTConfig | DistillConfig) -> dict[str, int]:
    # Copied unchanged, each process would take the config's batch: N times the items (and the prompts)
    # per optimizer step that the learning rate was chosen for.
    per_device, accumulation, processes = (config.per_device_train_batch_size, config.gradient_accumulation_steps,
                                           plan.training_gpus)
    split = split_batch(per_device, accumulation, processes)
    if split is not None:
        return dict(per_device_train_batch_size=split[0], gradient_accumulation_steps=split[1])
    total = per_device * accumulation
    if isinstance(config, GRPOConfig):
        group = config.num_generations
        items, prompts = "completions", f" ({total * processes // group} prompts instead of {total // group})"
    else:
        items, prompts = "sequences", ""
    warnings.warn(
        f"the {plan.stage} config's batch of {total} {items} per optimizer step (per_device_train_batch_size "
        f"{per_device} x gradient_accumulation_steps {accumulation}) does not split over {processes} training "
        f"processes, so each process keeps it: one step takes {total * processes} {items}{prompts}, {processes} "
        f"times what the learning rate was chosen for. Use a number of training GPUs that divides {total}, or "
        "change the config's batch.", UserWarning, stacklevel=3)
    return {}


def trl_settings(plan: LaunchPlan, config: GRPOConfig | SFTConfig | DistillConfig, output_dir: str) -> dict[str, Any]:
    """The TRL config for ``plan``'s stage as a JSON-able dict (what ``train --args`` reads): the
    precision is the plan's, the batch per optimizer step the config's (see :func:`split_batch`),
    and only the newest checkpoints are kept. It is checked by building the TRL config once."""
    settings = {"grpo": grpo_settings, "sft": sft_settings, "distill": gkd_settings}[plan.stage](config)
    settings.update(bf16=plan.mixed_precision == "bf16", fp16=plan.mixed_precision == "fp16")
    settings.update(_batch_settings(plan, config))
    if settings.get("save_total_limit") is None:
        settings["save_total_limit"] = SAVE_TOTAL_LIMIT  # a ZeRO-3/FSDP checkpoint holds the optimizer: ~16 B/weight
    if plan.generation == "vllm-colocate":
        settings.update(use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.3)
    elif plan.generation == "vllm-server":
        settings.update(use_vllm=True, vllm_mode="server", vllm_server_host=VLLM_HOST, vllm_server_port=VLLM_PORT)
    settings.update(_runtime_settings(output_dir))
    del settings["use_cpu"]  # decided where it runs
    convert = {"grpo": to_trl_grpo_config, "sft": to_trl_sft_config, "distill": to_trl_gkd_config}[plan.stage]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checked = {k: v for k, v in settings.items() if k != "output_dir"}
        # One process standing for all: TRL checks the generation batch (per device x processes x steps).
        checked["per_device_train_batch_size"] = settings["per_device_train_batch_size"] * plan.training_gpus
        convert(config, output_dir, **{**checked, "bf16": False, "fp16": False, "use_cpu": True})  # on any machine
    return settings


def _absolute(path: str | Path) -> str:
    """``path`` as given to ``write`` (relative to where it ran), made absolute for launch.sh."""
    return str(Path(path).expanduser().resolve())


def _model_argument(model: str) -> str:
    """A local model folder made absolute; a hub name (``Qwen/Qwen2.5-7B``) as it is."""
    return _absolute(model) if Path(model).expanduser().exists() else model


def _file_argument(folder: str | Path | None, name: str) -> str:
    """A file that ``write`` wrote, as a shell word: under launch.sh's own folder (``$HERE``) when
    ``folder`` is None, else as an absolute path."""
    if folder is None:
        return f'"$HERE/{name}"'
    return shlex.quote(str(Path(folder).expanduser().resolve() / name))


def _train_command(plan: LaunchPlan, folder: str | Path | None) -> str:
    train = (f"accelerate launch --config_file {_file_argument(folder, 'accelerate.yaml')} -m r1lib.scale train "
             f"--stage {plan.stage} --args {_file_argument(folder, plan.stage + '.json')} "
             f"--model {shlex.quote(_model_argument(plan.model))}")
    train += (f" --task {shlex.quote(plan.task)}" if plan.stage == "grpo"
              else f" --data {shlex.quote(_absolute(str(plan.data)))}")
    if plan.teacher:
        train += f" --teacher {shlex.quote(_model_argument(plan.teacher))}"
    if plan.lora_r:
        train += f" --lora-r {plan.lora_r}"
    return train


def _vllm_server_commands(plan: LaunchPlan) -> list[str]:
    dtype = "bfloat16" if plan.mixed_precision == "bf16" else "half"  # vLLM on a T4 must be told half
    url = f"http://{VLLM_HOST}:{VLLM_PORT}{VLLM_HEALTH}"
    return [
        'command -v curl >/dev/null || { echo "launch.sh: curl is needed to wait for the vLLM server" >&2; exit 1; }',
        f"CUDA_VISIBLE_DEVICES=0 trl vllm-serve --model {shlex.quote(_model_argument(plan.model))} --dtype {dtype} "
        f"--host {VLLM_HOST} --port {VLLM_PORT} &",
        "SERVER=$!",
        "trap 'kill \"$SERVER\" 2>/dev/null || true' EXIT  # the server holds GPU 0 until training ends",
        # Without a deadline and a liveness check, a server that failed to start would be waited for forever.
        f'WAIT_S="${{R1LIB_VLLM_WAIT_S:-{VLLM_WAIT_S}}}"; POLL_S="${{R1LIB_VLLM_POLL_S:-5}}"; START=$SECONDS\n'
        f"until curl -sf {url} >/dev/null; do\n"
        '  if ! kill -0 "$SERVER" 2>/dev/null; then\n'
        f'    echo "launch.sh: the vLLM server (trl vllm-serve) exited before {url} answered; see its output above" '
        ">&2\n"
        "    exit 1\n"
        "  fi\n"
        '  if (( SECONDS - START >= WAIT_S )); then\n'
        f'    echo "launch.sh: the vLLM server did not answer {url} within ${{WAIT_S}} s (R1LIB_VLLM_WAIT_S)" >&2\n'
        "    exit 1\n"
        "  fi\n"
        '  sleep "$POLL_S"\n'
        "done",
    ]


def launch_commands(plan: LaunchPlan, folder: str | Path | None = None) -> list[str]:
    """The shell commands that run ``plan``: with ``folder`` (where :func:`write_launch` put its
    files), to paste anywhere, its files by absolute path; without, as in launch.sh, where ``$HERE``
    is the script's own folder. Data and local model paths are made absolute from the current folder."""
    train = _train_command(plan, folder)
    if plan.generation != "vllm-server":
        return [train]
    rest = ",".join(str(i) for i in range(1, plan.gpus))
    return [*_vllm_server_commands(plan), f"CUDA_VISIBLE_DEVICES={rest} {train}"]


def write_launch(plan: LaunchPlan, config: GRPOConfig | SFTConfig | DistillConfig, folder: str | Path,
                 output_dir: str = "runs/scale") -> dict[str, Path]:
    """Write ``accelerate.yaml``, ``<stage>.json`` (TRL settings) and ``launch.sh`` into ``folder``.
    launch.sh finds its files from its own folder, so it runs from any working directory; a relative
    ``output_dir`` (and ``plan``'s data and local model paths) are taken from the current folder."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"accelerate": folder / "accelerate.yaml", "trl": folder / f"{plan.stage}.json", "launch": folder / "launch.sh"}
    paths["accelerate"].write_text(yaml.safe_dump(accelerate_config(plan), sort_keys=True))
    settings = trl_settings(plan, config, _absolute(output_dir))
    paths["trl"].write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    script = ["#!/usr/bin/env bash", f"# {plan}", "set -euo pipefail",
              'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"  # this folder, wherever launch.sh is run from',
              *launch_commands(plan)]
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

        from .records import load_jsonl

        if not args.data:
            raise SystemExit(f"the {args.stage} stage needs --data, a jsonl of prompt/completion records")
        records = [e.to_record() for e in load_jsonl(args.data)]
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


def _same_model(a: str, b: str) -> bool:
    """The same hub name, or the same local folder however it is written."""
    return a == b or (Path(a).expanduser().exists() and _absolute(a) == _absolute(b))


def _write(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``write``: the plan from the flags, the stage config from the profile, and the three files."""
    from .profiles import get_profile

    if args.precision is None:
        parser.error("--precision is required (bf16 or fp16): it is the target GPUs', not this machine's; bf16 from "
                     "compute capability 8.0 (A100, H100, L4), fp16 below (T4, V100)")
    profile = get_profile(args.profile)
    config = {"grpo": profile.grpo, "sft": profile.sft, "distill": profile.distill}[args.stage]
    model = args.model or profile.model.name_or_path
    if not _same_model(model, profile.model.name_or_path):
        # A learning rate and a LoRA rank tuned on a 0.5B model are no choice for a 7B one.
        missing = [flag for flag, value in (("--learning-rate", args.learning_rate), ("--lora-r", args.lora_r))
                   if value is None]
        if missing:
            lora = f"LoRA rank {profile.model.lora.r}" if profile.model.lora else "all weights trained"
            parser.error(f"the {profile.name} profile's learning rate ({config.learning_rate:g}) and {lora} were "
                         f"chosen for {profile.model.name_or_path}, not for {model}: pass {' and '.join(missing)} "
                         "for it (--lora-r 0 trains all weights)")
    if args.learning_rate is not None:
        config = dataclasses.replace(config, learning_rate=args.learning_rate)
    lora_r = args.lora_r if args.lora_r is not None else (profile.model.lora.r if profile.model.lora else None)
    plan = LaunchPlan(args.stage, args.setup, args.gpus, args.generation, args.precision, model, args.teacher,
                      args.task, args.data, lora_r or None)
    paths = write_launch(plan, config, args.out, args.output_dir)
    for path in paths.values():
        print(f"wrote {path}")
    print(f"run:\n  bash {_absolute(paths['launch'])}\nwhich trains with:\n  {launch_commands(plan, args.out)[-1]}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m r1lib.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write accelerate and TRL configurations and launch.sh")
    write.add_argument("--stage", choices=STAGES, default="grpo")
    write.add_argument("--setup", choices=SETUPS, default="single")
    write.add_argument("--gpus", type=int, default=1)
    write.add_argument("--generation", choices=GENERATIONS, default="transformers")
    write.add_argument("--precision", choices=PRECISIONS, default=None,
                       help="required: the target GPUs' (bf16 from compute capability 8.0, e.g. A100/H100; "
                            "fp16 on a T4/V100)")
    write.add_argument("--model", default=None, help="default: the profile's model")
    write.add_argument("--teacher", default=None)
    write.add_argument("--task", default="gsm8k", help="the grpo stage's task (an r1lib task name)")
    write.add_argument("--data", default=None, help="sft/distill: a jsonl of prompt-completion records")
    write.add_argument("--lora-r", type=int, default=None,
                       help="LoRA rank (default: the profile's, e.g. 16 for gpu; required with another --model); "
                            "0 trains all weights")
    write.add_argument("--learning-rate", type=float, default=None,
                       help="default: the profile's (required with another --model)")
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
    _write(args, write)


if __name__ == "__main__":
    main()
