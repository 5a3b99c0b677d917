"""The compute ledger: what a method spent, in FLOPs and seconds, so that methods can be compared at equal compute.

Every r1lib trainer reports each step's cost as ``flops/*`` metrics (``flops/teacher``,
``flops/sampling``, ``flops/training``). :class:`ComputeLedger` adds them up, :func:`compute_curve`
replays a run's log into a ledger and a curve of pass@1 against compute, and the :class:`Budget`
callback stops a trainer once its ledger reaches a budget. Nothing here depends on which method
spent the compute: GRPO, SFT and distillation are all charged by the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .trainer import Record, Trainer, TrainerCallback


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
        """Every kind of FLOPs together."""
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
        """The FLOPs by kind, their total and the wall time (what a finished run saves)."""
        return {kind: getattr(self, kind) for kind in self.KINDS} | {"total": self.total, "wall_seconds": self.wall_seconds}


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
