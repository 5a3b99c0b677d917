"""Distillation: a strong teacher's reasoning into a smaller student.

* **Traces**: the teacher answers training prompts and only verified answers are kept
  (:func:`generate_traces`, the pipeline's rejection sampler).
* **SFT on traces**: plain supervised fine-tuning on them (:class:`r1lib.sft.SFTTrainer`); this is
  how DeepSeek distilled R1 into Qwen and Llama students, with about 800k samples.
* **Logit KD**: on the same traces, the student matches the teacher's whole next-token distribution
  at every position (:func:`kd_loss`): forward KL, reverse KL, or the generalised Jensen-Shannon
  divergence JSD(beta) of GKD, at a temperature, optionally against the teacher's top-k tokens only
  (the teacher renormalised over them; the student keeps its whole distribution, see :func:`kd_loss`).
* **On-policy distillation**: the *student* samples, and the teacher grades every token of the
  student's own sequences; ``lmbda`` is the share of such steps (GKD). With ``lmbda=1`` and the
  reverse KL it is per-token reverse-KL on-policy distillation (:func:`on_policy_reverse_kl`).

Every r1lib trainer reports its compute as ``flops/*`` metrics (2 x parameters per token for a
forward pass, 4 x for a backward pass), which :class:`ComputeLedger` adds up so that methods can
be compared at equal compute.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .checkpoint import atomic_write_text, save_checkpoint
from .hardware import StepShape
from .configs import DistillConfig
from .rejection import rejection_sample
from .rollout import render_prompts, rollout
from .sft import SFTExample, SFTTrainer
from .stream import ExampleStream, fingerprint
from .tasks.base import Example, Task
from .trainer import Record, Trainer, TrainerCallback, parameter_count

# ---------------------------------------------------------------------- the losses


def divergence_beta(divergence: str, beta: float) -> float:
    """The JSD interpolation of a named divergence: forward KL is beta 0, reverse KL beta 1."""
    return {"forward_kl": 0.0, "reverse_kl": 1.0, "jsd": beta}[divergence]


def check_top_k(top_k: int | None, beta: float) -> None:
    """Refuse a ``top_k`` that :func:`kd_loss` cannot make a divergence of, naming the fix."""
    if top_k is None:
        return
    if top_k < 2:
        raise ValueError(
            f"top_k={top_k}: a teacher restricted to its single most likely token is one-hot, which is SFT on "
            "the teacher's greedy tokens, not logit distillation; use top_k >= 2, or top_k=None for the whole "
            "vocabulary"
        )
    if beta == 1:
        raise ValueError(
            f"top_k={top_k} with the reverse KL: KL(student || teacher) is infinite wherever the student puts "
            "mass outside the teacher's top-k; use top_k=None, or forward_kl / jsd with beta < 1"
        )


def top_k_divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int, beta: float = 0.5, temperature: float = 1.0
) -> torch.Tensor:
    """Per-position JSD(beta) between the teacher renormalised over its ``k`` most likely tokens and
    the student's *whole* distribution, both at ``temperature``.

    The student's log-probabilities come from a softmax over the full vocabulary and are then read
    at the teacher's top-k tokens, so student mass outside that set lowers them and is penalised
    (renormalising the student over the set would hide it: with ``k = 1`` the loss would be 0). The
    teacher is 0 outside the set, so there the student term of JSD(beta) is ``-log(1 - beta)`` times
    the student's outside mass, which is computed exactly. ``beta = 0`` is the forward KL
    ``sum_topk p (log p - log q)``; ``beta = 1`` (reverse KL) would be infinite and is refused.
    Full teacher logits are still computed: this changes the target, it saves no memory.
    """
    check_top_k(k, beta)
    dtype = torch.promote_types(student_logits.dtype, torch.float32)  # half precision is upcast, float64 kept
    top_logits, top_index = teacher_logits.topk(k, dim=-1)
    teacher = F.log_softmax(top_logits.to(dtype) / temperature, dim=-1)
    student = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1).gather(-1, top_index)
    if beta == 0:
        return (teacher.exp() * (teacher - student)).sum(-1)
    b = torch.tensor(beta, dtype=student.dtype, device=student.device)
    mixture = torch.logsumexp(torch.stack([student + torch.log1p(-b), teacher + torch.log(b)]), dim=0)
    kl_teacher = (teacher.exp() * (teacher - mixture)).sum(-1)
    outside = (-torch.expm1(torch.logsumexp(student, dim=-1))).clamp(min=0.0)  # the student's mass off the top-k
    kl_student = (student.exp() * (student - mixture)).sum(-1) - outside * torch.log1p(-b)
    return b * kl_teacher + (1 - b) * kl_student


def generalized_jsd(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float = 0.5, temperature: float = 1.0
) -> torch.Tensor:
    """Per-position generalised Jensen-Shannon divergence JSD(beta) between the two softmaxes at ``temperature``.

    With the mixture ``m = beta * p_teacher + (1 - beta) * p_student``, ``JSD(beta) = beta * KL(p_teacher || m) +
    (1 - beta) * KL(p_student || m)``. At ``beta = 0`` it is defined (as in TRL's GKD) as the forward KL
    ``KL(p_teacher || p_student)`` and at ``beta = 1`` as the reverse KL ``KL(p_student || p_teacher)``;
    for ``beta`` near 0 or 1 it is that KL scaled by ``beta`` or ``1 - beta`` (a test checks both limits).
    """
    dtype = torch.promote_types(student_logits.dtype, torch.float32)  # half precision is upcast, float64 kept
    student = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.to(dtype) / temperature, dim=-1)
    if beta == 0:
        return (teacher.exp() * (teacher - student)).sum(-1)
    if beta == 1:
        return (student.exp() * (student - teacher)).sum(-1)
    b = torch.tensor(beta, dtype=student.dtype, device=student.device)
    mixture = torch.logsumexp(torch.stack([student + torch.log1p(-b), teacher + torch.log(b)]), dim=0)
    kl_teacher = (teacher.exp() * (teacher - mixture)).sum(-1)
    kl_student = (student.exp() * (student - mixture)).sum(-1)
    return b * kl_teacher + (1 - b) * kl_student


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, divergence: str = "jsd",
    beta: float = 0.5, temperature: float = 1.0, top_k: int | None = None,
) -> torch.Tensor:
    """The mean divergence over the positions of ``mask``, times ``temperature ** 2`` (Hinton et al.:
    gradients keep their scale when the softmaxes are softened).

    ``divergence`` is ``"forward_kl"`` (beta 0), ``"reverse_kl"`` (beta 1) or ``"jsd"`` (``beta``).
    With ``top_k`` (at least 2; not with the reverse KL), the target is the teacher renormalised over
    its top-k tokens at each position, against the student's whole distribution
    (:func:`top_k_divergence`). Logits are (B, T, V); ``mask`` is (B, T), 1 where a completion token
    is predicted.
    """
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise ValueError(f"student vocabulary {student_logits.shape[-1]} != teacher vocabulary {teacher_logits.shape[-1]}")
    b = divergence_beta(divergence, beta)
    if top_k is not None and top_k < teacher_logits.shape[-1]:
        per_position = top_k_divergence(student_logits, teacher_logits, top_k, b, temperature)
    else:
        check_top_k(top_k, 0.0)  # a top_k as large as the vocabulary is the whole distribution
        per_position = generalized_jsd(student_logits, teacher_logits, b, temperature)
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1.0) * temperature**2


def on_policy_reverse_kl(config: DistillConfig) -> DistillConfig:
    """The per-token reverse-KL on-policy setting: the student always samples (``lmbda=1``) and
    minimises KL(student || teacher) on its own tokens, over the whole vocabulary (``top_k=None``:
    the reverse KL against a top-k teacher is infinite)."""
    return replace(config, lmbda=1.0, divergence="reverse_kl", beta=1.0, top_k=None)


# ---------------------------------------------------------------------- compute


@dataclass
class ComputeLedger:
    """FLOPs spent by one method, by kind, and its wall time.

    ``2 N`` FLOPs per token for a forward pass of an ``N``-parameter model and ``4 N`` for a
    backward pass (the usual approximation, attention excluded). Trainers report their steps' costs
    as ``flops/teacher``, ``flops/sampling`` and ``flops/training`` metrics; :meth:`add` reads them.
    """

    teacher_forward: float = 0.0
    student_sampling: float = 0.0
    student_training: float = 0.0
    wall_seconds: float = 0.0
    steps: int = 0

    KINDS = ("teacher_forward", "student_sampling", "student_training")
    METRICS = {"teacher_forward": "flops/teacher", "student_sampling": "flops/sampling", "student_training": "flops/training"}

    @property
    def total(self) -> float:
        return self.teacher_forward + self.student_sampling + self.student_training

    def add(self, record: Record) -> None:
        """Add a trainer record's ``flops/*`` metrics, steps and wall time.

        A record merges a logging window of ``logged_steps`` steps: its ``flops/*`` are the window's
        sums and its ``step_time`` the mean per step. A record without ``logged_steps`` (a step-0
        evaluation, an older log) is one step when it has a ``step_time`` and none otherwise.
        """
        for kind, metric in self.METRICS.items():
            setattr(self, kind, getattr(self, kind) + float(record.get(metric) or 0.0))
        steps = record.get("logged_steps")
        if steps is None:
            steps = 1 if "step_time" in record else 0
        self.wall_seconds += float(record.get("step_time") or 0.0) * steps
        self.steps += int(steps)

    def as_dict(self) -> dict[str, float]:
        return {kind: getattr(self, kind) for kind in self.KINDS} | {"total": self.total, "wall_seconds": self.wall_seconds}


# ---------------------------------------------------------------------- traces


@dataclass
class Traces:
    """Verified teacher samples, and what producing them cost."""

    examples: list[SFTExample]
    counts: dict[str, int]
    teacher_flops: float
    seconds: float


def generate_traces(
    teacher, tokenizer, task: Task, prompts: Sequence[Example], samples_per_prompt: int = 4, temperature: float = 1.0,
    max_new_tokens: int = 64, seed: int = 0,
) -> Traces:
    """The teacher's verified answers to ``prompts`` (at most one per prompt), via the pipeline's
    rejection sampler, with the teacher FLOPs the sampling cost."""
    began = time.time()
    kept, counts, tokens = rejection_sample(teacher, tokenizer, task, prompts, samples_per_prompt, temperature,
                                            max_new_tokens, seed, filters=("correct",))
    return Traces(kept, counts, 2.0 * parameter_count(teacher) * tokens, time.time() - began)


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


# ---------------------------------------------------------------------- the trainer


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


# ---------------------------------------------------------------------- distillation against RL, at equal compute


@dataclass
class ArmResult:
    """One method of the comparison: its compute, its training log and its curve of pass@1 against compute."""

    name: str
    ledger: ComputeLedger
    history: list[Record]
    curve: list[tuple[float, float]]  # (cumulative FLOPs, held-out pass@1), the start included
    model_dir: Path


def compute_curve(history: Sequence[Record], upfront: ComputeLedger | None = None) -> tuple[ComputeLedger, list[tuple[float, float]]]:
    """Replay a run's records into a ledger (after ``upfront`` costs such as teacher traces) and
    collect ``(FLOPs so far, eval/pass@1)`` wherever an evaluation was logged."""
    ledger = replace(upfront) if upfront is not None else ComputeLedger()
    curve = []
    for record in history:
        ledger.add(record)
        if record.get("eval/pass@1") is not None:
            curve.append((ledger.total, record["eval/pass@1"]))
    return ledger, curve


class Budget(TrainerCallback):
    """Stops the trainer once ``upfront`` costs plus every logged record's ``flops/*`` reach ``flops``.

    On (re)start it replays the run's history, so a resumed run stops at the same point.
    """

    def __init__(self, ledger: ComputeLedger, flops: float, upfront: ComputeLedger | None = None) -> None:
        self.ledger, self.flops, self.upfront = ledger, flops, upfront or ComputeLedger()

    def on_train_begin(self, trainer: Trainer) -> None:
        replayed, _ = compute_curve(trainer.state.history, self.upfront)
        self.ledger.__dict__.update(replayed.__dict__)
        if self.ledger.total >= self.flops:
            trainer.request_stop()

    def on_log(self, trainer: Trainer, record: Record) -> None:
        self.ledger.add(record)
        if self.ledger.total >= self.flops:
            trainer.request_stop()


class DistillationExperiment:
    """Distillation against RL on one student, at one compute budget, each method in its own folder.

    The budget is what GRPO on the student spends in ``grpo.max_steps`` steps (arm ``rl``). The
    other arms train until their ledger reaches it, teacher traces included. Every arm resumes after
    a kill and is skipped when it has finished; a Ctrl-C stops the experiment with a
    ``KeyboardInterrupt`` and leaves the arm to resume.
    """

    ARMS = ("rl", "sft", "logit_kd", "on_policy", "sft_then_rl")

    def __init__(
        self, teacher_dir: str | Path, student: Any, task: Task, train_examples: Sequence[Example],
        eval_examples: Sequence[Example], root: str | Path, grpo, distill: DistillConfig, reward_funcs,
        num_trace_prompts: int = 512, progress: bool = True,
    ) -> None:
        from .models import ModelSpec

        if not isinstance(student, ModelSpec):
            raise TypeError("student must be a ModelSpec (a new copy is loaded for every arm)")
        self.teacher_dir, self.student, self.task = Path(teacher_dir), student, task
        self.train_examples, self.eval_examples = list(train_examples), list(eval_examples)
        self.root, self.grpo, self.distill, self.reward_funcs = Path(root), grpo, distill, list(reward_funcs)
        self.num_trace_prompts, self.progress = num_trace_prompts, progress

    def load_student(self, path: str | Path | None = None):
        from .models import load_model_and_tokenizer

        return load_model_and_tokenizer(replace(self.student, name_or_path=str(path or self.student.name_or_path)))

    def load_teacher(self):
        from .models import load_model_and_tokenizer

        # the teacher only samples and grades: frozen, in the spec's own (half, on a GPU) precision
        return load_model_and_tokenizer(replace(self.student, name_or_path=str(self.teacher_dir), lora=None), trainable=False)

    def traces(self) -> Traces:
        """The teacher's verified traces for the first ``num_trace_prompts`` training prompts (cached)."""
        from .sft import load_sft_jsonl, save_sft_jsonl

        folder = self.root / "traces"
        if (folder / "traces.json").exists():
            meta = json.loads((folder / "traces.json").read_text())
            return Traces(load_sft_jsonl(folder / "traces.jsonl"), meta["counts"], meta["teacher_flops"], meta["seconds"])
        teacher, tokenizer = self.load_teacher()
        traces = generate_traces(teacher, tokenizer, self.task, self.train_examples[: self.num_trace_prompts],
                                 samples_per_prompt=4, temperature=1.0, max_new_tokens=self.distill.max_new_tokens,
                                 seed=self.distill.seed)
        save_sft_jsonl(traces.examples, folder / "traces.jsonl")
        atomic_write_text(folder / "traces.json", json.dumps({"counts": traces.counts, "teacher_flops": traces.teacher_flops,
                                                              "seconds": traces.seconds}))
        return traces

    def _upfront(self) -> ComputeLedger:
        traces = self.traces()
        return ComputeLedger(teacher_forward=traces.teacher_flops, wall_seconds=traces.seconds)

    @staticmethod
    def _train_arm(name: str, trainer: Trainer) -> None:
        """Train (resuming where the arm stopped). Only an arm that ran to its end, its steps or its
        budget, may be recorded as done: a Ctrl-C leaves it unfinished (its checkpoint is saved) and
        stops the whole experiment rather than going on to the next arm."""
        trainer.train(resume_from=True)
        if trainer.outcome == "interrupted":
            raise KeyboardInterrupt(f"arm {name!r} interrupted at step {trainer.state.step}; run again to resume it")
        if trainer.outcome not in ("completed", "stopped"):
            raise RuntimeError(f"arm {name!r}: training ended with outcome {trainer.outcome!r}")

    def _finish(self, name: str, trainer: Trainer, upfront: ComputeLedger | None) -> ArmResult:
        ledger, curve = compute_curve(trainer.state.history, upfront)
        start = trainer.state.history[0].get("eval/pass@1") if trainer.state.history else None
        curve = ([(upfront.total if upfront else 0.0, start)] if start is not None and curve and curve[0][0] > (upfront.total if upfront else 0.0) else []) + curve
        final = self.root / name / "final"
        save_checkpoint(final, trainer.model, trainer.tokenizer)
        result = ArmResult(name, ledger, trainer.state.history, curve, final)
        atomic_write_text(self.root / name / "result.json", json.dumps(
            {"ledger": ledger.as_dict(), "curve": curve, "steps": trainer.state.step}))
        return result

    def _done(self, name: str) -> ArmResult | None:
        path = self.root / name / "result.json"
        if not path.exists():
            return None
        saved = json.loads(path.read_text())
        history = [json.loads(line) for line in (self.root / name / "metrics.jsonl").read_text().splitlines()]
        ledger = ComputeLedger(**{k: v for k, v in saved["ledger"].items() if k in ComputeLedger.KINDS or k == "wall_seconds"})
        ledger.steps = saved["steps"]
        return ArmResult(name, ledger, history, [tuple(p) for p in saved["curve"]], self.root / name / "final")

    def rl(self, name: str = "rl", start: str | Path | None = None, max_steps: int | None = None,
           upfront: ComputeLedger | None = None, budget: float | None = None) -> ArmResult:
        """GRPO on the student (R1-Zero's recipe), ``grpo.max_steps`` steps unless told otherwise, and
        stopped early when ``upfront`` costs plus its own reach ``budget``."""
        from .grpo import GRPOTrainer

        done = self._done(name)
        if done is not None:
            return done
        model, tokenizer = self.load_student(start)
        config = self.grpo if max_steps is None else replace(self.grpo, max_steps=max_steps,
                                                             eval_steps=min(self.grpo.eval_steps, max_steps))
        trainer = GRPOTrainer(model, tokenizer, self.task, self.reward_funcs, self.train_examples, config, self.root / name,
                              eval_examples=self.eval_examples, progress=self.progress)
        if budget is not None:
            trainer.add_callback(Budget(ComputeLedger(), budget, upfront))
        self._train_arm(name, trainer)
        return self._finish(name, trainer, upfront)

    @property
    def budget(self) -> float:
        """The compute of the RL arm: every arm gets as much."""
        return self.rl().ledger.total

    def _steps_within(self, method: str, config: DistillConfig, budget: float, upfront: ComputeLedger, tokenizer) -> int:
        """How many steps fit in what is left of ``budget``, from the traces' mean length (the student's
        own samples, on-policy, are assumed as long as the teacher's)."""
        from .sft import encode_sft

        teacher_params = parameter_count(self.load_teacher()[0])
        student_params = parameter_count(self.load_student()[0])
        traces = self.traces().examples
        tokens = sum(len(encode_sft(tokenizer, e)[0]) for e in traces) / len(traces)
        per_token = 6 * student_params + (0 if method == "sft" else 2 * teacher_params) + (2 * student_params if config.lmbda else 0)
        per_step = per_token * tokens * config.per_device_train_batch_size * config.gradient_accumulation_steps
        return max(1, int((budget - upfront.total) / per_step))

    def _distill(self, name: str, method: str, config: DistillConfig, budget: float,
                 start: str | Path | None = None) -> ArmResult:
        """Train one distillation arm within ``budget``: ``method`` is ``"sft"`` (next-token loss on
        the traces) or ``"kd"`` (the teacher's logits as targets; on-policy when ``config.lmbda`` > 0).

        The learning rate decays along a cosine over the number of steps the budget is expected to
        allow; the ledger still has the last word, and stops the run when the budget is spent.
        """
        done = self._done(name)
        if done is not None:
            return done
        student, tokenizer = self.load_student(start)
        uses_traces = config.lmbda < 1
        upfront = self._upfront() if uses_traces else ComputeLedger()
        traces = self.traces().examples if uses_traces else []
        steps = self._steps_within(method, config, budget, upfront, tokenizer)
        config = replace(config, max_steps=steps, lr_scheduler_type="cosine", warmup_ratio=0.05, warmup_steps=0,
                         save_steps=max(1, steps // 4), eval_steps=min(config.eval_steps, steps))
        if method == "sft":
            trainer: Trainer = SFTTrainer(student, tokenizer, traces, config, self.root / name, eval_task=self.task,
                                          eval_examples=self.eval_examples, progress=self.progress)
        else:
            teacher, _ = self.load_teacher()
            trainer = DistillTrainer(student, tokenizer, teacher, traces, config, self.root / name, task=self.task,
                                     prompts=self.train_examples, eval_examples=self.eval_examples, progress=self.progress)
        trainer.add_callback(Budget(ComputeLedger(), budget, upfront))
        self._train_arm(name, trainer)
        return self._finish(name, trainer, upfront)

    def sft(self) -> ArmResult:
        """SFT on the teacher's traces (how R1 was distilled into Qwen and Llama students)."""
        return self._distill("sft", "sft", replace(self.distill, lmbda=0.0), self.budget)

    def logit_kd(self) -> ArmResult:
        """Logit distillation on the same traces (the configured divergence, temperature, top-k)."""
        return self._distill("logit_kd", "kd", replace(self.distill, lmbda=0.0), self.budget)

    def on_policy(self) -> ArmResult:
        """On-policy distillation: the student samples, the teacher grades every token (reverse KL)."""
        return self._distill("on_policy", "kd", on_policy_reverse_kl(self.distill), self.budget)

    def sft_then_rl(self, sft_share: float = 0.5) -> ArmResult:
        """SFT on traces for ``sft_share`` of the budget, then GRPO for the rest (the paper notes that
        RL after distillation helps further)."""
        first = self._distill("sft_then_rl/sft", "sft", replace(self.distill, lmbda=0.0), sft_share * self.budget)
        rl = self.rl()
        per_step = rl.ledger.total / max(1, rl.ledger.steps)
        steps = int((self.budget - first.ledger.total) / per_step)
        if steps < 1:  # the SFT half already spent the budget
            return ArmResult("sft_then_rl", first.ledger, first.history, first.curve, first.model_dir)
        second = self.rl("sft_then_rl/rl", start=first.model_dir, max_steps=steps, upfront=first.ledger, budget=self.budget)
        return ArmResult("sft_then_rl", second.ledger, first.history + second.history, first.curve + second.curve,
                         second.model_dir)

    def run(self) -> dict[str, ArmResult]:
        """Every arm, in order; finished arms are read back."""
        return {name: getattr(self, name)() for name in self.ARMS}
