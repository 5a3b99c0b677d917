"""Notebook 07's experiment: distillation against RL on one small student, at equal compute.

Five ways to spend the same budget on one student (the arms): GRPO, R1-Zero's recipe, whose cost
sets the budget; SFT on the teacher's traces; logit distillation on them; on-policy distillation;
and SFT then GRPO. Every arm is charged by :mod:`r1lib.compute`, teacher traces included, and is
stopped when its ledger reaches the budget. This is the course's comparison, built from the
library's pieces (:mod:`r1lib.distill`, :mod:`r1lib.grpo`, :mod:`r1lib.sft`), not part of its API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_text, save_checkpoint
from ..compute import Budget, ComputeLedger, compute_curve
from ..configs import DistillConfig, GRPOConfig
from ..distill import DistillTrainer, Traces, generate_traces, on_policy_reverse_kl
from ..grpo import GRPOTrainer
from ..models import ModelSpec, load_model_and_tokenizer
from ..records import encode_example, load_jsonl, save_jsonl
from ..rewards import RewardFunc
from ..sft import SFTTrainer
from ..tasks.base import Example, Task
from ..trainer import Record, Trainer, parameter_count


@dataclass
class ArmResult:
    """One method of the comparison: its compute, its training log and its curve of pass@1 against compute."""

    name: str
    ledger: ComputeLedger
    history: list[Record]
    curve: list[tuple[float, float]]  # (cumulative FLOPs, held-out pass@1), the start included
    model_dir: Path


class EqualComputeComparison:
    """Distillation against RL on one student, at one compute budget, each method in its own folder.

    The budget is what GRPO on the student spends in ``grpo.max_steps`` steps (arm ``rl``). The
    other arms train until their ledger reaches it, teacher traces included. Every arm resumes after
    a kill and is skipped when it has finished; a Ctrl-C stops the comparison with a
    ``KeyboardInterrupt`` and leaves the arm to resume.
    """

    ARMS = ("rl", "sft", "logit_kd", "on_policy", "sft_then_rl")

    def __init__(
        self, teacher_dir: str | Path, student: ModelSpec, task: Task, train_examples: Sequence[Example],
        eval_examples: Sequence[Example], root: str | Path, grpo: GRPOConfig, distill: DistillConfig,
        reward_funcs: Sequence[RewardFunc], num_trace_prompts: int = 512, progress: bool = True,
    ) -> None:
        if not isinstance(student, ModelSpec):
            raise TypeError("student must be a ModelSpec (a new copy is loaded for every arm)")
        self.teacher_dir, self.student, self.task = Path(teacher_dir), student, task
        self.train_examples, self.eval_examples = list(train_examples), list(eval_examples)
        self.root, self.grpo, self.distill, self.reward_funcs = Path(root), grpo, distill, list(reward_funcs)
        self.num_trace_prompts, self.progress = num_trace_prompts, progress

    def load_student(self, path: str | Path | None = None) -> tuple[Any, Any]:
        """A fresh copy of the student (or of the checkpoint at ``path``) and its tokenizer."""
        return load_model_and_tokenizer(replace(self.student, name_or_path=str(path or self.student.name_or_path)))

    def load_teacher(self) -> tuple[Any, Any]:
        """The teacher and its tokenizer."""
        # the teacher only samples and grades: frozen, in the spec's own (half, on a GPU) precision
        return load_model_and_tokenizer(replace(self.student, name_or_path=str(self.teacher_dir), lora=None), trainable=False)

    def traces(self) -> Traces:
        """The teacher's verified traces for the first ``num_trace_prompts`` training prompts (cached)."""
        folder = self.root / "traces"
        if (folder / "traces.json").exists():
            meta = json.loads((folder / "traces.json").read_text())
            return Traces(load_jsonl(folder / "traces.jsonl"), meta["counts"], meta["teacher_flops"], meta["seconds"])
        teacher, tokenizer = self.load_teacher()
        traces = generate_traces(teacher, tokenizer, self.task, self.train_examples[: self.num_trace_prompts],
                                 samples_per_prompt=4, temperature=1.0, max_new_tokens=self.distill.max_new_tokens,
                                 seed=self.distill.seed)
        save_jsonl(traces.examples, folder / "traces.jsonl")
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
        stops the whole comparison rather than going on to the next arm."""
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
        teacher_params = parameter_count(self.load_teacher()[0])
        student_params = parameter_count(self.load_student()[0])
        traces = self.traces().examples
        tokens = sum(len(encode_example(tokenizer, e)[0]) for e in traces) / len(traces)
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
