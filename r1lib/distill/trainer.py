"""The distillation trainer: logit distillation on teacher traces, and on-policy distillation.

* **Logit KD**: on the teacher's traces, the teacher's logits at every position are the targets of
  :func:`r1lib.distill.losses.kd_loss`.
* **On-policy distillation**: the *student* samples, and the teacher grades every token of the
  student's own sequences; ``lmbda`` is the share of such steps (GKD). With ``lmbda=1`` and the
  reverse KL it is per-token reverse-KL on-policy distillation
  (:func:`r1lib.distill.losses.on_policy_reverse_kl`).

Every step reports its compute as ``flops/*`` metrics (2 x parameters per token for a forward pass,
4 x for a backward pass), which :class:`r1lib.compute.ComputeLedger` adds up so that methods can be
compared at equal compute.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..configs import DistillConfig
from ..hardware import StepShape
from ..rollout import render_prompts, rollout
from ..sft import SFTExample, SFTTrainer
from ..stream import ExampleStream, fingerprint
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


class DistillTrainer(SFTTrainer):
    """Logit distillation on teacher traces, mixed with on-policy steps where the student samples.

    On each step, with probability ``lmbda`` (a seeded draw) the student samples completions for
    ``per_device_train_batch_size`` prompts (on-policy); otherwise the step's sequences are teacher
    traces. Either way the teacher's logits on those sequences are the targets of :func:`kd_loss`.
    On-policy steps log ``distill/truncated_fraction``: a student that stops emitting end-of-sequence
    runs to ``max_new_tokens`` and is flagged with a warning once it passes ``max_truncated_fraction``.
    """

    name = "distill"

    def __init__(
        self,
        student,
        tokenizer,
        teacher,
        traces: Sequence[SFTExample],
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
        placeholder = [SFTExample(task.prompt(prompts[0]), tokenizer.eos_token)] if not traces else list(traces)
        super().__init__(student, tokenizer, placeholder, config, output_dir, eval_task=task,
                         eval_examples=eval_examples, callbacks=callbacks, progress=progress)
        self.config: DistillConfig = config
        self.teacher = teacher.eval().requires_grad_(False)
        self.task, self.prompts = task, list(prompts)
        self.prompt_stream = ExampleStream(self.prompts, seed=config.seed) if self.prompts else None
        self.student_params, self.teacher_params = parameter_count(student), parameter_count(teacher)
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

    def attention_models(self) -> list[Any]:
        return [self.model, self.teacher]

    def on_fresh_start(self) -> None:
        super().on_fresh_start()
        if self.prompts:
            self.prompt_stream = ExampleStream(self.prompts, seed=self.config.seed)

    def data_fingerprint(self) -> dict[str, str]:
        """The traces, and the prompts the student samples on-policy."""
        prompts = [[e.question, e.answer] for e in self.prompts]
        return {**super().data_fingerprint(), "prompts": fingerprint(prompts)} if prompts else super().data_fingerprint()

    def trainer_state(self) -> dict[str, Any]:
        state = super().trainer_state()
        if self.prompt_stream is not None:
            state["prompt_stream"] = self.prompt_stream.state_dict()
        return state

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        super().load_trainer_state(state)
        if self.prompt_stream is not None and "prompt_stream" in state:
            self.prompt_stream.load_state_dict(state["prompt_stream"])

    def _on_policy_rows(self, count: int) -> tuple[list[tuple[list[int], int]], dict[str, float]]:
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
                      "flops/sampling": 2.0 * self.student_params * sampled,
                      "completions/mean_length": sum(lengths) / len(lengths)}

    def training_step(self) -> dict[str, float]:
        cfg = self.config
        count = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
        on_policy = cfg.lmbda > 0 and float(torch.rand(1, generator=self.generator, device=self.device)) < cfg.lmbda
        if on_policy:
            items, metrics = self._on_policy_rows(count)
        else:
            items, metrics = [self.encoded[i] for i in self.stream.take(count)], {"distill/on_policy": 0.0}
        total = sum(len(ids) - p for ids, p in items)
        processed = sum(len(ids) for ids, _ in items)
        loss_sum = 0.0
        for rows in self.batches(items):
            batch = self.collate(rows)
            mask = (batch.pop("labels")[:, 1:] != -100)
            with torch.no_grad(), self.autocast():
                teacher_logits = self.teacher(**batch, use_cache=False).logits[:, :-1]
            with self.autocast():
                student_logits = self.model(**batch, use_cache=False).logits[:, :-1]
            loss = kd_loss(student_logits, teacher_logits, mask, cfg.divergence, cfg.beta, cfg.kd_temperature, cfg.top_k)
            weight = float(mask.sum()) / total
            self.backward(loss * weight)
            loss_sum += loss.item() * weight
        metrics.update({
            "loss": loss_sum,
            "num_tokens": float(total),
            "flops/teacher": 2.0 * self.teacher_params * processed,
            "flops/training": 6.0 * self.student_params * processed,
        })
        return metrics
