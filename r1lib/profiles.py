"""Named presets: the CPU tiny world, a fast smoke setting for CI, and a Colab GPU setting.

Pick one with the environment variable ``R1LIB_PROFILE`` (``cpu``, ``smoke``, ``gpu``). Without
it, ``gpu`` is chosen when CUDA is available, else ``cpu``. Every notebook calls
:func:`get_profile` once and reads everything it needs from the result: the model, the task, and a
config per training stage (``grpo``, ``sft``, ``distill``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import torch

from .configs import DistillConfig, GRPOConfig, SFTConfig
from .estimates import DeviceInfo, device_info, mixed_precision
from .models import LoraSettings, ModelSpec

ENV_VAR = "R1LIB_PROFILE"
RUNS_ENV_VAR = "R1LIB_RUNS_DIR"
DATA_ENV_VAR = "R1LIB_DATA_DIR"
PROFILE_NAMES = ("cpu", "smoke", "gpu")
ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Where the tiny models are: ``$R1LIB_DATA_DIR``, else the repository's ``data/`` (a clone or an
    editable install), else the copy inside the installed package (``pip install`` of a wheel)."""
    if os.environ.get(DATA_ENV_VAR):
        return Path(os.environ[DATA_ENV_VAR])
    checkout = ROOT / "data"
    if (checkout / "tiny-base").is_dir():
        return checkout
    return Path(__file__).resolve().parent / "data"


DATA_DIR = data_dir()
TINY_BASE = DATA_DIR / "tiny-base"
TINY_TASKS = ("chain", "search", "general")
C = TypeVar("C", bound=SFTConfig)  # SFT's config or one built on it (distillation's)


@dataclass(frozen=True)
class Profile:
    """Everything that differs between a laptop CPU, CI, and a Colab GPU."""

    name: str = field(metadata={"help": f"The profile's name, one of {', '.join(PROFILE_NAMES)}."})
    model: ModelSpec = field(metadata={"help": "The model every stage starts from, and where it is placed."})
    task: str = field(
        metadata={"help": "A name of r1lib.tasks.registry: 'chain' (the tiny world) or 'gsm8k'."},
    )
    grpo: GRPOConfig = field(metadata={"help": "The GRPO stages' config (R1-Zero and the RL stages of R1)."})
    sft: SFTConfig = field(
        metadata={"help": "The supervised fine-tuning config (cold start, rejection-sampling SFT, SFT on traces)."},
    )
    distill: DistillConfig = field(metadata={"help": "The logit and on-policy distillation config."})
    num_train_prompts: int = field(
        metadata={"help": "How many training examples to take from the task (load_task's num_train)."},
    )
    num_eval_prompts: int = field(
        metadata={"help": "How many held-out evaluation examples to take from the task (load_task's num_eval)."},
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "A folder with train.jsonl and test.jsonl in gsm8k's format. None: the hub."},
    )

    @property
    def is_tiny(self) -> bool:
        """True for the tiny world (the ``cpu`` and ``smoke`` profiles)."""
        return self.task in TINY_TASKS


def _tiny_grpo(**overrides) -> GRPOConfig:
    # Measured on the shipped base: a cosine decay of the learning rate keeps the end of the run at
    # its best (notebook 03); a constant 2e-4 let late updates move a policy whose entropy had collapsed.
    settings = dict(
        num_generations=8, per_device_train_batch_size=64, learning_rate=2e-4, lr_scheduler_type="cosine", beta=0.01,
        loss_type="dr_grpo", scale_rewards="none", max_completion_length=64, temperature=1.0,
        max_steps=100, eval_steps=20, save_steps=20, eval_examples=256,
    )
    settings.update(overrides)
    return GRPOConfig(**settings)


def _tiny_sft(**overrides) -> SFTConfig:
    return _tiny_causal_lm(SFTConfig, learning_rate=5e-4, max_steps=150, overrides=overrides)


def _tiny_distill(**overrides) -> DistillConfig:
    return _tiny_causal_lm(DistillConfig, learning_rate=1e-3, max_steps=200, overrides=overrides)


def _tiny_causal_lm(config: type[C], learning_rate: float, max_steps: int, overrides: dict[str, Any]) -> C:
    # SFT and distillation both train the tiny LM on (prompt, completion) rows: they share the batch,
    # the schedule and the lengths, and differ in the learning rate and the length of the run.
    settings = dict(per_device_train_batch_size=8, gradient_accumulation_steps=4, learning_rate=learning_rate,
                    lr_scheduler_type="cosine", warmup_ratio=0.1, max_steps=max_steps, eval_steps=50, save_steps=50,
                    max_new_tokens=64)
    settings.update(overrides)
    return config(**settings)


def gpu_precision(info: DeviceInfo | None = None) -> tuple[str, dict[str, bool]]:
    """The weights' dtype and the mixed-precision flag for a GPU: bf16 from compute capability 8.0,
    fp16 with a gradient scaler below (a T4). Without a GPU, the T4's settings (Colab's default)."""
    info = info or device_info()
    if info.kind == "cuda" and mixed_precision(info) == "bf16":
        return "bfloat16", {"bf16": True}
    return "float16", {"fp16": True}


def _profiles() -> dict[str, Profile]:
    tiny = ModelSpec(str(TINY_BASE), device="cpu", dtype="float32")
    dtype, half = gpu_precision()
    gpu_model = ModelSpec("Qwen/Qwen2.5-0.5B", device="cuda", dtype=dtype, lora=LoraSettings(r=16, alpha=32),
                          gradient_checkpointing=True)
    return {
        "cpu": Profile("cpu", tiny, "chain", _tiny_grpo(), _tiny_sft(), _tiny_distill(),
                       num_train_prompts=4000, num_eval_prompts=256),
        "smoke": Profile(
            "smoke", tiny, "chain",
            _tiny_grpo(max_steps=20, eval_steps=10, save_steps=10, eval_examples=96),
            _tiny_sft(max_steps=30, eval_steps=15, save_steps=15, eval_examples=64),
            _tiny_distill(max_steps=30, eval_steps=15, save_steps=15, eval_examples=64),
            num_train_prompts=1000, num_eval_prompts=96,
        ),
        "gpu": Profile(
            "gpu", gpu_model, "gsm8k",
            GRPOConfig(
                num_generations=8, per_device_train_batch_size=16, learning_rate=1e-5, beta=0.0,
                loss_type="dr_grpo", scale_rewards="none", max_completion_length=384, temperature=1.0,
                max_steps=200, eval_steps=50, save_steps=50, eval_examples=100, **half,
            ),
            SFTConfig(per_device_train_batch_size=1, gradient_accumulation_steps=16, learning_rate=1e-4,
                      lr_scheduler_type="cosine", warmup_ratio=0.05, max_steps=200, max_length=1024,
                      max_new_tokens=384, eval_examples=100, **half),
            DistillConfig(per_device_train_batch_size=1, gradient_accumulation_steps=16, learning_rate=1e-4,
                          lr_scheduler_type="cosine", warmup_ratio=0.05, max_steps=200, max_length=1024,
                          max_new_tokens=384, eval_examples=100, top_k=64, **half),
            num_train_prompts=7473, num_eval_prompts=100,
        ),
    }


def get_profile(name: str | None = None) -> Profile:
    """The named profile, else ``$R1LIB_PROFILE``, else ``gpu`` with CUDA and ``cpu`` without."""
    name = name or os.environ.get(ENV_VAR) or ("gpu" if torch.cuda.is_available() else "cpu")
    profiles = _profiles()
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r}; choose one of {PROFILE_NAMES} (env var {ENV_VAR})")
    profile = profiles[name]
    if profile.is_tiny and not (TINY_BASE / "model.safetensors").exists():
        raise FileNotFoundError(
            f"the tiny base model is missing from {TINY_BASE}; rebuild it with `make tiny-models` (about an hour "
            "on 2 cores), or reinstall r1lib"
        )
    return profile


def describe(profile: Profile) -> str:
    """What a notebook's first cell prints: the profile that runs, on what, and how to choose another."""
    if profile.is_tiny:
        what = "the tiny world (procedural tasks and a small base pretrained from scratch, shipped in data/)"
    else:
        what = f"{profile.model.name_or_path} on {profile.task}" + (" with LoRA" if profile.model.lora else "")
    device = device_info()
    where = f"{device.name} ({mixed_precision(device)})" if device.kind == "cuda" else "the CPU"
    lines = [f"profile {profile.name!r}: {what}; this machine has {where}."]
    if not profile.is_tiny:
        lines.append("Numbers in the text were measured on the tiny world (cpu profile); the assertions at the end "
                     "check this profile's own expectations.")
    lines.append(f"To switch: set {ENV_VAR}=cpu, smoke or gpu before get_profile() runs (in Colab: PROFILE in the "
                 "install cell at the top; then run the notebook again, no restart needed), or call get_profile('cpu').")
    return "\n".join(lines)


def with_overrides(profile: Profile, stage: str = "grpo", **overrides) -> Profile:
    """A copy of ``profile`` with some settings of one stage's config (``grpo``, ``sft`` or
    ``distill``) changed; the new config is validated again."""
    if stage not in ("grpo", "sft", "distill"):
        raise ValueError(f"stage must be 'grpo', 'sft' or 'distill', got {stage!r}")
    return replace(profile, **{stage: replace(getattr(profile, stage), **overrides)})


def runs_dir(*parts: str) -> Path:
    """Where runs are written: ``$R1LIB_RUNS_DIR`` (the tests point it at a temporary folder), else
    ``runs/`` at the repository root; ``parts`` are appended."""
    root = Path(os.environ.get(RUNS_ENV_VAR) or ROOT / "runs")
    return root.joinpath(*parts)
