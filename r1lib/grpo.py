"""Group Relative Policy Optimisation (GRPO), with the knobs and metric names of TRL.

The data flow of one step::

    prompts -> rollout (G completions each) -> rewards -> group advantages
            -> per-token log-probs (policy, old, reference) -> clipped surrogate + beta * KL -> step

The three pieces a reader should study are :func:`group_advantages`, :func:`per_token_kl` and
:func:`grpo_loss`; the trainer only wires them together.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .checkpoint import (
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    remove_partial_checkpoints,
    save_checkpoint,
)
from .evaluate import evaluate, has_reflection
from .rewards import RewardFunc, combine_rewards
from .rollout import Rollout, render_prompts, rollout
from .tasks.base import Example, Task, example_columns

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
IMPORTANCE_LEVELS = ("token", "sequence")


@dataclass
class GRPOConfig:
    """GRPO settings. Field names follow TRL's ``GRPOConfig`` so users can move between the two.

    ``per_device_train_batch_size`` counts completions per forward/backward pass; one optimizer
    step uses ``gradient_accumulation_steps`` such micro-batches, i.e.
    ``per_device_train_batch_size * gradient_accumulation_steps // num_generations`` prompts.
    One step is one generation batch; with ``num_iterations`` > 1 that batch is optimised on
    ``num_iterations`` times, with the sampling policy's log-probs stored as "old".
    """

    num_generations: int = 8
    per_device_train_batch_size: int = 64
    max_steps: int = 100
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "constant"  # or "linear" / "cosine" decay to zero
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    bf16: bool = False  # autocast on CUDA; ignored on the CPU
    fp16: bool = False  # autocast with loss scaling on CUDA; ignored on the CPU
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
    seed: int = 0
    save_steps: int = 50
    eval_steps: int = 25
    eval_examples: int = 128
    log_completions: int = 8

    def __post_init__(self) -> None:
        problems = []
        if self.num_generations < 2:
            problems.append(f"num_generations must be >= 2 for group advantages (got {self.num_generations})")
        elif self.per_device_train_batch_size % self.num_generations:
            problems.append(
                f"per_device_train_batch_size ({self.per_device_train_batch_size}) must be divisible by "
                f"num_generations ({self.num_generations}); try {self.num_generations * max(1, self.per_device_train_batch_size // self.num_generations)}"
            )
        if self.loss_type not in LOSS_TYPES:
            problems.append(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.scale_rewards not in SCALE_REWARDS:
            problems.append(f"scale_rewards must be one of {SCALE_REWARDS}, got {self.scale_rewards!r}")
        if self.importance_sampling_level not in IMPORTANCE_LEVELS:
            problems.append(f"importance_sampling_level must be one of {IMPORTANCE_LEVELS}")
        if self.lr_scheduler_type not in ("constant", "linear", "cosine"):
            problems.append("lr_scheduler_type must be 'constant', 'linear' or 'cosine'")
        if self.beta < 0 or self.epsilon < 0 or (self.epsilon_high is not None and self.epsilon_high < self.epsilon):
            problems.append("need beta >= 0, epsilon >= 0 and epsilon_high >= epsilon")
        if self.learning_rate <= 0 or self.max_steps < 1 or self.num_iterations < 1:
            problems.append("learning_rate, max_steps and num_iterations must be positive")
        if self.max_completion_length < 1 or self.temperature < 0 or not 0 < self.top_p <= 1:
            problems.append("need max_completion_length >= 1, temperature >= 0, 0 < top_p <= 1")
        if min(self.save_steps, self.eval_steps, self.gradient_accumulation_steps, self.ref_model_sync_steps) < 1:
            problems.append("save_steps, eval_steps, gradient_accumulation_steps and ref_model_sync_steps must be >= 1")
        if self.bf16 and self.fp16:
            problems.append("choose at most one of bf16 and fp16")
        if not 0.0 < self.ref_model_mixup_alpha <= 1.0:
            problems.append("ref_model_mixup_alpha must be in (0, 1]")
        if self.sync_ref_model and self.beta == 0:
            problems.append("sync_ref_model needs beta > 0: with beta == 0 there is no reference model")
        if self.max_extra_groups is not None and self.max_extra_groups < 0:
            problems.append("max_extra_groups must be >= 0")
        if problems:
            raise ValueError("invalid GRPOConfig:\n  - " + "\n  - ".join(problems))

    @property
    def prompts_per_step(self) -> int:
        """Distinct prompts (groups) in one generation batch."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps // self.num_generations

    @property
    def extra_group_cap(self) -> int:
        """How many refill groups dynamic sampling may draw per step."""
        return 2 * self.prompts_per_step if self.max_extra_groups is None else self.max_extra_groups


# --------------------------------------------------------------------------- the algorithm


def group_advantages(rewards: torch.Tensor, num_generations: int, scale_rewards: str = "group") -> torch.Tensor:
    """Advantage of each completion relative to the other completions of its prompt.

    ``A_i = r_i - mean(group)``, divided by the group's (``"group"``) or the batch's (``"batch"``)
    standard deviation plus 1e-4, or not at all (``"none"``, as Dr. GRPO recommends).
    A group whose rewards are all equal gets zero advantage, hence zero gradient. A ``NaN``
    reward marks an unscorable completion (every reward function returned None): it is left out
    of the statistics and gets advantage 0, as in TRL.
    """
    if rewards.numel() % num_generations:
        raise ValueError(f"{rewards.numel()} rewards is not a multiple of num_generations={num_generations}")
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards must be one of {SCALE_REWARDS}")
    grouped = rewards.view(-1, num_generations)
    advantages = (grouped - grouped.nanmean(dim=1, keepdim=True)).view(-1)
    if scale_rewards == "group":
        advantages = advantages / (_nanstd(grouped, dim=1).repeat_interleave(num_generations) + 1e-4)
    elif scale_rewards == "batch":
        advantages = advantages / (_nanstd(rewards.view(1, -1), dim=1) + 1e-4)
    return advantages.nan_to_num(0.0)


def _nanstd(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Unbiased standard deviation ignoring NaNs; 0 where fewer than two values are present."""
    count = (~values.isnan()).sum(dim=dim)
    mean = values.nanmean(dim=dim, keepdim=True)
    variance = ((values - mean) ** 2).nansum(dim=dim) / (count - 1).clamp(min=1)
    return variance.sqrt()


def per_token_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(policy || reference), per token: ``e^(ref-p) - (ref-p) - 1 >= 0``."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


@dataclass
class LossOutput:
    """The scalar loss and what is worth logging about it."""

    loss: torch.Tensor
    kl: float | None
    clip_ratio_low: float
    clip_ratio_high: float


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: GRPOConfig,
    ref_logps: torch.Tensor | None = None,
    num_items_in_batch: int | None = None,
) -> LossOutput:
    """The clipped surrogate objective plus ``beta`` times the k3 KL, normalised by ``loss_type``.

    Shapes: ``logps``, ``old_logps``, ``ref_logps`` and ``mask`` are (B, T); ``advantages`` is (B,).
    ``num_items_in_batch`` is the total completion-token count of the whole generation batch, used
    by ``dapo`` when a batch is split across gradient-accumulation steps (defaults to this batch).
    """
    mask = mask.to(logps.dtype)
    log_ratio = logps - old_logps
    if config.importance_sampling_level == "sequence":  # GSPO: one length-normalised ratio per sequence
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    ratio = torch.exp(log_ratio)
    eps_low, eps_high = config.epsilon, config.epsilon_high if config.epsilon_high is not None else config.epsilon
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    adv = advantages.unsqueeze(-1)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl_value = None
    if config.beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta > 0 needs reference log-probs")
        kl = per_token_kl(logps, ref_logps)
        if config.use_bias_correction_kl:  # the KL is estimated on samples from the old policy
            kl = kl * ratio
        per_token = per_token + config.beta * kl
        kl_value = float((kl.detach() * mask).sum() / mask.sum().clamp(min=1.0))
    loss = _normalise(per_token, mask, config, num_items_in_batch)
    low = ((ratio < 1 - eps_low) & (adv < 0)).to(logps.dtype)
    high = ((ratio > 1 + eps_high) & (adv > 0)).to(logps.dtype)
    denominator = float(mask.sum().clamp(min=1.0))
    low, high, mask = low.detach(), high.detach(), mask.detach()
    expand = (lambda x: x.expand_as(mask)) if log_ratio.shape[-1] == 1 else (lambda x: x)
    return LossOutput(
        loss, kl_value, float((expand(low) * mask).sum()) / denominator, float((expand(high) * mask).sum()) / denominator
    )


def _normalise(per_token: torch.Tensor, mask: torch.Tensor, config: GRPOConfig, num_items: int | None) -> torch.Tensor:
    masked = per_token * mask
    if config.loss_type == "grpo":  # mean over each sequence, then over sequences: favours short wrong answers
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if config.loss_type == "bnpo":  # mean over all tokens of this batch
        return masked.sum() / mask.sum().clamp(min=1.0)
    if config.loss_type == "dr_grpo":  # a constant: no length bias at all
        return masked.sum() / (per_token.shape[0] * config.max_completion_length)
    total = num_items if num_items is not None else mask.sum()
    return masked.sum() / max(float(total), 1.0)


def completion_logps(
    model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
    completion_mask: torch.Tensor, temperature: float = 1.0, with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (B, T) of the completion under ``model``, and optionally the entropies.

    Logits are divided by the sampling ``temperature`` so that log-probs match the distribution the
    completions were drawn from (as TRL does).
    """
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention = torch.cat([prompt_mask, completion_mask], dim=1)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions).logits
    logits = logits[:, prompt_ids.shape[1] - 1 : -1, :].float()
    if temperature > 0:
        logits = logits / temperature
    log_probs = torch.log_softmax(logits, dim=-1)
    logps = log_probs.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1) if with_entropy else None
    return logps, entropy


# --------------------------------------------------------------------------- the trainer

Callback = Callable[[dict[str, Any]], None]


def log_to(tracker: Any) -> Callback:
    """A callback that forwards every metrics record to ``tracker.log`` (wandb, trackio, ...)."""
    return lambda metrics: tracker.log({k: v for k, v in metrics.items() if k != "step"}, step=metrics["step"])


@dataclass
class TrainerState:
    """What the trainer knows besides the weights: restored on resume."""

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Batch:
    """One generation batch, scored: everything the optimisation of a step needs."""

    examples: list[Example]
    rollout: Rollout
    rewards: torch.Tensor  # (B,)
    advantages: torch.Tensor  # (B,)
    loss_mask: torch.Tensor  # (B, T): completion tokens that count in the loss
    metrics: dict[str, float]
    reward_columns: dict[str, list[float | None]] = field(default_factory=dict)  # per reward function


def concat_rollouts(parts: Sequence[Rollout], pad_id: int) -> Rollout:
    """Stack rollouts of possibly different widths: prompts stay left-padded, completions right-padded."""
    if len(parts) == 1:
        return parts[0]
    prompt_width = max(p.prompt_ids.shape[1] for p in parts)
    completion_width = max(p.completion_ids.shape[1] for p in parts)

    def pad(t: torch.Tensor, width: int, value: int, left: bool) -> torch.Tensor:
        extra = width - t.shape[1]
        return torch.nn.functional.pad(t, (extra, 0) if left else (0, extra), value=value)

    return Rollout(
        torch.cat([pad(p.prompt_ids, prompt_width, pad_id, True) for p in parts]),
        torch.cat([pad(p.prompt_mask, prompt_width, 0, True) for p in parts]),
        torch.cat([pad(p.completion_ids, completion_width, pad_id, False) for p in parts]),
        torch.cat([pad(p.completion_mask, completion_width, 0, False) for p in parts]),
        torch.cat([p.is_truncated for p in parts]),
        [t for p in parts for t in p.texts],
        parts[0].num_generations,
    )


def select_groups(out: Rollout, groups: Sequence[int]) -> Rollout:
    """The rows of the given prompt groups, in that order."""
    g = out.num_generations
    rows = torch.tensor([r for i in groups for r in range(i * g, (i + 1) * g)], dtype=torch.long)
    rows = rows.to(out.prompt_ids.device)
    return Rollout(
        out.prompt_ids[rows], out.prompt_mask[rows], out.completion_ids[rows], out.completion_mask[rows],
        out.is_truncated[rows], [out.texts[r] for r in rows.tolist()], g,
    )


class GRPOTrainer:
    """Train ``model`` with GRPO on ``train_examples`` of ``task``, scored by ``reward_funcs``.

    Everything a run produces goes under ``output_dir``: ``metrics.jsonl`` (one line per step),
    ``completions.jsonl`` (sampled completions per step) and ``checkpoints/step-*``.
    """

    LENGTH_BUCKETS = 4  # see _logps

    def __init__(
        self,
        model,
        tokenizer,
        task: Task,
        reward_funcs: Sequence[RewardFunc],
        train_examples: Sequence[Example],
        config: GRPOConfig,
        output_dir: str | Path,
        eval_examples: Sequence[Example] | None = None,
        ref_model=None,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
    ) -> None:
        if not reward_funcs:
            raise ValueError("GRPOTrainer needs at least one reward function")
        if not train_examples:
            raise ValueError("GRPOTrainer needs training examples")
        if config.reward_weights is not None and len(config.reward_weights) != len(reward_funcs):
            raise ValueError(f"{len(config.reward_weights)} reward_weights for {len(reward_funcs)} reward functions")
        is_lora = hasattr(model, "disable_adapter")
        if config.sync_ref_model and is_lora and ref_model is None:
            raise ValueError("sync_ref_model is not supported with LoRA: the reference is the adapter-free base")
        self.model, self.tokenizer, self.task, self.config = model, tokenizer, task, config
        self.reward_funcs = list(reward_funcs)
        self.train_examples = list(train_examples)
        self.eval_examples = list(eval_examples or [])
        self.output_dir = Path(output_dir)
        self.callbacks = list(callbacks)
        self.progress = progress
        self.ref_model = self._reference(ref_model) if config.beta > 0 else None
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
            weight_decay=config.weight_decay,
        )
        self.state = TrainerState()
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device)
        self._order: list[int] = []
        self._epoch = 0
        on_cuda = self.device.type == "cuda"
        self._autocast_dtype = (torch.bfloat16 if config.bf16 else torch.float16 if config.fp16 else None) if on_cuda else None
        self._scaler = torch.amp.GradScaler("cuda") if on_cuda and config.fp16 else None

    def _reference(self, ref_model):
        """The frozen reference: a given model, the adapter-free base of a LoRA model, or a copy."""
        if ref_model is not None:
            return ref_model.eval().requires_grad_(False)
        if hasattr(self.model, "disable_adapter"):
            return None  # a peft model: the reference is the same model with the adapter disabled
        import copy

        return copy.deepcopy(self.model).eval().requires_grad_(False)

    # ---------------------------------------------------------------- bookkeeping

    @property
    def metrics_path(self) -> Path:
        return self.output_dir / "metrics.jsonl"

    @property
    def completions_path(self) -> Path:
        return self.output_dir / "completions.jsonl"

    def _learning_rate(self, step: int) -> float:
        cfg = self.config
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        progress = min(1.0, step / cfg.max_steps)
        decay = {"constant": 1.0, "linear": 1.0 - progress, "cosine": 0.5 * (1 + math.cos(math.pi * progress))}
        return cfg.learning_rate * warm * decay[cfg.lr_scheduler_type]

    def _next_examples(self, count: int) -> list[Example]:
        """The next ``count`` prompts of a seeded shuffle of the training set, reshuffled every epoch."""
        picked = []
        while len(picked) < count:
            if not self._order:
                self._epoch += 1
                self._order = list(range(len(self.train_examples)))
                random.Random(self.config.seed * 1_000_003 + self._epoch).shuffle(self._order)
            picked.append(self.train_examples[self._order.pop()])
        return picked

    def _append_jsonl(self, path: Path, record: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def save(self) -> Path:
        """Checkpoint model, optimizer, RNG and history now; returns the checkpoint directory."""
        state = {
            "step": self.state.step,
            "history": self.state.history,
            "generator": self.generator.get_state().tolist(),
            "order": self._order,
            "epoch": self._epoch,
            "config": asdict(self.config),
        }
        if self._scaler is not None:
            state["grad_scaler"] = self._scaler.state_dict()
        directory = self.output_dir / "checkpoints" / checkpoint_name(self.state.step)
        extra = {}
        if self.config.sync_ref_model and self.ref_model is not None:
            extra["ref_model"] = self.ref_model
        return save_checkpoint(directory, self.model, self.tokenizer, self.optimizer, state, extra_models=extra)

    def _resume(self, resume_from: str | Path | bool) -> None:
        remove_partial_checkpoints(self.output_dir / "checkpoints")
        path = latest_checkpoint(self.output_dir / "checkpoints") if resume_from is True else Path(resume_from)
        if path is None:
            return
        extra = {"ref_model": self.ref_model} if self.config.sync_ref_model and self.ref_model is not None else {}
        state = load_checkpoint(path, self.model, self.optimizer, extra_models=extra)
        self.state = TrainerState(state["step"], state["history"])
        self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        self._order = list(state["order"])
        self._epoch = state.get("epoch", 0)
        if self._scaler is not None and "grad_scaler" in state:
            self._scaler.load_state_dict(state["grad_scaler"])
        # Drop log lines written after the checkpoint, so the resumed curve continues without gaps.
        for log in (self.metrics_path, self.completions_path):
            if log.exists():
                kept = [line for line in log.read_text().splitlines() if line and json.loads(line)["step"] <= self.state.step]
                log.write_text("".join(line + "\n" for line in kept))

    # ---------------------------------------------------------------- generation and scoring

    def _score(self, examples: list[Example], out: Rollout) -> tuple[torch.Tensor, dict[str, list[float | None]]]:
        """Total reward per completion, and each reward function's scores by name."""
        g = self.config.num_generations
        prompts = [self.task.prompt(e) for e in examples for _ in range(g)]
        columns = {k: [v for v in values for _ in range(g)] for k, values in example_columns(examples).items()}
        per_function = [list(f(prompts, out.texts, **columns)) for f in self.reward_funcs]
        total = torch.tensor(combine_rewards(per_function, self.config.reward_weights), dtype=torch.float32)
        unscorable = [all(s is None or not math.isfinite(s) for s in row) for row in zip(*per_function)]
        total[torch.tensor(unscorable, dtype=torch.bool)] = float("nan")  # see group_advantages
        names = [getattr(f, "__name__", f"reward_{i}") for i, f in enumerate(self.reward_funcs)]
        return total.to(self.device), dict(zip(names, per_function))

    @staticmethod
    def _reward_means(columns: dict[str, list[float | None]]) -> dict[str, float]:
        means = {}
        for name, scores in columns.items():
            valid = [s for s in scores if s is not None and math.isfinite(s)]
            means[f"rewards/{name}/mean"] = sum(valid) / len(valid) if valid else 0.0
        return means

    def _sample(self, examples: list[Example]) -> Rollout:
        cfg = self.config
        prompts = render_prompts(self.tokenizer, [self.task.prompt(e) for e in examples])
        return rollout(
            self.model, self.tokenizer, prompts, cfg.num_generations, cfg.max_completion_length,
            cfg.temperature, cfg.top_p, generator=self.generator,
        )

    def generate_batch(self) -> Batch:
        """Sample and score one generation batch.

        With ``dynamic_sampling``, groups whose rewards have no spread (all right or all wrong:
        zero advantage, zero gradient) are dropped and replaced by groups for new prompts, up to
        ``extra_group_cap`` extra groups per step.
        """
        cfg = self.config
        g, wanted = cfg.num_generations, cfg.prompts_per_step
        examples = self._next_examples(wanted)
        out = self._sample(examples)
        rewards, columns = self._score(examples, out)
        metrics = self._reward_means(columns)
        std = _nanstd(rewards.view(-1, g), dim=1)
        metrics["frac_reward_zero_std"] = float((std < 1e-6).float().mean())
        metrics["reward"] = float(rewards.nanmean().nan_to_num(0.0))
        metrics["reward_std"] = float(std.mean())
        if cfg.dynamic_sampling:
            examples, out, rewards, columns, extra = self._refill(examples, out, rewards, columns)
            metrics["dynamic_sampling/extra_groups"] = extra
            metrics["dynamic_sampling/kept_groups"] = len(examples)
        advantages = group_advantages(rewards, g, cfg.scale_rewards)
        loss_mask = out.completion_mask.clone()
        if cfg.mask_truncated_completions:
            loss_mask[out.is_truncated] = 0
        return Batch(examples, out, rewards, advantages, loss_mask, metrics, columns)

    def _refill(self, examples, out, rewards, columns):
        cfg = self.config
        g, wanted = cfg.num_generations, cfg.prompts_per_step

        def with_spread(rewards: torch.Tensor) -> list[int]:
            return [i for i, s in enumerate(_nanstd(rewards.view(-1, g), dim=1).tolist()) if s > 1e-6]

        def rows(groups: list[int]) -> list[int]:
            return [r for i in groups for r in range(i * g, (i + 1) * g)]

        kept = with_spread(rewards)
        parts, kept_examples = [select_groups(out, kept)], [examples[i] for i in kept]
        kept_rewards = [rewards.view(-1, g)[kept]]
        kept_columns = {name: [scores[r] for r in rows(kept)] for name, scores in columns.items()}
        extra = 0
        while len(kept_examples) < wanted and extra < cfg.extra_group_cap:
            more = self._next_examples(min(wanted - len(kept_examples), cfg.extra_group_cap - extra))
            extra += len(more)
            more_out = self._sample(more)
            more_rewards, more_columns = self._score(more, more_out)
            spread = with_spread(more_rewards)
            parts.append(select_groups(more_out, spread))
            kept_examples += [more[i] for i in spread]
            kept_rewards.append(more_rewards.view(-1, g)[spread])
            for name, scores in more_columns.items():
                kept_columns[name] += [scores[r] for r in rows(spread)]
        if not kept_examples:  # nothing with spread: keep the original batch; its gradient is zero anyway
            return examples, out, rewards, columns, extra
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        merged = concat_rollouts([p for p in parts if p.texts], pad_id)
        return kept_examples, merged, torch.cat(kept_rewards).view(-1), kept_columns, extra

    # ---------------------------------------------------------------- optimisation

    def _logps(self, model, out: Rollout, rows: slice, with_entropy: bool = False):
        """Per-token log-probs (and entropies) of ``rows``, computed in length buckets.

        Completions of one batch differ a lot in length (a direct answer is 4 tokens, a reasoning
        trace 40), and padding every row to the longest one wastes most of the forward and backward
        pass. Rows are sorted by length, each bucket is trimmed to its own longest completion, and
        the results are padded back: each row's log-probs depend only on its own tokens.
        """
        mask = out.completion_mask[rows]
        order = mask.sum(dim=1).argsort()
        width = mask.shape[1]
        parts, entropies = [], []
        with torch.autocast(self.device.type, dtype=self._autocast_dtype, enabled=self._autocast_dtype is not None):
            for bucket in order.tensor_split(min(self.LENGTH_BUCKETS, len(order))):
                trim = max(1, int(mask[bucket].sum(dim=1).max()))
                logps, entropy = completion_logps(
                    model, out.prompt_ids[rows][bucket], out.prompt_mask[rows][bucket],
                    out.completion_ids[rows][bucket, :trim], mask[bucket, :trim],
                    temperature=self.config.temperature, with_entropy=with_entropy,
                )
                parts.append(torch.nn.functional.pad(logps, (0, width - trim)))
                if with_entropy:
                    entropies.append(torch.nn.functional.pad(entropy, (0, width - trim)))
        restore = order.argsort()
        return torch.cat(parts)[restore], torch.cat(entropies)[restore] if with_entropy else None

    def _reference_logps(self, out: Rollout, rows: slice) -> torch.Tensor:
        with torch.no_grad():
            if self.ref_model is None:
                with self.model.disable_adapter():
                    return self._logps(self.model, out, rows)[0]
            return self._logps(self.ref_model, out, rows)[0]

    def optimise(self, batch: Batch) -> dict[str, float]:
        """``num_iterations`` optimizer updates on ``batch``, in micro-batches of
        ``per_device_train_batch_size`` completions; returns loss metrics."""
        cfg = self.config
        out, mask = batch.rollout, batch.loss_mask
        size = cfg.per_device_train_batch_size
        chunks = [slice(i, i + size) for i in range(0, mask.shape[0], size)]
        num_items = int(mask.sum())
        old = ref = None
        if cfg.num_iterations > 1:
            with torch.no_grad():
                old = [self._logps(self.model, out, rows)[0] for rows in chunks]
        if cfg.beta > 0:
            ref = [self._reference_logps(out, rows) for rows in chunks]
        for group in self.optimizer.param_groups:
            group["lr"] = self._learning_rate(self.state.step)
        self.model.train()
        sums: dict[str, float] = {"loss": 0.0, "kl": 0.0, "entropy": 0.0, "clip_ratio/low_mean": 0.0, "clip_ratio/high_mean": 0.0}
        for _ in range(cfg.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            for i, rows in enumerate(chunks):
                logps, entropy = self._logps(self.model, out, rows, with_entropy=True)
                result = grpo_loss(
                    logps, logps.detach() if old is None else old[i], batch.advantages[rows], mask[rows], cfg,
                    None if ref is None else ref[i], num_items_in_batch=num_items,
                )
                # dapo already divides by the whole batch's token count; the others average over micro-batches.
                loss = result.loss if cfg.loss_type == "dapo" else result.loss / len(chunks)
                (self._scaler.scale(loss) if self._scaler else loss).backward()
                token_mask = out.completion_mask[rows].float()
                weight = 1 / (len(chunks) * cfg.num_iterations)
                sums["loss"] += loss.item() / cfg.num_iterations
                sums["kl"] += (result.kl or 0.0) * weight
                sums["entropy"] += float((entropy.detach() * token_mask).sum() / token_mask.sum().clamp(min=1)) * weight
                sums["clip_ratio/low_mean"] += result.clip_ratio_low * weight
                sums["clip_ratio/high_mean"] += result.clip_ratio_high * weight
            if self._scaler is not None:
                self._scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
            if self._scaler is not None:
                self._scaler.step(self.optimizer)
                self._scaler.update()
            else:
                self.optimizer.step()
        if cfg.beta == 0:
            del sums["kl"]
        sums["grad_norm"] = float(grad_norm)
        sums["learning_rate"] = self.optimizer.param_groups[0]["lr"]
        return sums

    def _sync_reference(self) -> None:
        alpha = self.config.ref_model_mixup_alpha
        with torch.no_grad():
            for ref_param, param in zip(self.ref_model.parameters(), self.model.parameters(), strict=True):
                ref_param.mul_(1.0 - alpha).add_(param.detach(), alpha=alpha)

    def step(self) -> dict[str, Any]:
        """Run one GRPO step (generate, score, optimise) and return its metrics."""
        began = time.time()
        batch = self.generate_batch()
        loss_metrics = self.optimise(batch)
        self.state.step += 1
        cfg = self.config
        if cfg.sync_ref_model and self.ref_model is not None and self.state.step % cfg.ref_model_sync_steps == 0:
            self._sync_reference()
        out = batch.rollout
        metrics: dict[str, Any] = {
            "step": self.state.step,
            **batch.metrics,
            **loss_metrics,
            "completions/mean_length": float(out.completion_lengths.float().mean()),
            "completions/clipped_ratio": float(out.is_truncated.float().mean()),
            "completions/reflection_rate": sum(map(has_reflection, out.texts)) / len(out.texts),
            "num_tokens": int(out.completion_mask.sum()),
            "step_time": time.time() - began,
        }
        self._log_completions(batch)
        return metrics

    def _log_completions(self, batch: Batch) -> None:
        for i in range(min(self.config.log_completions, len(batch.rollout.texts))):
            example = batch.examples[i // self.config.num_generations]
            self._append_jsonl(self.completions_path, {
                "step": self.state.step, "question": example.question, "answer": example.answer,
                "completion": batch.rollout.texts[i], "reward": float(batch.rewards[i].nan_to_num(0.0)),
                "advantage": float(batch.advantages[i]),
                "rewards": {name: scores[i] for name, scores in batch.reward_columns.items()},
            })

    def evaluate(self, examples: Sequence[Example] | None = None) -> dict[str, float]:
        """pass@1 (one sample per example at the training temperature), reasoning rate and length."""
        examples = list(examples or self.eval_examples)
        result = evaluate(
            self.model, self.tokenizer, self.task, examples, temperature=self.config.temperature,
            max_new_tokens=self.config.max_completion_length, seed=self.config.seed + 1,
        )
        return {f"eval/{k}": v for k, v in result.summary().items()}

    # ---------------------------------------------------------------- the loop

    def train(self, resume_from: str | Path | bool | None = None) -> list[dict[str, Any]]:
        """Train until ``config.max_steps``; returns the metrics history.

        ``resume_from`` is a checkpoint directory, or True for the latest one under ``output_dir``
        (a fresh start when there is none). Interrupting (Ctrl-C, or the stop button in a notebook)
        saves a checkpoint and returns.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume_from:
            self._resume(resume_from)
        if self.state.step == 0:
            self.generator.manual_seed(self.config.seed)
            for path in (self.metrics_path, self.completions_path):
                path.unlink(missing_ok=True)
            self.state.history = []
            if self.eval_examples:
                self._record({"step": 0, **self.evaluate()})
        bar = tqdm(total=self.config.max_steps, initial=self.state.step, desc="GRPO", disable=not self.progress)
        try:
            while self.state.step < self.config.max_steps:
                metrics = self.step()
                last = self.state.step == self.config.max_steps
                if self.eval_examples and (self.state.step % self.config.eval_steps == 0 or last):
                    metrics.update(self.evaluate())
                self._record(metrics)
                bar.update(1)
                bar.set_postfix(reward=f"{metrics['reward']:.2f}", length=f"{metrics['completions/mean_length']:.1f}")
                if self.state.step % self.config.save_steps == 0 or last:
                    self.save()
        except KeyboardInterrupt:
            path = self.save()
            print(f"\ninterrupted: saved {path}; resume with trainer.train(resume_from=True)")
        finally:
            bar.close()
        return self.state.history

    def _record(self, metrics: dict[str, Any]) -> None:
        self.state.history.append(metrics)
        self._append_jsonl(self.metrics_path, metrics)
        for callback in self.callbacks:
            callback(metrics)
