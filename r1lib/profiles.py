"""Named presets: the CPU tiny world, a fast smoke setting for CI, and a Colab GPU setting.

Pick one with the environment variable ``R1LIB_PROFILE`` (``cpu``, ``smoke``, ``gpu``). Without
it, ``gpu`` is chosen when CUDA is available, else ``cpu``. Every notebook calls
:func:`get_profile` once and reads everything it needs from the result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .grpo import GRPOConfig
from .models import LoraSettings, ModelSpec

ENV_VAR = "R1LIB_PROFILE"
PROFILE_NAMES = ("cpu", "smoke", "gpu")
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
TINY_BASE = DATA_DIR / "tiny-base"


@dataclass(frozen=True)
class Profile:
    """Everything that differs between a laptop CPU, CI, and a Colab GPU."""

    name: str
    model: ModelSpec
    task: str  # "chain" (the tiny world) or "gsm8k"
    grpo: GRPOConfig
    num_train_prompts: int
    num_eval_prompts: int
    data_dir: str | None = None  # a folder with train.jsonl and test.jsonl (gsm8k format); None: the hub

    @property
    def is_tiny(self) -> bool:
        return self.task == "chain"


def _tiny_grpo(**overrides) -> GRPOConfig:
    settings = dict(
        num_generations=8, per_device_train_batch_size=64, learning_rate=2e-4, beta=0.01,
        loss_type="dr_grpo", scale_rewards="none", max_completion_length=64, temperature=1.0,
        max_steps=120, eval_steps=20, save_steps=40, eval_examples=256,
    )
    settings.update(overrides)
    return GRPOConfig(**settings)


def _profiles() -> dict[str, Profile]:
    tiny = ModelSpec(str(TINY_BASE), device="cpu", dtype="float32")
    gpu_model = ModelSpec("Qwen/Qwen2.5-0.5B", device="cuda", dtype="float16", lora=LoraSettings(r=16, alpha=32))
    return {
        "cpu": Profile("cpu", tiny, "chain", _tiny_grpo(), num_train_prompts=4000, num_eval_prompts=256),
        "smoke": Profile(
            "smoke", tiny, "chain",
            _tiny_grpo(max_steps=40, eval_steps=20, save_steps=20, eval_examples=96),
            num_train_prompts=1000, num_eval_prompts=96,
        ),
        "gpu": Profile(
            "gpu", gpu_model, "gsm8k",
            GRPOConfig(
                num_generations=8, per_device_train_batch_size=16, learning_rate=1e-5, beta=0.0,
                loss_type="dr_grpo", scale_rewards="none", max_completion_length=384, temperature=1.0,
                max_steps=200, eval_steps=50, save_steps=50, eval_examples=100,
            ),
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
            f"the tiny base model is missing from {TINY_BASE}; rebuild it with "
            "`python -m r1lib.tiny.pretrain --out data/tiny-base`"
        )
    return profile


def with_overrides(profile: Profile, **grpo_overrides) -> Profile:
    """A copy of ``profile`` with some GRPO settings changed (validated again)."""
    return replace(profile, grpo=replace(profile.grpo, **grpo_overrides))
