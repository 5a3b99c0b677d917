"""Every training configuration of r1lib, and nothing else (no torch models, no trainers).

Field names follow transformers' ``TrainingArguments`` and TRL's configs, so that a setting copied
from a TRL recipe means the same thing here. :class:`TrainingConfig` holds what every trainer
shares; each algorithm's config extends it:

* :class:`GRPOConfig` for GRPO (R1-Zero and the RL stages of R1),
* :class:`SFTConfig` for supervised fine-tuning (cold start, rejection-sampling SFT, distillation),
* :class:`DistillConfig` for logit and on-policy distillation,
* :class:`RewardModelConfig` for the Bradley-Terry reward model,
* :class:`DPOConfig` for DPO, whose trained model is an implicit reward model.

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

    max_steps: int = field(
        default=100,
        metadata={"help": "Number of optimizer updates in the run. Unlike transformers, there is no -1 meaning "
                          "'count epochs instead' (SFTConfig has num_train_epochs for that)."},
    )
    per_device_train_batch_size: int = field(
        default=8,
        metadata={"help": "Items per forward/backward pass (one micro-batch). An item is a completion for GRPO, "
                          "an example for SFT and a preference pair for the reward model."},
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={"help": "Micro-batches whose gradients add up to one optimizer update; the update's batch is "
                          "per_device_train_batch_size times this."},
    )
    learning_rate: float = field(
        default=1e-4,
        metadata={"help": "Peak AdamW learning rate, reached after warm-up. Each trainer's config sets a default "
                          "for the tiny models of the course; pretrained LLMs need much smaller rates."},
    )
    lr_scheduler_type: str = field(
        default="constant",
        metadata={"help": f"Learning-rate schedule, by its name in transformers.get_scheduler: one of "
                          f"{', '.join(SCHEDULER_TYPES)}. 'constant' has no warm-up: use 'constant_with_warmup'."},
    )
    lr_scheduler_kwargs: dict = field(
        default_factory=dict,
        metadata={"help": "Extra keyword arguments for the schedule, e.g. {'min_lr_rate': 0.1} for "
                          "'cosine_with_min_lr'. Empty: none."},
    )
    warmup_steps: int = field(
        default=0,
        metadata={"help": "Optimizer steps of linear warm-up from 0 to learning_rate. 0: use warmup_ratio."},
    )
    warmup_ratio: float = field(
        default=0.0,
        metadata={"help": "Warm-up as a fraction of max_steps (rounded up), in [0, 1); read only when "
                          "warmup_steps is 0. transformers 5 dropped this field: r1lib.scale passes it to TRL "
                          "as warmup_steps."},
    )
    weight_decay: float = field(
        default=0.0,
        metadata={"help": "AdamW's decoupled weight decay, in [0, 1). 0 turns it off."},
    )
    adam_beta1: float = field(
        default=0.9,
        metadata={"help": "AdamW's decay rate for its running mean of gradients, in [0, 1)."},
    )
    adam_beta2: float = field(
        default=0.999,
        metadata={"help": "AdamW's decay rate for its running mean of squared gradients, in [0, 1)."},
    )
    adam_epsilon: float = field(
        default=1e-8,
        metadata={"help": "AdamW's constant added to the denominator so that the update never divides by 0."},
    )
    max_grad_norm: float = field(
        default=1.0,
        metadata={"help": "Clip the gradient's global L2 norm to this value before each update (> 0)."},
    )
    bf16: bool = field(
        default=False,
        metadata={"help": "bfloat16 autocast on CUDA (GPUs of compute capability 8.0 or newer, e.g. A100, H100). "
                          "Ignored on the CPU, which runs the same code in float32."},
    )
    fp16: bool = field(
        default=False,
        metadata={"help": "float16 autocast with a gradient scaler on CUDA (older GPUs, e.g. T4, V100). Ignored on "
                          "the CPU. At most one of bf16 and fp16."},
    )
    seed: int = field(
        default=0,
        metadata={"help": "Seed of the trainer's random generator (data order, sampling): the same seed and "
                          "settings repeat a run."},
    )
    save_steps: int = field(
        default=50,
        metadata={"help": "Write a checkpoint every this many optimizer steps; the last step is always saved."},
    )
    save_total_limit: int | None = field(
        default=None,
        metadata={"help": "Keep only this many of the newest checkpoints, deleting older ones. None: keep all."},
    )
    eval_steps: int = field(
        default=25,
        metadata={"help": "Evaluate every this many optimizer steps, and at the last step, when the trainer "
                          "has evaluation data."},
    )
    logging_steps: int = field(
        default=1,
        metadata={"help": "Log metrics (averaged over the window) every this many optimizer steps, and at the "
                          "last step."},
    )

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

    per_device_train_batch_size: int = field(
        default=64,
        metadata={"help": "Completions per forward/backward pass (as in TRL), a multiple of num_generations. "
                          "Times gradient_accumulation_steps it is the generation batch sampled for each step."},
    )
    learning_rate: float = field(
        default=2e-4,
        metadata={"help": "Peak learning rate. 2e-4 suits the course's tiny models trained from scratch; "
                          "pretrained LLMs take about 1e-6 (TRL's default), and R1-Zero used 3e-6."},
    )
    num_generations: int = field(
        default=8,
        metadata={"help": "Completions sampled per prompt (the group, G in the paper), >= 2: each completion's "
                          "advantage is its reward relative to its group. R1 used 16."},
    )
    beta: float = field(
        default=0.0,
        metadata={"help": "Weight of the per-token k3 KL penalty towards the reference model, >= 0. 0 (TRL's "
                          "default, as in Dr. GRPO and DAPO) needs no reference model; R1 used 0.001."},
    )
    use_bias_correction_kl: bool = field(
        default=False,
        metadata={"help": "Multiply the per-token KL by the importance ratio pi_theta / pi_old (the "
                          "DeepSeek-V3.2 correction; TRL's default is True). Matters only with beta > 0."},
    )
    epsilon: float = field(
        default=0.2,
        metadata={"help": "Lower clipping range: the probability ratio is clipped to "
                          "[1 - epsilon, 1 + epsilon_high]. 0.2 as in PPO and the GRPO paper."},
    )
    epsilon_high: float | None = field(
        default=None,
        metadata={"help": "Upper clipping range, >= epsilon. None: epsilon. DAPO's 'clip-higher' uses 0.28 so "
                          "that unlikely tokens can still gain probability."},
    )
    num_iterations: int = field(
        default=1,
        metadata={"help": "Optimizer steps taken on each generation batch (mu in the GRPO paper). 1 is "
                          "on-policy; above 1 the clip keeps later steps near the policy that sampled."},
    )
    loss_type: str = field(
        default="dr_grpo",
        metadata={"help": f"How per-token losses are averaged, one of {', '.join(LOSS_TYPES)}. 'grpo': per "
                          "completion, then over completions (favours long wrong answers); 'bnpo': over the "
                          "micro-batch's tokens; 'dapo': over the generation batch's tokens (TRL's default); "
                          "'dr_grpo': the sum over (completions x max_completion_length), no length bias (Dr. GRPO, "
                          "Liu et al. 2025)."},
    )
    scale_rewards: str = field(
        default="none",
        metadata={"help": f"Divide advantages by the rewards' standard deviation in the 'group', in the 'batch', or "
                          f"not at all ('none'); one of {', '.join(SCALE_REWARDS)}. 'none' follows Dr. GRPO: dividing "
                          f"gives most weight to prompts that are almost always right or almost always wrong."},
    )
    importance_sampling_level: str = field(
        default="token",
        metadata={"help": "'token': one probability ratio per token (GRPO); 'sequence': one length-normalised ratio "
                          "per completion (GSPO, Zheng et al. 2025)."},
    )
    mask_truncated_completions: bool = field(
        default=True,
        metadata={"help": "Leave completions cut off at max_completion_length out of the loss (DAPO's overlong "
                          "filtering): an unfinished answer's reward says little about its reasoning."},
    )
    reward_weights: list[float] | None = field(
        default=None,
        metadata={"help": "One weight per reward function; a completion's reward is the weighted sum. None: all 1.0."},
    )
    sync_ref_model: bool = field(
        default=False,
        metadata={"help": "Move the reference model towards the policy every ref_model_sync_steps (needs beta > 0). "
                          "R1 replaced the reference with the policy every 400 steps."},
    )
    ref_model_sync_steps: int = field(
        default=512,
        metadata={"help": "Optimizer steps between two updates of the reference model (with sync_ref_model)."},
    )
    ref_model_mixup_alpha: float = field(
        default=0.6,
        metadata={"help": "Reference update ref <- alpha * policy + (1 - alpha) * ref, in (0, 1]; 1.0 replaces "
                          "the reference by the policy, as R1 did."},
    )
    dynamic_sampling: bool = field(
        default=False,
        metadata={"help": "DAPO's dynamic sampling: drop groups whose rewards are all equal (zero advantage, no "
                          "gradient) and refill the batch with groups for new prompts. r1lib only: TRL has none."},
    )
    max_extra_groups: int | None = field(
        default=None,
        metadata={"help": "Most refill groups dynamic sampling may draw per generation batch. "
                          "None: 2 x prompts_per_step."},
    )
    max_completion_length: int = field(
        default=64,
        metadata={"help": "Most tokens sampled per completion (longer ones are truncated); also the divisor of "
                          "the 'dr_grpo' loss. R1 used 32,768, later 65,536."},
    )
    temperature: float = field(
        default=1.0,
        metadata={"help": "Sampling temperature of the completions, also applied to the logits when scoring them "
                          "(as in TRL), > 0: at 0 a group's completions are identical and nothing learns. R1 "
                          "used 1.0."},
    )
    top_p: float = field(
        default=1.0,
        metadata={"help": "Nucleus sampling: sample among the most likely tokens whose probabilities add up to "
                          "top_p, in (0, 1]. 1.0: the whole vocabulary."},
    )
    eval_examples: int = field(
        default=128,
        metadata={"help": "Most evaluation examples scored every eval_steps (sampled pass@1 at the training "
                          "temperature). r1lib only."},
    )
    log_completions: int = field(
        default=32,
        metadata={"help": "Completions written to completions.jsonl per generation batch, whole groups first; "
                          "0: none. TRL's log_completions is an on/off switch: r1lib.scale passes this count "
                          "as num_completions_to_print."},
    )

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

    per_device_train_batch_size: int = field(
        default=16,
        metadata={"help": "Examples per forward/backward pass (with packing: packed rows), as in TRL; each "
                          "optimizer step takes this times gradient_accumulation_steps examples, grouped by length "
                          "into micro-batches."},
    )
    learning_rate: float = field(
        default=1e-3,
        metadata={"help": "Peak learning rate. 1e-3 suits the course's tiny models; fine-tuning a pretrained LLM "
                          "takes far less (TRL's default is 2e-5)."},
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Most tokens of prompt + completion (and of a packed row): a longer example is an error "
                          "before training starts, never truncated. None: the model's max_position_embeddings."},
    )
    packing: bool = field(
        default=False,
        metadata={"help": "Pack several examples into each row of up to max_length tokens (greedy first fit), so "
                          "that less compute goes to padding."},
    )
    completion_only_loss: bool = field(
        default=True,
        metadata={"help": "Train on the completion's tokens only, not the prompt's. TRL's default, None, does the "
                          "same on prompt-completion data, the only kind r1lib trains on."},
    )
    num_train_epochs: float | None = field(
        default=None,
        metadata={"help": "Passes over the training data; when set, it replaces max_steps by the number of steps "
                          "that makes that many passes. None: run max_steps."},
    )
    eval_examples: int = field(
        default=128,
        metadata={"help": "Most evaluation examples for the sampled evaluation (pass@1) every eval_steps. "
                          "r1lib only."},
    )
    max_new_tokens: int = field(
        default=64,
        metadata={"help": "Most tokens generated per answer in the sampled evaluation (DistillConfig: also in the "
                          "student's on-policy samples)."},
    )
    temperature: float = field(
        default=1.0,
        metadata={"help": "Sampling temperature of the evaluation (DistillConfig: also of the student's on-policy "
                          "samples); 0 is greedy decoding."},
    )

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

    divergence: str = field(
        default="jsd",
        metadata={"help": f"What the student minimises, one of {', '.join(KD_DIVERGENCES)}: 'forward_kl' "
                          "KL(teacher || student) covers all of the teacher's modes, 'reverse_kl' "
                          "KL(student || teacher) settles on one, 'jsd' interpolates with beta. r1lib only: GKD "
                          "expresses the choice through beta alone."},
    )
    beta: float = field(
        default=0.5,
        metadata={"help": "Interpolation of the generalised JSD, in [0, 1]: 0 is the forward KL, 1 the reverse KL "
                          "(GKD's convention). Read only with divergence='jsd'."},
    )
    kd_temperature: float = field(
        default=1.0,
        metadata={"help": "Softmax temperature of both distributions in the loss (> 0), which is multiplied by "
                          "kd_temperature^2 to keep gradients at scale (Hinton et al. 2015)."},
    )
    top_k: int | None = field(
        default=None,
        metadata={"help": "Target only the teacher's k most likely tokens per position (renormalised), >= 2; not "
                          "with the reverse KL. None: the teacher's whole distribution."},
    )
    lmbda: float = field(
        default=0.0,
        metadata={"help": "Fraction of steps, in [0, 1], on which the student samples the sequences the teacher "
                          "grades (on-policy, GKD); the others use the teacher's traces. 0: traces only."},
    )
    max_truncated_fraction: float = field(
        default=0.5,
        metadata={"help": "Warn when more than this fraction, in (0, 1], of the student's on-policy samples run "
                          "to max_new_tokens without ending."},
    )

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

    max_steps: int = field(default=200, metadata={"help": "Number of optimizer updates in the run."})
    per_device_train_batch_size: int = field(
        default=16,
        metadata={"help": "Preference pairs (chosen, rejected) per forward/backward pass."},
    )
    learning_rate: float = field(
        default=1e-3,
        metadata={"help": "Peak learning rate. 1e-3 suits the course's tiny reward model; TRL's default, 1e-4, is "
                          "for a pretrained LLM with a new score head."},
    )
    lr_scheduler_type: str = field(
        default="constant_with_warmup",
        metadata={"help": f"Learning-rate schedule, by its name in transformers.get_scheduler: one of "
                          f"{', '.join(SCHEDULER_TYPES)}."},
    )
    warmup_steps: int = field(
        default=10,
        metadata={"help": "Optimizer steps of linear warm-up from 0 to learning_rate, so that the freshly "
                          "initialised score head does not take large steps at first."},
    )
    save_steps: int = field(
        default=100,
        metadata={"help": "Write a checkpoint every this many optimizer steps; the last step is always saved."},
    )
    eval_steps: int = field(
        default=50,
        metadata={"help": "Evaluate (pairwise accuracy on held-out pairs) every this many optimizer steps, and at "
                          "the last step."},
    )
    center_rewards_coefficient: float = field(
        default=0.0,
        metadata={"help": "Weight c of the penalty c * mean((r_chosen + r_rejected)^2), >= 0, which keeps scores "
                          "centred on 0 (Eisenstein et al. 2023, Eq. 2; TRL suggests 0.01). 0: off."},
    )

    def problems(self) -> list[str]:
        problems = super().problems()
        if not self.center_rewards_coefficient >= 0:
            problems.append(f"center_rewards_coefficient must be >= 0, got {self.center_rewards_coefficient}")
        return problems



@dataclass
class DPOConfig(TrainingConfig):
    """DPO training of a causal LM on preference pairs (:mod:`r1lib.dpo`), which the course uses as an
    implicit reward model. ``per_device_train_batch_size`` counts preference pairs."""

    max_steps: int = field(default=200, metadata={"help": "Number of optimizer updates in the run."})
    per_device_train_batch_size: int = field(
        default=16,
        metadata={"help": "Preference pairs (chosen, rejected) per forward/backward pass."},
    )
    beta: float = field(
        default=0.1,
        metadata={"help": "The KL strength beta of DPO's implicit reward beta * (log pi - log pi_ref), > 0: "
                          "smaller lets the model move further from the reference for the same reward margin."},
    )
    eval_steps: int = field(
        default=50,
        metadata={"help": "Evaluate (pairwise accuracy on held-out pairs) every this many optimizer steps, and at "
                          "the last step."},
    )

    def problems(self) -> list[str]:
        problems = super().problems()
        if not (math.isfinite(self.beta) and self.beta > 0):
            problems.append(f"beta must be a positive number, got {self.beta}")
        return problems


# ---------------------------------------------------------------------------- r1lib and TRL

# Each config's counterpart in TRL: fields of the same name mean the same thing (see r1lib.scale).
TRL_COUNTERPARTS = {
    "GRPOConfig": "trl.GRPOConfig",
    "SFTConfig": "trl.SFTConfig",
    "RewardModelConfig": "trl.RewardConfig",
    "DPOConfig": "trl.DPOConfig",
    "DistillConfig": "trl.experimental.gkd.GKDConfig",
}
TRL_CHECKED_VERSION = "1.16.0"  # the TRL whose defaults TRL_DEFAULT_DIFFERENCES records

# Every field whose name TRL's counterpart shares but whose default differs, as
# {r1lib config: {field: (TRL's default, why r1lib differs)}}. An entry under a base class covers the
# subclasses that keep the base's default (TrainingConfig: all four). README.md ("Moving a config to
# TRL") shows this table, and tests/test_config_help.py checks both against the installed TRL.
TRL_DEFAULT_DIFFERENCES: dict[str, dict[str, tuple[Any, str]]] = {
    "TrainingConfig": {
        "max_steps": (-1, "runs are counted in optimizer steps; TRL's -1 means 'train for num_train_epochs'"),
        "lr_scheduler_type": ("linear", "a rate that does not depend on max_steps, so a resumed run can be "
                                        "extended; the profiles set their own (mostly cosine)"),
        "lr_scheduler_kwargs": (None, "same meaning (no extra arguments): an empty dict keeps the type a dict"),
        "bf16": (None, "TRL's None means bf16 unless fp16 is set; r1lib starts on the CPU and the GPU profile "
                       "turns bf16 on where the GPU has it"),
        "seed": (42, "the course seeds everything from 0"),
        "save_steps": (500, "course runs last hundreds of steps, not thousands"),
        "eval_steps": (None, "TRL's None falls back to logging_steps (with eval_strategy='steps'); r1lib "
                             "evaluates whenever it is given evaluation data"),
        "logging_steps": (10, "short runs: every step is a point on the reward or loss curve"),
    },
    "GRPOConfig": {
        "per_device_train_batch_size": (8, "the tiny models take a whole generation batch, 8 prompts x 8 "
                                           "completions, in one pass"),
        "learning_rate": (1e-6, "tiny models trained from scratch; TRL's rate is for pretrained LLMs "
                                "(R1-Zero used 3e-6)"),
        "use_bias_correction_kl": (True, "the GRPO paper's plain k3 KL estimate, as R1 used; the correction "
                                         "comes from DeepSeek-V3.2 (no effect while beta = 0)"),
        "loss_type": ("dapo", "Dr. GRPO (Liu et al. 2025): a constant normaliser, so no length bias"),
        "scale_rewards": ("group", "Dr. GRPO: dividing by the group's std over-weights prompts that are "
                                   "almost always right or wrong"),
        "mask_truncated_completions": (False, "DAPO (Yu et al. 2025) overlong filtering: a cut-off answer's "
                                              "reward does not judge its reasoning"),
        "max_completion_length": (512, "the tiny tasks' answers fit in 64 tokens"),
        "log_completions": (False, "here a count written to completions.jsonl, in TRL a switch; r1lib.scale "
                                   "passes the count as num_completions_to_print"),
    },
    "SFTConfig": {
        "per_device_train_batch_size": (8, "tiny models: 16 examples per step cost little"),
        "learning_rate": (2e-5, "tiny models trained from scratch; TRL's rate is for pretrained LLMs"),
        "max_length": (1024, "None: the model's context; a longer example is an error, where TRL truncates it"),
        "completion_only_loss": (None, "same behaviour: TRL's None trains on completions only for "
                                       "prompt-completion data, the only kind r1lib uses"),
        "num_train_epochs": (3.0, "runs are counted in max_steps unless epochs are asked for"),
    },
    "DistillConfig": {
        "max_new_tokens": (128, "the tiny tasks' answers fit in 64 tokens"),
        "temperature": (0.9, "the student samples from its distribution unchanged, so the teacher grades what "
                             "it would really say"),
        "lmbda": (0.5, "logit distillation on teacher traces first; on-policy steps are opt-in "
                       "(on_policy_reverse_kl sets lmbda=1)"),
    },
    "RewardModelConfig": {
        "max_steps": (-1, "runs are counted in optimizer steps; TRL's -1 means 'train for num_train_epochs'"),
        "per_device_train_batch_size": (8, "tiny models: 16 pairs per pass cost little"),
        "learning_rate": (1e-4, "a tiny model trained from scratch; TRL's rate is for a pretrained LLM"),
        "lr_scheduler_type": ("linear", "a short warm-up for the randomly initialised score head, then constant"),
        "warmup_steps": (0, "the score head starts random: 10 steps of warm-up keep its first steps small"),
        "save_steps": (500, "course runs last hundreds of steps, not thousands"),
        "eval_steps": (None, "evaluate preference accuracy every 50 of the 200 steps"),
        "center_rewards_coefficient": (None, "both mean off; a number keeps the field a float"),
    },
    "DPOConfig": {
        "max_steps": (-1, "runs are counted in optimizer steps; TRL's -1 means 'train for num_train_epochs'"),
        "per_device_train_batch_size": (8, "tiny models: 16 pairs per pass cost little"),
        "learning_rate": (1e-6, "a tiny model; TRL's rate is for a pretrained LLM"),
        "eval_steps": (None, "evaluate preference accuracy every 50 of the 200 steps"),
    },
}
