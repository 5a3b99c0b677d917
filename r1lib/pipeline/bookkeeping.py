"""What the pipeline keeps on disk about its stages: where each one writes, whether it finished (its
``stage.json``), and what happened (``pipeline.jsonl``). Every event is logged here, so the rules for
skipping a finished stage and resuming an unfinished one live in one place."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..checkpoint import atomic_write_text
from .config import STAGES

T = TypeVar("T")


class StageBookkeeping:
    """One folder per stage (or variant of a stage) under ``root``, and the log of events beside them.
    :class:`~r1lib.pipeline.stages.Pipeline` runs every stage through :meth:`run_once`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, stage: str) -> Path:
        """A stage's folder: one of :data:`STAGES`, or a variant named ``<stage>_<variant>``."""
        if not any(stage == s or stage.startswith(s + "_") for s in STAGES):
            raise ValueError(f"unknown stage {stage!r}; stages: {STAGES}")
        return self.root / stage

    def final(self, stage: str) -> Path:
        """Where a training stage's final model is (its ``final/`` folder)."""
        return self.folder(stage) / "final"

    def done(self, stage: str) -> bool:
        """Whether ``stage`` finished: its ``stage.json`` exists (written only after complete work)."""
        return (self.folder(stage) / "stage.json").exists()

    def log(self, stage: str, event: str, **details: Any) -> None:
        """Append one event (started, resumed, skipped, interrupted, finished, ...) to ``pipeline.jsonl``."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "pipeline.jsonl").open("a") as handle:
            handle.write(json.dumps({"time": time.time(), "stage": stage, "event": event, **details}) + "\n")

    def events(self) -> list[dict[str, Any]]:
        """Every event of ``pipeline.jsonl``, oldest first."""
        path = self.root / "pipeline.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def run_once(self, stage: str, build: Callable[[], tuple[T, dict[str, Any]]], load: Callable[[], T],
                 announce: bool = True, **details: Any) -> T:
        """Run ``stage`` unless it is done, and return what it made.

        A finished stage is logged ``skipped``, and ``load()`` reads back what it made. Otherwise the
        stage is logged ``started`` with ``details`` (``resumed`` when an earlier run left checkpoints,
        which its trainer continues from), unless ``announce`` is false; ``build()`` does the work and
        returns the result and the record for ``stage.json``. Only then is ``stage.json`` written and
        ``finished`` logged, so that a stage that raises is not done.
        """
        if self.done(stage):
            self.log(stage, "skipped")
            return load()
        if announce:
            resuming = (self.folder(stage) / "checkpoints").exists()
            self.log(stage, "resumed" if resuming else "started", **details)
        result, record = build()
        atomic_write_text(self.folder(stage) / "stage.json", json.dumps(record, indent=1))
        self.log(stage, "finished")
        return result

    def _run_trainer(self, stage: str, trainer: Any) -> list[dict[str, Any]]:
        """Train ``trainer`` from the stage's latest checkpoint (if any) and return its history, only
        when it reached ``max_steps``.

        An interrupted trainer (Ctrl-C) has saved its last completed step: the stage is logged as
        ``interrupted`` and ``KeyboardInterrupt`` is raised, so that the caller writes no
        ``stage.json`` and no later stage starts from an unfinished model. A trainer stopped early
        (``request_stop``) is not finished either: no pipeline stage has a budget that may end it.
        """
        history = trainer.train(resume_from=True)
        if trainer.outcome == "completed":
            return history
        step, max_steps = trainer.state.step, trainer.config.max_steps
        self.log(stage, trainer.outcome, step=step, max_steps=max_steps)
        if trainer.outcome == "interrupted":
            raise KeyboardInterrupt(f"stage {stage} was interrupted at step {step} of {max_steps}; its checkpoint "
                                    "is kept, and running the pipeline again resumes it")
        raise RuntimeError(f"stage {stage}'s trainer ended at step {step} of {max_steps} with outcome "
                           f"{trainer.outcome!r}; running the pipeline again resumes it")
