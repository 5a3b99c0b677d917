"""Every training configuration of r1lib, and nothing else (no torch models, no trainers).

Field names follow transformers' ``TrainingArguments`` and TRL's configs, so that a setting copied
from a TRL recipe means the same thing here. :class:`TrainingConfig` holds what every trainer
shares; each algorithm's config extends it:

* :class:`GRPOConfig` for GRPO (R1-Zero and the RL stages of R1),
* :class:`SFTConfig` for supervised fine-tuning (cold start, rejection-sampling SFT, distillation),
* :class:`DistillConfig` for logit and on-policy distillation,
* :class:`RewardModelConfig` for the Bradley-Terry reward model.

(The tiny world's pretraining config, which nests the corpus and model shapes, lives with them in
:mod:`r1lib.tiny.pretrain`.)

Profiles import this module only, so choosing a profile never imports a trainer.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

# The schedules of ``transformers.get_scheduler`` that make sense for a fixed number of steps.
SCHEDULER_TYPES = (
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_min_lr", "polynomial", "inverse_sqrt",
)
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
IMPORTANCE_LEVELS = ("token", "sequence")
KD_DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")


def _check_types(config: Any) -> list[str]:
    """Problems with field types: a number given as a string (as YAML reads ``1e-5``) names its field."""
    problems = []
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        value, hint = getattr(config, f.name), hints.get(f.name)
        allowed = _scalar_types(hint)
        if not allowed or value is None and type(None) in allowed:
            continue
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            continue  # 1 is a fine float
        if isinstance(value, bool) and bool not in allowed:
            problems.append(f"{f.name} must be {_names(allowed)}, got the bool {value!r}")
        elif not isinstance(value, tuple(allowed)):
            extra = ""
            if isinstance(value, str) and (int in allowed or float in allowed):
                extra = f" (write it as a number: {f.name}={value}; YAML reads 1e-5 without a dot as a string)"
            problems.append(f"{f.name} must be {_names(allowed)}, got {type(value).__name__} {value!r}{extra}")
    return problems


def _scalar_types(hint: Any) -> set[type]:
    """The plain types a hint allows (``float | None`` -> {float, NoneType}); empty for containers."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_scalar_types(a) for a in typing.get_args(hint)]
        return set().union(*parts) if all(parts) else set()
    if hint in (int, float, bool, str, type(None)):
        return {hint}
    return set()


def _names(allowed: set[type]) -> str:
    return " or ".join(sorted("None" if t is type(None) else t.__name__ for t in allowed))


@dataclass
class TrainingConfig:
    """What every r1lib trainer shares (``r1lib.trainer.Trainer``).

    * ``max_steps`` counts optimizer updates. Each update accumulates ``gradient_accumulation_steps``
      micro-batches of ``per_device_train_batch_size`` items (sequences, pairs or completions).
    * The learning rate follows ``transformers.get_scheduler(lr_scheduler_type)`` with
      ``warmup_steps`` (or, when that is 0, ``warmup_ratio`` of ``max_steps``) of linear warm-up.
    * ``bf16``/``fp16`` turn on autocast on CUDA (fp16 with a gradient scaler); on the CPU they are
      ignored and the same code path runs in float32.
    * ``save_steps``/``eval_steps``/``logging_steps`` are in optimizer steps; the last step is always
      saved, evaluated and logged. ``save_total_limit`` keeps only the newest checkpoints.
    """

    max_steps: int = 100
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    lr_scheduler_type: str = "constant"
    lr_scheduler_kwargs: dict = field(default_factory=dict)
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    bf16: bool = False
    fp16: bool = False
    seed: int = 0
    save_steps: int = 50
    save_total_limit: int | None = None
    eval_steps: int = 25
    logging_steps: int = 1

    def __post_init__(self) -> None:
        problems = _check_types(self)
        if not problems:  # range checks would only repeat the type errors
            problems = self.problems()
        if problems:
            raise ValueError(f"invalid {type(self).__name__}:\n  - " + "\n  - ".join(problems))

    def problems(self) -> list[str]:
        """What is wrong with the settings (empty when valid). Subclasses extend the list."""
        problems = []
        if self.max_steps < 1:
            problems.append(f"max_steps must be >= 1, got {self.max_steps}")
        if self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            problems.append("per_device_train_batch_size and gradient_accumulation_steps must be >= 1")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            problems.append(f"learning_rate must be a positive number, got {self.learning_rate}")
        if self.lr_scheduler_type not in SCHEDULER_TYPES:
            problems.append(f"lr_scheduler_type must be one of {SCHEDULER_TYPES}, got {self.lr_scheduler_type!r}")
        elif self.lr_scheduler_type == "constant" and self.num_warmup_steps:
            problems.append("lr_scheduler_type='constant' has no warm-up in transformers; use 'constant_with_warmup'")
        if self.warmup_steps < 0 or not 0.0 <= self.warmup_ratio < 1.0:
            problems.append("need warmup_steps >= 0 and 0 <= warmup_ratio < 1")
        elif self.num_warmup_steps > self.max_steps:
            problems.append(f"warm-up ({self.num_warmup_steps} steps) is longer than max_steps ({self.max_steps})")
        if not 0.0 <= self.weight_decay < 1.0:
            problems.append(f"weight_decay must be in [0, 1), got {self.weight_decay}")
        if not (0.0 <= self.adam_beta1 < 1.0 and 0.0 <= self.adam_beta2 < 1.0 and self.adam_epsilon > 0):
            problems.append("need 0 <= adam_beta1, adam_beta2 < 1 and adam_epsilon > 0")
        if not self.max_grad_norm > 0:
            problems.append(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if self.bf16 and self.fp16:
            problems.append("choose at most one of bf16 and fp16")
        if min(self.save_steps, self.eval_steps, self.logging_steps) < 1:
            problems.append("save_steps, eval_steps and logging_steps must be >= 1")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            problems.append(f"save_total_limit must be None or >= 1, got {self.save_total_limit}")
        return problems

    @property
    def num_warmup_steps(self) -> int:
        """Warm-up steps: ``warmup_steps``, or ``ceil(warmup_ratio * max_steps)`` when that is 0."""
        return self.warmup_steps or math.ceil(self.warmup_ratio * self.max_steps)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-able values (what a checkpoint records)."""
        return dataclasses.asdict(self)


# Settings that may change when a run is resumed: they schedule the run, they do not define it.
RESUMABLE_CHANGES = frozenset({"max_steps", "save_steps", "eval_steps", "logging_steps", "save_total_limit"})


@dataclass
class GRPOConfig(TrainingConfig):
    """GRPO settings. Field names follow TRL's ``GRPOConfig``.

    ``per_device_train_batch_size`` counts completions per forward/backward pass. One *generation
    batch* holds ``per_device_train_batch_size * gradient_accumulation_steps`` completions, that is
    ``prompts_per_step`` prompts with ``num_generations`` completions each. As in TRL, one step is
    one optimizer update: with ``num_iterations`` > 1 a generation batch is reused for that many
    consecutive steps, with the sampling policy's log-probs kept as "old" for the clipped ratio.
    """

    per_device_train_batch_size: int = 64
    learning_rate: float = 2e-4
    num_generations: int = 8
    beta: float = 0.0
    use_bias_correction_kl: bool = False  # multiply the per-token KL by the importance ratio (TRL's default: True)
    epsilon: float = 0.2
    epsilon_high: float | None = None
    num_iterations: int = 1
    loss_type: str = "dr_grpo"
    scale_rewards: str = "none"
    importance_sampling_level: str = "token"
    mask_truncated_completions: bool = True
    reward_weights: list[float] | None = None
    sync_ref_model: bool = False  # refresh the reference every ref_model_sync_steps (R1 reset it every 400)
    ref_model_sync_steps: int = 512
    ref_model_mixup_alpha: float = 0.6  # ref <- alpha * policy + (1 - alpha) * ref; 1.0 is a reset
    dynamic_sampling: bool = False  # DAPO: drop zero-spread groups and refill from new prompts
    max_extra_groups: int | None = None  # cap on refill groups per step; None: 2 x prompts_per_step
    max_completion_length: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    eval_examples: int = 128
    log_completions: int = 32  # completions written to completions.jsonl per generation batch (whole groups first)

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.num_generations < 2:
            problems.append(f"num_generations must be >= 2 for group advantages (got {self.num_generations})")
        elif self.per_device_train_batch_size % self.num_generations:
            fit = self.num_generations * max(1, self.per_device_train_batch_size // self.num_generations)
            problems.append(
                f"per_device_train_batch_size ({self.per_device_train_batch_size}) must be divisible by "
                f"num_generations ({self.num_generations}); try {fit}"
            )
        if self.loss_type not in LOSS_TYPES:
            problems.append(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.scale_rewards not in SCALE_REWARDS:
            problems.append(f"scale_rewards must be one of {SCALE_REWARDS}, got {self.scale_rewards!r}")
        if self.importance_sampling_level not in IMPORTANCE_LEVELS:
            problems.append(f"importance_sampling_level must be one of {IMPORTANCE_LEVELS}")
        if self.beta < 0 or self.epsilon < 0 or (self.epsilon_high is not None and self.epsilon_high < self.epsilon):
            problems.append("need beta >= 0, epsilon >= 0 and epsilon_high >= epsilon")
        if self.num_iterations < 1:
            problems.append(f"num_iterations must be >= 1, got {self.num_iterations}")
        if self.max_completion_length < 1 or self.temperature < 0 or not 0 < self.top_p <= 1:
            problems.append("need max_completion_length >= 1, temperature >= 0, 0 < top_p <= 1")
        elif self.temperature == 0:
            problems.append(
                "temperature=0 is greedy decoding: all num_generations completions of a prompt are identical, "
                "every advantage is 0 and nothing learns; sample with temperature > 0 (R1 used 1.0)"
            )
        if self.ref_model_sync_steps < 1:
            problems.append("ref_model_sync_steps must be >= 1")
        if not 0.0 < self.ref_model_mixup_alpha <= 1.0:
            problems.append("ref_model_mixup_alpha must be in (0, 1]")
        if self.sync_ref_model and self.beta == 0:
            problems.append("sync_ref_model needs beta > 0: with beta == 0 there is no reference model")
        if self.max_extra_groups is not None and self.max_extra_groups < 0:
            problems.append("max_extra_groups must be >= 0")
        if self.eval_examples < 0 or self.log_completions < 0:
            problems.append("eval_examples and log_completions must be >= 0")
        return problems

    @property
    def generation_batch_size(self) -> int:
        """Completions sampled per generation batch."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    @property
    def prompts_per_step(self) -> int:
        """Distinct prompts (groups) in one generation batch."""
        return self.generation_batch_size // self.num_generations

    @property
    def extra_group_cap(self) -> int:
        """How many refill groups dynamic sampling may draw per generation batch."""
        return 2 * self.prompts_per_step if self.max_extra_groups is None else self.max_extra_groups


@dataclass
class SFTConfig(TrainingConfig):
    """Supervised fine-tuning on (prompt, completion) pairs. Names follow TRL's ``SFTConfig``.

    ``per_device_train_batch_size`` counts sequences (or packed rows with ``packing``). The loss
    covers completion tokens only (``completion_only_loss``), averaged over every completion token of
    the optimizer step. ``max_length`` caps prompt + completion tokens; a longer example is an error
    before training starts, never silently truncated. ``num_train_epochs``, when set, overrides
    ``max_steps`` with the number of steps that sees the data that many times.
    """

    per_device_train_batch_size: int = 16
    learning_rate: float = 1e-3
    max_length: int | None = None  # None: the model's max_position_embeddings
    packing: bool = False
    completion_only_loss: bool = True
    num_train_epochs: float | None = None
    eval_examples: int = 128
    max_new_tokens: int = 64  # for the sampled evaluation of the trained model
    temperature: float = 1.0  # for the sampled evaluation

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.max_length is not None and self.max_length < 2:
            problems.append(f"max_length must be None or >= 2, got {self.max_length}")
        if self.num_train_epochs is not None and not self.num_train_epochs > 0:
            problems.append(f"num_train_epochs must be None or > 0, got {self.num_train_epochs}")
        if self.eval_examples < 0 or self.max_new_tokens < 1 or self.temperature < 0:
            problems.append("need eval_examples >= 0, max_new_tokens >= 1 and temperature >= 0")
        return problems


@dataclass
class DistillConfig(SFTConfig):
    """Logit distillation (on teacher traces) and on-policy distillation, as in TRL's GKD.

    * ``divergence``: ``forward_kl`` KL(teacher || student) (mode covering), ``reverse_kl``
      KL(student || teacher) (mode seeking), or ``jsd``, the generalised Jensen-Shannon divergence
      with interpolation ``beta`` (TRL's convention: ``beta=0`` is forward KL, ``beta=1`` reverse KL).
    * ``kd_temperature`` softens both distributions; the loss is multiplied by ``T^2`` as in Hinton
      et al. so that gradients keep their scale.
    * ``top_k`` keeps only the teacher's ``k`` most likely tokens per position (renormalised) as the
      target, against the student's full distribution, so the student's mass outside them still
      counts. At least 2, and not with the reverse KL, which is infinite outside the teacher's set.
      (It changes the target, not the memory: the teacher's full logits are still computed.)
    * ``lmbda`` is the fraction of steps on which the *student* samples the sequences the teacher then
      grades (on-policy); the rest use the fixed teacher traces. ``lmbda=1, divergence="reverse_kl"``
      is per-token reverse-KL on-policy distillation.
    * A student that stops emitting end-of-sequence runs to ``max_new_tokens``: when more than
      ``max_truncated_fraction`` of its on-policy samples are truncated, the trainer warns and logs it.
    """

    divergence: str = "jsd"
    beta: float = 0.5
    kd_temperature: float = 1.0
    top_k: int | None = None
    lmbda: float = 0.0
    max_truncated_fraction: float = 0.5

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.divergence not in KD_DIVERGENCES:
            problems.append(f"divergence must be one of {KD_DIVERGENCES}, got {self.divergence!r}")
        if not 0.0 <= self.beta <= 1.0:
            problems.append(f"beta must be in [0, 1], got {self.beta}")
        if not self.kd_temperature > 0:
            problems.append(f"kd_temperature must be > 0, got {self.kd_temperature}")
        if self.top_k is not None and self.top_k < 2:
            problems.append(f"top_k must be None or >= 2 (a one-token target is SFT, not distillation), got {self.top_k}")
        reverse = self.divergence == "reverse_kl" or (self.divergence == "jsd" and self.beta == 1.0)
        if self.top_k is not None and reverse:
            problems.append("top_k needs forward_kl or jsd with beta < 1: the reverse KL is infinite where the student "
                            "puts mass outside the teacher's top-k; use top_k=None")
        if not 0.0 <= self.lmbda <= 1.0:
            problems.append(f"lmbda must be in [0, 1], got {self.lmbda}")
        if not 0.0 < self.max_truncated_fraction <= 1.0:
            problems.append(f"max_truncated_fraction must be in (0, 1], got {self.max_truncated_fraction}")
        return problems


@dataclass
class RewardModelConfig(TrainingConfig):
    """Bradley-Terry reward-model training. ``per_device_train_batch_size`` counts preference pairs.

    ``center_rewards_coefficient`` (TRL's name) adds ``c * mean((r_chosen + r_rejected)^2)`` to the
    loss: the Bradley-Terry loss only sees differences, so without it scores can drift to any
    offset, which a policy optimiser then has to absorb.
    """

    max_steps: int = 200
    per_device_train_batch_size: int = 16
    learning_rate: float = 1e-3
    lr_scheduler_type: str = "constant_with_warmup"
    warmup_steps: int = 10
    save_steps: int = 100
    eval_steps: int = 50
    center_rewards_coefficient: float = 0.0

    def problems(self) -> list[str]:
        problems = super().problems()
        if not self.center_rewards_coefficient >= 0:
            problems.append(f"center_rewards_coefficient must be >= 0, got {self.center_rewards_coefficient}")
        return problems
