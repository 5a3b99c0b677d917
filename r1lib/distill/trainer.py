"""The distillation trainer: logit distillation on teacher traces, and on-policy distillation.

* **Logit KD**: on the teacher's traces, the teacher's logits at every position are the targets of
  :func:`r1lib.distill.losses.kd_loss`.
* **On-policy distillation**: the *student* samples, and the teacher grades every token of the
  student's own sequences; ``lmbda`` is the share of such steps (GKD). With ``lmbda=1`` and the
  reverse KL it is per-token reverse-KL on-policy distillation
  (:func:`r1lib.distill.losses.on_policy_reverse_kl`).

Both are the causal-LM step of :class:`r1lib.causal_lm.CausalLMTrainer` with two parts changed:
the loss (:class:`DistillationLoss`) and, on on-policy steps, where the sequences come from.

Every step reports its compute as ``flops/*`` metrics (2 x parameters per token for a forward pass,
4 x for a backward pass), which :class:`r1lib.compute.ComputeLedger` adds up so that methods can be
compared at equal compute.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from ..causal_lm import LogitsOf, TokenLoss
from ..configs import DistillConfig
from ..estimates import StepShape
from ..rollout import render_prompts, rollout
from ..records import Encoded, PromptCompletion
from ..sft import SFTTrainer
from ..stream import ExampleStream
from ..tasks.base import Example, Task
from ..trainer import TrainerCallback, parameter_count
from .losses import check_top_k, divergence_beta, kd_loss


def check_same_vocabulary(student, teacher, tokenizer) -> None:
    """Teacher and student must share a tokenizer: a mismatch is an error naming both sizes."""
    sizes = {"student": student.config.vocab_size, "teacher": teacher.config.vocab_size}
    if sizes["student"] != sizes["teacher"]:
        raise ValueError(
            f"the teacher's vocabulary has {sizes['teacher']} tokens and the student's {sizes['student']}: distillation "
            "over logits needs one shared tokenizer and vocabulary"
        )
    if len(tokenizer) > sizes["student"]:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens, more than the models' {sizes['student']}")


class DistillationLoss(TokenLoss):
    """:func:`kd_loss` of the student's logits against the teacher's on the same micro-batch: the mean
    divergence over the completion tokens, as ``config`` sets it (divergence, beta, temperature, top-k)."""

    reduction = "mean"

    def __init__(self, teacher: torch.nn.Module, config: DistillConfig) -> None:
        self.teacher, self.config = teacher, config
        self.models = (teacher,)
        self.teacher_params = parameter_count(teacher)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, logits_of: LogitsOf) -> torch.Tensor:
        cfg = self.config
        with torch.no_grad():
            teacher_logits = logits_of(self.teacher)[:, :-1]
        return kd_loss(logits[:, :-1], teacher_logits, labels[:, 1:] != -100, cfg.divergence, cfg.beta,
                       cfg.kd_temperature, cfg.top_k)

    def costs(self, tokens: int) -> dict[str, float]:
        """The teacher's forward passes."""
        return {"flops/teacher": 2.0 * self.teacher_params * tokens}


class DistillTrainer(SFTTrainer):
    """Logit distillation on teacher traces, mixed with on-policy steps where the student samples.

    On each step, with probability ``lmbda`` (a seeded draw) the student samples completions for the
    step's prompts (on-policy); otherwise the step's sequences are teacher traces. Either way the
    teacher's logits on those sequences are the targets of :func:`kd_loss` (:class:`DistillationLoss`).
    On-policy steps log ``distill/truncated_fraction``: a student that stops emitting end-of-sequence
    runs to ``max_new_tokens`` and is flagged with a warning once it passes ``max_truncated_fraction``.
    """

    name = "distill"

    def __init__(
        self,
        student,
        tokenizer,
        teacher,
        traces: Sequence[PromptCompletion],
        config: DistillConfig,
        output_dir: str | Path | None = None,
        task: Task | None = None,
        prompts: Sequence[Example] = (),
        eval_examples: Sequence[Example] = (),
        callbacks: Iterable[TrainerCallback | Callable] = (),
        progress: bool = True,
    ) -> None:
        if not isinstance(config, DistillConfig):
            raise TypeError(f"DistillTrainer needs a DistillConfig, got {type(config).__name__}")
        check_same_vocabulary(student, teacher, tokenizer)
        check_top_k(config.top_k, divergence_beta(config.divergence, config.beta))
        if config.lmbda > 0 and (task is None or not prompts):
            raise ValueError("on-policy steps (lmbda > 0) need a task and prompts for the student to answer")
        if config.lmbda < 1 and not traces:
            raise ValueError("steps on teacher traces (lmbda < 1) need traces")
        placeholder = [PromptCompletion(task.prompt(prompts[0]), tokenizer.eos_token)] if not traces else list(traces)
        super().__init__(student, tokenizer, placeholder, config, output_dir, eval_task=task,
                         eval_examples=eval_examples, callbacks=callbacks, progress=progress)
        self.config: DistillConfig = config
        self.teacher = teacher.eval().requires_grad_(False)
        self.loss = DistillationLoss(self.teacher, config)  # instead of SFT's cross-entropy
        self.task, self.prompts = task, list(prompts)
        self.prompt_stream: ExampleStream[Example] | None = None
        if self.prompts:
            self.prompt_stream = self.add_stream("prompt_stream", ExampleStream(self.prompts, seed=config.seed),
                                                 data={"prompts": [[e.question, e.answer] for e in self.prompts]})
        self._warned = False

    def step_shape(self) -> StepShape:
        shape = super().step_shape()
        if self.config.lmbda > 0 and self.prompts:  # the student's own samples may be longer than any trace
            prompt = max(len(ids) for ids in self.tokenizer(
                render_prompts(self.tokenizer, [self.task.prompt(e) for e in self.prompts[:256]]),
                add_special_tokens=False)["input_ids"])
            shape = replace(shape, completion_length=max(shape.completion_length, prompt + self.config.max_new_tokens))
        teacher = sum(p.numel() * p.element_size() for p in self.teacher.parameters())
        teacher_logits = shape.batch * shape.completion_length * self.teacher.config.vocab_size * 4
        return replace(shape, generates=self.config.lmbda > 0, other_models_bytes=teacher + teacher_logits)

    def draw(self, count: int) -> tuple[list[Encoded], dict[str, float]]:
        """The student's samples with probability ``lmbda`` (a seeded draw), else teacher traces."""
        cfg = self.config
        if cfg.lmbda > 0 and float(torch.rand(1, generator=self.generator, device=self.device)) < cfg.lmbda:
            return self._on_policy_rows(count)
        items, metrics = super().draw(count)
        return items, {**metrics, "distill/on_policy": 0.0}

    def _on_policy_rows(self, count: int) -> tuple[list[Encoded], dict[str, float]]:
        """Student samples for ``count`` prompts, encoded like traces; with their sampling cost."""
        examples = self.prompt_stream.take(count)
        prompts = render_prompts(self.tokenizer, [self.task.prompt(e) for e in examples])
        # no `or 1.0` default: temperature 0 is rollout's greedy decoding, a setting of its own
        out = rollout(self.model, self.tokenizer, prompts, 1, self.config.max_new_tokens, self.config.temperature,
                      generator=self.generator)
        rows = []
        lengths = out.completion_lengths.tolist()
        prompt_lengths = out.prompt_mask.sum(1).tolist()
        for i in range(len(examples)):
            prompt_ids = out.prompt_ids[i][out.prompt_mask[i].bool()].tolist()
            rows.append((prompt_ids + out.completion_ids[i, : lengths[i]].tolist(), len(prompt_ids)))
        truncated = float(out.is_truncated.float().mean())
        if truncated > self.config.max_truncated_fraction and not self._warned:
            self._warned = True
            warnings.warn(
                f"step {self.state.step + 1}: {truncated:.0%} of the student's samples ran to max_new_tokens without "
                "end-of-sequence: the student has stopped ending its answers", stacklevel=2,
            )
        sampled = sum(prompt_lengths) + sum(lengths)
        return rows, {"distill/truncated_fraction": truncated, "distill/on_policy": 1.0,
                      "flops/sampling": 2.0 * self.num_parameters * sampled,
                      "completions/mean_length": sum(lengths) / len(lengths)}
