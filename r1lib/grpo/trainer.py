"""The GRPO trainer: sampling, scoring and the loss of :mod:`r1lib.grpo.loss`, on the shared loop.

The data flow of one generation batch::

    prompts -> rollout (G completions each) -> score_groups -> group advantages
            -> per-token log-probs (policy, old, reference) -> grpo_loss -> optimizer step

Everything else (optimizer, schedule, mixed precision, checkpoints, resume, logging) is
:class:`r1lib.trainer.Trainer`'s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ..configs import GRPOConfig
from ..records import length_buckets
from ..estimates import StepShape
from ..evaluate import behaviour_rates
from ..evaluate import evaluate as evaluate_policy
from ..logprobs import completion_logps
from ..rewards import RewardFunc
from ..rollout import Rollout, render_prompts, rollout
from ..stream import ExampleStream, fingerprint
from ..tasks.base import Example, Task
from ..trainer import Trainer, TrainerCallback
from .loss import group_advantages, grpo_loss
from .scoring import ScoredGroups, as_reward_list, reward_name, score_groups


def _qualified_name(func: RewardFunc) -> str:
    """``module.qualname`` of a reward function (of its class, for a callable object)."""
    owner = func if hasattr(func, "__qualname__") else type(func)
    return f"{getattr(owner, '__module__', '?')}.{owner.__qualname__}"


@dataclass
class PolicyBatch:
    """What the optimisation of one generation batch needs, as tensors (so it can be checkpointed).

    ``loss_mask`` is the completion mask without the truncated completions when they are masked;
    ``old_logps`` exist when the batch is reused (``num_iterations`` > 1), ``ref_logps`` when ``beta`` > 0.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    loss_mask: torch.Tensor
    advantages: torch.Tensor
    old_logps: torch.Tensor | None = None
    ref_logps: torch.Tensor | None = None

    def tensors(self, prefix: str = "batch.") -> dict[str, torch.Tensor]:
        return {prefix + f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], device: torch.device, prefix: str = "batch.") -> PolicyBatch | None:
        found = {k[len(prefix):]: v.to(device) for k, v in tensors.items() if k.startswith(prefix)}
        return cls(**found) if found else None


class GRPOTrainer(Trainer):
    """Train ``model`` with GRPO on ``train_examples`` of ``task``, scored by ``reward_funcs`` (TRL-style
    reward functions: a list, or one function alone).

    Inputs are checked before any compute: a prompt that cannot fit in the model's context together
    with ``max_completion_length`` new tokens is an error that counts such prompts.

    Everything a run produces goes under ``output_dir``: ``metrics.jsonl`` (TRL's metric names),
    ``completions.jsonl`` (the first ``log_completions`` completions of every generation batch,
    whole groups, with their rewards and advantages) and ``checkpoints/step-*``.

    With ``beta`` > 0 the reference is ``ref_model``, else the adapter-free base of a LoRA model,
    else a frozen copy of ``model`` taken now.
    """

    name = "GRPO"
    progress_keys = ("reward", "completions/mean_length")
    LENGTH_BUCKETS = 4  # see _logps

    def __init__(
        self,
        model,
        tokenizer,
        task: Task,
        reward_funcs: RewardFunc | Sequence[RewardFunc],
        train_examples: Sequence[Example],
        config: GRPOConfig,
        output_dir: str | Path | None,
        eval_examples: Sequence[Example] | None = None,
        ref_model=None,
        callbacks: Iterable[TrainerCallback | Callable] = (),
        progress: bool = True,
    ) -> None:
        if not isinstance(config, GRPOConfig):
            raise TypeError(f"GRPOTrainer needs a GRPOConfig, got {type(config).__name__}")
        reward_funcs = as_reward_list(reward_funcs)
        if not reward_funcs:
            raise ValueError("GRPOTrainer needs at least one reward function")
        if not train_examples:
            raise ValueError("GRPOTrainer needs training examples")
        if config.reward_weights is not None and len(config.reward_weights) != len(reward_funcs):
            raise ValueError(f"{len(config.reward_weights)} reward_weights for {len(reward_funcs)} reward functions")
        names = [reward_name(f, i) for i, f in enumerate(reward_funcs)]
        if len(set(names)) != len(names):
            raise ValueError(f"reward functions need distinct names (they name the logged metrics), got {names}")
        is_lora = hasattr(model, "disable_adapter")
        if config.sync_ref_model and is_lora and ref_model is None:
            raise ValueError("sync_ref_model is not supported with LoRA: the reference is the adapter-free base")
        # Before the base class and the reference copy: a run that cannot work should cost nothing.
        longest = self._check_prompt_lengths(model, tokenizer, task, train_examples, config.max_completion_length)
        super().__init__(model, config, output_dir, tokenizer=tokenizer, callbacks=callbacks, progress=progress)
        self.config: GRPOConfig = config
        self.task = task
        self.reward_funcs = list(reward_funcs)
        self.train_examples = list(train_examples)
        self.eval_examples = list(eval_examples or [])[: config.eval_examples]
        self.ref_model = self._reference(ref_model) if config.beta > 0 else None
        self.stream = self.add_stream("stream", ExampleStream(self.train_examples, seed=config.seed),
                                      data={"train_examples": [_identity(e) for e in self.train_examples]})
        self._batch: PolicyBatch | None = None
        self._batch_uses = 0  # optimizer steps taken on self._batch
        self.longest_prompt = longest
        self._abstain_warned: set[str] = set()  # reward functions already warned about (once per run)

    def step_shape(self) -> StepShape:
        reference = 0.0
        if self.ref_model is not None:
            reference = sum(p.numel() * p.element_size() for p in self.ref_model.parameters())
        return StepShape(self.config.per_device_train_batch_size, self.longest_prompt,
                         self.config.max_completion_length, generates=True, other_models_bytes=reference)

    def _reference(self, ref_model):
        if ref_model is not None:
            return ref_model.eval().requires_grad_(False)
        if hasattr(self.model, "disable_adapter"):
            return None  # a peft model: the reference is the same model with the adapter disabled
        return copy.deepcopy(self.model).eval().requires_grad_(False)

    @staticmethod
    def _check_prompt_lengths(model, tokenizer, task: Task, examples: Sequence[Example], max_new: int) -> int:
        """The longest training prompt in tokens; a ValueError when a prompt and its completion cannot
        fit in the model's ``max_position_embeddings``.

        Positions beyond that limit were never trained: sampling and the loss would run on them
        quietly, so a run that needs them is refused before any compute.
        """
        prompts = render_prompts(tokenizer, [task.prompt(e) for e in examples])
        lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        longest = max(lengths)
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if not limit or longest + max_new <= limit:
            return longest
        too_long = sum(n + max_new > limit for n in lengths)
        room = limit - max_new
        fix = (f"keep only examples whose prompt has at most {room} tokens, or lower max_completion_length"
               if room > 0 else f"lower max_completion_length below {limit}")
        raise ValueError(
            f"{too_long} of {len(lengths)} training prompts are too long: the longest has {longest} tokens, and with "
            f"max_completion_length={max_new} a sequence reaches {longest + max_new} positions, beyond the model's "
            f"limit of {limit} (max_position_embeddings). Fix: {fix}."
        )

    def data_fingerprint(self) -> dict[str, str]:
        """What a resumed run must share with the checkpoint: the training examples (the stream's
        data) and the reward functions.

        The base class stores this in every checkpoint and refuses to resume on a mismatch.
        """
        rewards = [[_qualified_name(f), reward_name(f, i)] for i, f in enumerate(self.reward_funcs)]
        return {**super().data_fingerprint(),
                "reward_funcs": fingerprint({"functions": rewards, "weights": self.config.reward_weights})}

    # ---------------------------------------------------------------- state the base checkpoints

    @property
    def completions_path(self) -> Path:
        return self.output_dir / "completions.jsonl"

    @property
    def log_files(self) -> list[Path]:
        return super().log_files + ([self.completions_path] if self.output_dir is not None else [])

    @property
    def does_evaluate(self) -> bool:
        return bool(self.eval_examples)

    def on_fresh_start(self) -> None:
        self._batch, self._batch_uses = None, 0

    def trainer_state(self) -> dict[str, Any]:
        return {"batch_uses": self._batch_uses}

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self._batch_uses = int(state.get("batch_uses", 0))

    def trainer_tensors(self) -> dict[str, torch.Tensor]:
        # A generation batch still being reused (num_iterations > 1) must survive a restart.
        if self._batch is not None and self._batch_uses < self.config.num_iterations:
            return self._batch.tensors()
        return {}

    def load_trainer_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self._batch = PolicyBatch.from_tensors(tensors, self.device)
        if self._batch is None:
            self._batch_uses = self.config.num_iterations

    def checkpoint_models(self) -> dict[str, torch.nn.Module]:
        if self.config.sync_ref_model and self.ref_model is not None:
            return {"ref_model": self.ref_model}
        return {}

    # ---------------------------------------------------------------- sampling and scoring

    def sample(self, examples: Sequence[Example]) -> Rollout:
        """``num_generations`` completions per example from the current policy."""
        cfg = self.config
        prompts = render_prompts(self.tokenizer, [self.task.prompt(e) for e in examples])
        return rollout(
            self.model, self.tokenizer, prompts, cfg.num_generations, cfg.max_completion_length,
            cfg.temperature, cfg.top_p, generator=self.generator,
        )

    def score(self, examples: Sequence[Example], out: Rollout) -> ScoredGroups:
        """Score a rollout with this trainer's reward functions and weights."""
        prompts = [self.task.prompt(e) for e in examples]
        return score_groups(examples, out, prompts, self.reward_funcs, self.config.reward_weights,
                            warned=self._abstain_warned)

    def generate_groups(self) -> tuple[ScoredGroups, dict[str, float]]:
        """Sample and score one generation batch; return it with its reward metrics.

        With ``dynamic_sampling``, groups whose rewards have no spread (all right or all wrong:
        zero advantage, zero gradient) are dropped and replaced by groups for new prompts, up to
        ``extra_group_cap`` extra groups.
        """
        cfg = self.config
        examples = self.stream.take(cfg.prompts_per_step)
        groups = self.score(examples, self.sample(examples))
        metrics = groups.metrics()  # measured on what the policy sampled, before any filtering
        if cfg.dynamic_sampling:
            groups, extra = self._refill(groups)
            metrics["dynamic_sampling/extra_groups"] = extra
            metrics["dynamic_sampling/kept_groups"] = groups.num_groups
        return groups, metrics

    def _refill(self, groups: ScoredGroups) -> tuple[ScoredGroups, int]:
        cfg = self.config
        kept = [groups.select(groups.groups_with_spread())]
        have, extra = kept[0].num_groups, 0
        while have < cfg.prompts_per_step and extra < cfg.extra_group_cap:
            more = self.stream.take(min(cfg.prompts_per_step - have, cfg.extra_group_cap - extra))
            extra += len(more)
            scored = self.score(more, self.sample(more))
            kept.append(scored.select(scored.groups_with_spread()))
            have += kept[-1].num_groups
        if have == 0:  # nothing with spread: keep the original batch; its gradient is zero anyway
            return groups, extra
        return ScoredGroups.concat(kept, self._pad_id), extra

    @property
    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.tokenizer.eos_token_id

    def prepare(self, groups: ScoredGroups) -> PolicyBatch:
        """Advantages, the loss mask, and the old and reference log-probs of a scored batch."""
        cfg = self.config
        out = groups.rollout
        loss_mask = out.completion_mask.clone()
        if cfg.mask_truncated_completions:
            loss_mask[out.is_truncated] = 0
        batch = PolicyBatch(
            out.prompt_ids, out.prompt_mask, out.completion_ids, out.completion_mask, loss_mask,
            group_advantages(groups.rewards, cfg.num_generations, cfg.scale_rewards),
        )
        micro_batches = self._micro_batches(batch)
        with torch.no_grad():
            if cfg.num_iterations > 1:  # the sampling policy, kept as pi_old for the reuses to come
                batch.old_logps = torch.cat([self._logps(self.model, batch, rows)[0] for rows in micro_batches])
            if cfg.beta > 0:
                batch.ref_logps = torch.cat([self._reference_logps(batch, rows) for rows in micro_batches])
        return batch

    # ---------------------------------------------------------------- optimisation

    def _micro_batches(self, batch: PolicyBatch) -> list[slice]:
        """The rows of each forward/backward pass: ``per_device_train_batch_size`` completions at a time."""
        size = self.config.per_device_train_batch_size
        return [slice(i, i + size) for i in range(0, batch.loss_mask.shape[0], size)]

    def _logps(self, model, batch: PolicyBatch, rows: slice, with_entropy: bool = False):
        """Per-token log-probs (and entropies) of ``rows``, computed in length buckets.

        Completions of one batch differ a lot in length (a direct answer is 4 tokens, a reasoning
        trace 40), and padding every row to the longest one wastes most of the forward and backward
        pass. Rows are grouped by length (:func:`r1lib.records.length_buckets`), each bucket is trimmed
        to its own longest completion, and the results are padded back: each row's log-probs depend
        only on its own tokens.
        """
        mask = batch.completion_mask[rows]
        buckets = length_buckets(mask.sum(dim=1), self.LENGTH_BUCKETS, stable=False)
        width = mask.shape[1]
        parts, entropies = [], []
        with self.autocast():
            for bucket in (torch.tensor(b, device=mask.device) for b in buckets):
                trim = max(1, int(mask[bucket].sum(dim=1).max()))
                logps, entropy = completion_logps(
                    model, batch.prompt_ids[rows][bucket], batch.prompt_mask[rows][bucket],
                    batch.completion_ids[rows][bucket, :trim], mask[bucket, :trim],
                    temperature=self.config.temperature, with_entropy=with_entropy,
                )
                parts.append(torch.nn.functional.pad(logps, (0, width - trim)))
                if with_entropy:
                    entropies.append(torch.nn.functional.pad(entropy, (0, width - trim)))
        restore = torch.tensor([i for b in buckets for i in b], device=mask.device).argsort()
        return torch.cat(parts)[restore], torch.cat(entropies)[restore] if with_entropy else None

    def _reference_logps(self, batch: PolicyBatch, rows: slice) -> torch.Tensor:
        if self.ref_model is None:
            with self.model.disable_adapter():
                return self._logps(self.model, batch, rows)[0]
        return self._logps(self.ref_model, batch, rows)[0]

    def optimise(self, batch: PolicyBatch) -> dict[str, float]:
        """Accumulate the gradient of one update on ``batch``, in micro-batches of
        ``per_device_train_batch_size`` completions; return the loss metrics. (The base class
        clips, steps and schedules.)"""
        cfg = self.config
        micro_batches = self._micro_batches(batch)
        num_items = int(batch.loss_mask.sum())
        sums = {"loss": 0.0, "kl": 0.0, "entropy": 0.0, "clip_ratio/low_mean": 0.0, "clip_ratio/high_mean": 0.0}
        for rows in micro_batches:
            logps, entropy = self._logps(self.model, batch, rows, with_entropy=True)
            old = logps.detach() if batch.old_logps is None else batch.old_logps[rows]
            ref = None if batch.ref_logps is None else batch.ref_logps[rows]
            result = grpo_loss(logps, old, batch.advantages[rows], batch.loss_mask[rows], cfg, ref, num_items_in_batch=num_items)
            # dapo already divides by the whole batch's token count; the others average over micro-batches.
            loss = result.loss if cfg.loss_type == "dapo" else result.loss / len(micro_batches)
            self.backward(loss)
            token_mask = batch.completion_mask[rows].float()
            sums["loss"] += loss.item()
            sums["kl"] += (result.kl or 0.0) / len(micro_batches)
            sums["entropy"] += float((entropy * token_mask).sum() / token_mask.sum().clamp(min=1)) / len(micro_batches)
            sums["clip_ratio/low_mean"] += result.clip_ratio_low / len(micro_batches)
            sums["clip_ratio/high_mean"] += result.clip_ratio_high / len(micro_batches)
        if cfg.beta == 0:
            del sums["kl"]
        sums["clip_ratio/region_mean"] = sums["clip_ratio/low_mean"] + sums["clip_ratio/high_mean"]
        return sums

    def training_step(self) -> dict[str, float]:
        """One update: a new generation batch every ``num_iterations`` steps, reused in between."""
        metrics: dict[str, float] = {}
        if self._batch is None or self._batch_uses >= self.config.num_iterations:
            groups, metrics = self.generate_groups()
            self._batch, self._batch_uses = self.prepare(groups), 0
            out = groups.rollout
            tokens = int(out.prompt_mask.sum() + out.completion_mask.sum())
            prompt_tokens = int(out.prompt_mask.sum()) // self.config.num_generations  # each prompt is prefilled once
            extra_passes = (self.config.num_iterations > 1) + (self.config.beta > 0)  # old and reference log-probs
            metrics.update({
                "flops/sampling": 2.0 * self.num_parameters * (prompt_tokens + int(out.completion_mask.sum())),
                "flops/training": 2.0 * self.num_parameters * tokens * extra_passes,
                "completions/mean_length": float(out.completion_lengths.float().mean()),
                "completions/clipped_ratio": float(out.is_truncated.float().mean()),
                **{f"completions/{k}": v for k, v in behaviour_rates(out.texts).items()},
                "num_tokens": float(out.completion_mask.sum()),
            })
            self._log_completions(groups, self._batch.advantages)
        metrics.update(self.optimise(self._batch))
        update_tokens = int(self._batch.prompt_mask.sum() + self._batch.completion_mask.sum())
        metrics["flops/training"] = metrics.get("flops/training", 0.0) + 6.0 * self.num_parameters * update_tokens
        self._batch_uses += 1
        return metrics

    def after_optimizer_step(self) -> None:
        cfg = self.config
        if cfg.sync_ref_model and self.ref_model is not None and self.state.step % cfg.ref_model_sync_steps == 0:
            alpha = cfg.ref_model_mixup_alpha
            with torch.no_grad():
                for ref_param, param in zip(self.ref_model.parameters(), self.model.parameters(), strict=True):
                    ref_param.mul_(1.0 - alpha).add_(param.detach(), alpha=alpha)

    def _log_completions(self, groups: ScoredGroups, advantages: torch.Tensor) -> None:
        if self.output_dir is None:
            return
        step = self.state.step + 1  # the step this batch is first optimised in
        for i in range(min(self.config.log_completions, len(groups.completions))):
            example = groups.examples[i // groups.num_generations]
            self.append_jsonl(self.completions_path, {
                "step": step, "question": example.question, "answer": example.answer,
                "completion": groups.completions[i], "reward": float(groups.rewards[i]),
                "advantage": float(advantages[i]),
                "rewards": {name: scores[i] for name, scores in groups.reward_columns.items()},
            })

    def evaluate(self, examples: Sequence[Example] | None = None) -> dict[str, float]:
        """pass@1 (one sample per example at the training temperature), reasoning rate and length."""
        examples = list(examples or self.eval_examples)
        result = evaluate_policy(
            self.model, self.tokenizer, self.task, examples, temperature=self.config.temperature,
            max_new_tokens=self.config.max_completion_length, seed=self.config.seed + 1,
        )
        return {f"eval/{k}": v for k, v in result.summary().items()}


def _identity(example: Example) -> list[str]:
    """What makes a training example the same on resume: its question and answer, and the language it
    is posed in when it has one (the prompt differs by language; English-only data keeps its old form)."""
    language = example.info.get("language")
    return [example.question, example.answer] + ([language] if language is not None else [])
