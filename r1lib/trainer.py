"""The one training loop of r1lib. Every trainer (GRPO, SFT, distillation, the reward model, the
tiny world's pretraining) is a subclass that only says what one step computes.

:class:`Trainer` owns, once for all of them:

* the optimizer (AdamW) and the learning-rate schedule (``transformers.get_scheduler``);
* mixed precision: autocast on CUDA, fp16 loss scaling, unscaling before clipping, and a skipped
  update when gradients are not finite;
* the loop, with its progress bar and the timing of evaluation, logging and saving;
* checkpoints: atomic safetensors directories with the model, optimizer, scheduler, RNG states,
  the data streams' positions and whatever the subclass adds, plus ``save_total_limit`` rotation;
* the data streams a subclass declares (:meth:`Trainer.add_stream`): reset for a fresh run, kept in
  checkpoints, rolled back with an interrupted step, and fingerprinted so that resuming on other
  data is refused;
* resuming from the latest checkpoint, refusing a changed config unless told otherwise;
* ``metrics.jsonl``, one JSON line per logged step, trimmed atomically on resume so that no step
  appears twice; Ctrl-C (or a notebook's stop button) saves a checkpoint and returns;
* callbacks.

A subclass declares its data streams, implements :meth:`Trainer.training_step` (compute the loss of
one optimizer step, call :meth:`Trainer.backward` for each micro-batch, return metrics) and, when
it has something to evaluate, :meth:`Trainer.evaluate`. The loop in :meth:`Trainer.train` is the
only training loop of the library; :class:`r1lib.causal_lm.CausalLMTrainer` is the one step of
pretraining, SFT and distillation.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from tqdm.auto import tqdm
from transformers import get_scheduler

from .checkpoint import (
    CheckpointError,
    atomic_write_text,
    checkpoint_name,
    checkpoint_problem,
    checkpoint_step,
    complete_checkpoints,
    load_checkpoint,
    load_extra_tensors,
    read_state,
    remove_partial_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .configs import RESUMABLE_CHANGES, TrainingConfig
from .estimates import (
    GIB, DeviceInfo, MemoryEstimate, ModelShape, StepShape, check_fits, device_info, estimate_memory,
    estimate_step_seconds, format_bytes,
)
from .stream import Stream, fingerprint

Record = dict[str, Any]
S = TypeVar("S", bound=Stream)


class TrainerCallback:
    """Hooks into a run. Override the ones you need; a plain function ``f(record)`` is an ``on_log``."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once when :meth:`Trainer.train` starts (after resuming)."""

    def on_log(self, trainer: Trainer, record: Record) -> None:
        """Called with every record written to ``metrics.jsonl`` (step 0's evaluation included)."""

    def on_save(self, trainer: Trainer, path: Path) -> None:
        """Called after a checkpoint has been written to ``path``."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Called when :meth:`Trainer.train` returns, also after an interruption."""


class _FunctionCallback(TrainerCallback):
    def __init__(self, function: Callable[[Record], None]) -> None:
        self.function = function

    def on_log(self, trainer: Trainer, record: Record) -> None:
        self.function(record)


def log_to(tracker: Any) -> TrainerCallback:
    """A callback that forwards every record to ``tracker.log(values, step=...)`` (wandb, trackio, ...)."""
    return _FunctionCallback(lambda record: tracker.log({k: v for k, v in record.items() if k != "step"}, step=record["step"]))


@dataclass
class TrainerState:
    """Where the run is: optimizer steps taken and the records logged so far (read back from
    ``metrics.jsonl`` on resume)."""

    step: int = 0
    history: list[Record] = field(default_factory=list)


def parameter_count(model: torch.nn.Module) -> int:
    """Parameters that take part in a forward pass (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _jsonable(record: Record) -> Record:
    """Non-finite floats become None: JSON has no NaN, and a NaN reward must not read as 0."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def _merge(records: Sequence[Record]) -> Record:
    """One record for a logging window of ``logged_steps`` steps: the mean of each numeric metric over
    the steps that have it, except costs (``flops/*``), which are summed so that a window costs
    what its steps cost together."""
    merged: Record = {}
    sums: dict[str, list[float]] = {}
    for record in records:
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                sums.setdefault(key, []).append(float(value))
            else:
                merged[key] = value
    for key, values in sums.items():
        merged[key] = sum(values) if key.startswith("flops/") else sum(values) / len(values)
    merged["logged_steps"] = len(records)
    merged["step"] = records[-1]["step"]
    return {"step": merged.pop("step"), **merged}


class _HeldInterrupts:
    """Within the block, Ctrl-C (SIGINT, also a notebook's stop button) is held, not raised, so that
    an update and its bookkeeping, or a save, happen whole; a held interrupt is raised on leaving
    (``reraise=False``: dropped, for a block that is already stopping the run). A block inside
    another changes nothing: the outermost one decides.

    Signal handlers can only be set from the main thread; elsewhere the block holds nothing.
    """

    _holding = False

    def __init__(self, reraise: bool = True) -> None:
        self.reraise = reraise
        self.received = False
        self._owner = False
        self._previous: Any = None

    def __enter__(self) -> _HeldInterrupts:
        self._owner = not _HeldInterrupts._holding and threading.current_thread() is threading.main_thread()
        if self._owner:
            _HeldInterrupts._holding = True
            self._previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum: int, frame: Any) -> None:
        self.received = True

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if not self._owner:
            return
        _HeldInterrupts._holding = False  # first: a signal after the restore below must find the flag right
        # None: the handler was set outside Python; Python's own default is the closest to restore
        signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
        if self.received and self.reraise and kind is None:
            raise KeyboardInterrupt


class Trainer:
    """Base class of every r1lib trainer; see the module docstring for what it owns.

    ``output_dir`` receives ``metrics.jsonl`` and ``checkpoints/step-*``; with ``output_dir=None``
    nothing is written (no checkpoints, no resume). ``tokenizer`` is saved with each checkpoint so
    that a checkpoint loads with ``from_pretrained``.
    """

    name = "train"  # the progress bar's label
    progress_keys: tuple[str, ...] = ("loss",)  # metrics shown next to the progress bar
    evaluate_at_start = True  # a fresh run records step 0's evaluation (the starting point of every curve)

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainingConfig,
        output_dir: str | Path | None = None,
        *,
        tokenizer: Any = None,
        callbacks: Iterable[TrainerCallback | Callable[[Record], None]] = (),
        progress: bool = True,
    ) -> None:
        if not isinstance(config, TrainingConfig):
            raise TypeError(f"config must be a TrainingConfig (or subclass), got {type(config).__name__}")
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("the model has no trainable parameters (all requires_grad=False)")
        self.model, self.config, self.tokenizer = model, config, tokenizer
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.callbacks = [c if isinstance(c, TrainerCallback) else _FunctionCallback(c) for c in callbacks]
        self.progress = progress
        self.device = next(model.parameters()).device
        self.optimizer = torch.optim.AdamW(
            trainable, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_epsilon, weight_decay=config.weight_decay,
        )
        self.scheduler = get_scheduler(
            config.lr_scheduler_type, self.optimizer, num_warmup_steps=config.num_warmup_steps,
            num_training_steps=config.max_steps, scheduler_specific_kwargs=dict(config.lr_scheduler_kwargs) or None,
        )
        on_cuda = self.device.type == "cuda"
        half = torch.bfloat16 if config.bf16 else torch.float16 if config.fp16 else None
        self.autocast_dtype = half if on_cuda else None  # on the CPU the same code runs in float32
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=on_cuda and config.fp16)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.state = TrainerState()
        self.num_parameters = parameter_count(model)  # for the flops/* metrics: 2N per token forward, 4N backward
        self._pending: list[Record] = []  # step records of the current logging window
        self._stop_requested = False
        self._finishing_step = False  # an update is applied; its evaluation, log and save are not done yet
        self._saved_step: int | None = None  # the step of the newest checkpoint that matches this trainer
        self._skipped_in_a_row = 0
        # after train(): "completed", "stopped" (request_stop), "interrupted" (Ctrl-C) or "failed" (it raised)
        self.outcome: str | None = None
        self._partly_loaded: Path | None = None  # a checkpoint whose loading failed halfway
        self.memory_estimate: MemoryEstimate | None = None  # set by preflight()
        self._streams: dict[str, Stream] = {}  # by the name of their state in checkpoints (add_stream)
        self._stream_data: dict[str, Any] = {}  # what they draw, by the name of its fingerprint
        self._check_trainable_precision()

    def _check_trainable_precision(self) -> None:
        half = [n for n, p in self.model.named_parameters() if p.requires_grad and p.dtype == torch.float16]
        if half and self.config.fp16:
            raise ValueError(
                f"{len(half)} trainable parameters are float16 (e.g. {half[0]}); fp16 loss scaling needs float32 "
                "weights to update (torch refuses to unscale fp16 gradients). Load the model in float32 "
                "(dtype=torch.float32) and keep fp16=True for autocast, or train LoRA adapters on the half base."
            )

    # ------------------------------------------------------------------ what a subclass provides

    def training_step(self) -> dict[str, float]:
        """Compute one optimizer step's loss, call :meth:`backward` on it, and return metrics.

        With gradient accumulation, call :meth:`backward` once per micro-batch on a loss already
        divided so that the sum is the step's loss. Do not step the optimizer: the base does that.
        """
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Evaluation metrics (keys starting with ``eval/``); only called when :attr:`does_evaluate`."""
        return {}

    @property
    def does_evaluate(self) -> bool:
        """Whether :meth:`evaluate` has anything to measure (e.g. held-out examples were given)."""
        return False

    def step_shape(self) -> StepShape | None:
        """The largest forward/backward pass of a step, for the estimate :meth:`preflight` prints
        before training; ``None`` (the default) skips the estimate."""
        return None

    def add_stream(self, name: str, stream: S, data: dict[str, Any] | None = None) -> S:
        """Declare a data stream the run draws from, and return it.

        The base resets it for a fresh run, keeps its state in checkpoints under ``name`` (a
        checkpoint without that name, from a run that did not draw from it, leaves it at its
        beginning), and restores it when an interrupted step is rolled back. ``data`` is what the
        stream draws, by the name checkpoints fingerprint it under (:meth:`data_fingerprint`);
        its fingerprint is computed when a checkpoint is written or read.
        """
        self._streams[name] = stream
        self._stream_data.update(data or {})
        return stream

    def on_fresh_start(self) -> None:
        """Reset the subclass's buffers for a run that starts at step 0 (declared streams are reset already)."""

    def after_optimizer_step(self) -> None:
        """Called after each update (e.g. GRPO's reference-model refresh)."""

    def trainer_state(self) -> dict[str, Any]:
        """JSON-able state a checkpoint must keep besides the weights and the declared streams."""
        return {}

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`trainer_state` returned."""

    def trainer_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors a checkpoint must keep (e.g. a generation batch still being optimised on)."""
        return {}

    def load_trainer_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`trainer_tensors` returned."""

    def checkpoint_models(self) -> dict[str, torch.nn.Module]:
        """Extra models whose weights change during training and must be checkpointed (e.g. a refreshed reference)."""
        return {}

    @property
    def log_files(self) -> list[Path]:
        """Step-indexed jsonl logs under ``output_dir``; each is trimmed on resume."""
        return [self.metrics_path] if self.output_dir is not None else []

    def request_stop(self) -> None:
        """Ask the loop to stop after the current step (a checkpoint is saved), e.g. when a budget is spent."""
        self._stop_requested = True

    def add_callback(self, callback: TrainerCallback | Callable[[Record], None]) -> None:
        """Add a callback (a :class:`TrainerCallback`, or a function called with each logged record)."""
        self.callbacks.append(callback if isinstance(callback, TrainerCallback) else _FunctionCallback(callback))

    def preflight(self, info: DeviceInfo | None = None) -> str | None:
        """Estimate the run's peak memory (and, on a known GPU, its time per step) from
        :meth:`step_shape`; on a GPU where it cannot fit, stop with a ``MemoryError`` that names the
        setting to lower. Returns the message :meth:`train` prints on a GPU (``None``: no estimate)."""
        shape = self.step_shape()
        if shape is None:
            return None
        info = info or device_info(self.device)
        model_shape = ModelShape.of(self.model)
        frozen = [p for p in self.model.parameters() if not p.requires_grad]
        weight_bytes = frozen[0].element_size() if frozen else 4
        activation_bytes = 2 if self.autocast_dtype is not None else next(self.model.parameters()).element_size()
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        checkpointing = bool(getattr(self.model, "is_activation_checkpointing", False))
        estimate = estimate_memory(
            model_shape, shape.batch, shape.prompt_length, shape.completion_length, weight_bytes=weight_bytes,
            activation_bytes=activation_bytes, trainable=trainable, gradient_checkpointing=checkpointing,
        )
        estimate.weights += shape.other_models_bytes
        self.memory_estimate = estimate
        seconds = estimate_step_seconds(model_shape, info, shape.batch * self.config.gradient_accumulation_steps,
                                        shape.prompt_length, shape.completion_length, generate=shape.generates,
                                        weight_bytes=weight_bytes)
        where = f"{info.total_memory / GIB:.1f} GiB on {info.name}" if info.total_memory else info.name
        message = f"{self.name}: about {format_bytes(estimate.total)} per step ({estimate.describe()}) of {where}"
        if seconds is not None:
            message += f"; about {seconds:.1f} s per step, {seconds * self.config.max_steps / 60:.0f} min in all (estimated from FLOPs and bandwidth)"
        settings = (f"per_device_train_batch_size={shape.batch}, sequence {shape.prompt_length}+"
                    f"{shape.completion_length} tokens, gradient checkpointing {'on' if checkpointing else 'off'}")
        check_fits(estimate, info, settings=settings)
        return message

    # ------------------------------------------------------------------ machinery for subclasses

    def autocast(self) -> AbstractContextManager:
        """The mixed-precision context of forward passes (a no-op on the CPU and in float32)."""
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate ``loss``, scaled when training in fp16."""
        self.scaler.scale(loss).backward()

    @property
    def metrics_path(self) -> Path:
        if self.output_dir is None:
            raise ValueError("this trainer has no output_dir")
        return self.output_dir / "metrics.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        if self.output_dir is None:
            raise ValueError("this trainer has no output_dir")
        return self.output_dir / "checkpoints"

    def append_jsonl(self, path: Path, record: Record) -> None:
        """Append one JSON line to ``path`` (non-finite floats become null)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(json.dumps(_jsonable(record)) + "\n")

    # ------------------------------------------------------------------ one step

    # Updates skipped in a row (non-finite gradients) before the run is stopped as diverged.
    max_skipped_updates_in_a_row = 10

    def step(self) -> Record:
        """One optimizer update: the subclass's loss, then unscale, clip, step and schedule.

        The update and its bookkeeping (step count, reference refresh, the step's record) happen
        whole: a Ctrl-C that arrives meanwhile is raised after them. The record is also appended to
        the current logging window.
        """
        began = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        metrics = dict(self.training_step())
        with _HeldInterrupts():
            metrics.update(self._apply_gradients())
            self.state.step += 1
            self.after_optimizer_step()
            metrics["step_time"] = time.perf_counter() - began
            record = {"step": self.state.step, **metrics}
            self._pending.append(record)
            self._finishing_step = True
        return record

    def _apply_gradients(self) -> dict[str, float]:
        learning_rate = self.scheduler.get_last_lr()[0]  # the rate this update uses
        self.scaler.unscale_(self.optimizer)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm))
        if self.scaler.is_enabled():
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)  # skips the update itself when a gradient is inf/NaN
            self.scaler.update()
            skipped = self.scaler.get_scale() < scale
        elif math.isfinite(grad_norm):
            self.optimizer.step()
            skipped = False
        else:
            skipped = True
            warnings.warn(f"step {self.state.step + 1}: gradient norm is {grad_norm}; the update was skipped", stacklevel=3)
        if not skipped:
            self.scheduler.step()
        self._skipped_in_a_row = self._skipped_in_a_row + 1 if skipped else 0
        if self._skipped_in_a_row >= self.max_skipped_updates_in_a_row:
            raise FloatingPointError(
                f"the last {self._skipped_in_a_row} updates (up to step {self.state.step + 1}) were all skipped: the "
                f"gradient norm is {grad_norm}, so the loss has diverged. The usual cause is a learning rate too high "
                f"for this model (learning_rate={learning_rate:g} now); lower it, or add warmup_steps. In fp16, "
                "overflow can also do this: prefer bf16 where the GPU has it. The run was stopped and not saved."
            )
        metrics = {"grad_norm": grad_norm, "learning_rate": learning_rate}
        if skipped:
            metrics["skipped_update"] = 1.0
        return metrics

    # ------------------------------------------------------------------ the loop

    def train(
        self, resume_from: str | Path | bool | None = None, allow_config_changes: bool | Iterable[str] = False
    ) -> list[Record]:
        """Train until ``config.max_steps``; return the history of logged records.

        ``resume_from`` is a checkpoint directory, or True for the latest one under ``output_dir``
        (a fresh start when there is none). A checkpoint made with other settings or data is refused,
        naming the differences, unless ``allow_config_changes`` is True or names them; scheduling
        settings (``save_steps``, ...) may always change, and so may ``max_steps`` where the
        learning-rate schedule does not depend on it.

        Interrupting (Ctrl-C, or a notebook's stop button) at any moment keeps the last completed
        step: a step in progress is rolled back, a checkpoint of the completed steps is saved, and
        the run returns; ``train(resume_from=True)`` then continues as if it had never stopped.
        :attr:`outcome` says how the run ended.
        """
        if resume_from and self.output_dir is None:
            raise ValueError("resuming needs an output_dir with checkpoints")
        if self._partly_loaded is not None:
            raise RuntimeError(
                f"this trainer's model and optimizer were partly loaded from {self._partly_loaded} before loading "
                "failed; build the model and the trainer again before training"
            )
        self.outcome = None
        self._check_output_dir()
        if resume_from:
            self.resume(resume_from, allow_config_changes)
        if self.state.step < self.config.max_steps:  # before _start_fresh: a refused run must not delete old checkpoints
            message = self.preflight()
            if message and self.device.type == "cuda":
                print(message)
        self._stop_requested = False
        bar = tqdm(total=self.config.max_steps, initial=self.state.step, desc=self.name, disable=not self.progress)
        try:
            if self.state.step == 0 and not self._finishing_step:
                self._start_fresh()  # in the try: a stop during step 0's evaluation is a stop like any other
            for callback in self.callbacks:
                callback.on_train_begin(self)
            while True:
                if self._finishing_step and self._finish_step(bar):
                    break
                if self.state.step >= self.config.max_steps or self._stop_requested:
                    break
                self._take_step()
            self.outcome = "completed" if self.state.step >= self.config.max_steps else "stopped"
        except KeyboardInterrupt:
            self.outcome = "interrupted"
            self._save_after_interrupt()
        except Exception:
            self.outcome = "failed"
            raise
        finally:
            shown = not bar.disable  # close() disables the bar
            bar.close()
            if self.outcome == "stopped" and shown and hasattr(bar, "disp"):
                bar.disp(bar_style="info", check_delay=False)  # a budget's stop ends the run: the bar is not red
            for callback in self.callbacks:
                callback.on_train_end(self)
        return self.state.history

    def _check_output_dir(self) -> None:
        """Fail before any compute when ``output_dir`` cannot be written."""
        if self.output_dir is None:
            return
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.output_dir):
                pass
        except OSError as error:
            raise PermissionError(
                f"output_dir {self.output_dir} cannot be written ({error.strerror or error}); choose a folder you can "
                "write to, or output_dir=None to keep nothing"
            ) from error

    def _snapshot(self) -> dict[str, Any]:
        """What a step changes before its update: data streams, buffers and random generators."""
        return {
            "state": copy.deepcopy(self._subclass_state()),
            "tensors": {k: v.detach().clone() for k, v in self.trainer_tensors().items()},
            "generator": self.generator.get_state(),
            "rng": rng_state(),
        }

    def _rollback(self, snapshot: dict[str, Any]) -> None:
        """Undo what an unfinished step drew, as :meth:`resume` restores a checkpoint."""
        with _HeldInterrupts(reraise=False):  # the run is stopping already; a second Ctrl-C must not tear this
            self.load_trainer_tensors(snapshot["tensors"])
            self._load_subclass_state(snapshot["state"])
            self.generator.set_state(snapshot["generator"])
            set_rng_state(snapshot["rng"])

    def _take_step(self) -> None:
        snapshot = self._snapshot()
        try:
            self.step()
        except KeyboardInterrupt:
            if not self._finishing_step:  # stopped before its update: as if the step never began
                self._rollback(snapshot)
            raise

    def _finish_step(self, bar: Any) -> bool:
        """Evaluate, log and save after an update; True when the run should stop here."""
        step = self.state.step
        last = step >= self.config.max_steps
        evaluated = self.does_evaluate and (step % self.config.eval_steps == 0 or last)
        if evaluated:
            snapshot = self._snapshot()  # evaluation may draw from the generators
            try:
                self._pending[-1].update(self.evaluate())
            except KeyboardInterrupt:
                self._rollback(snapshot)
                raise
        record = self._pending[-1]
        flush = last or evaluated or step % self.config.logging_steps == 0
        with _HeldInterrupts():
            # The step counts as finished from here, and its record is logged whole: a stop that comes
            # later (in a callback, say) finds both done, and a checkpoint saved before is out of date.
            self._finishing_step, self._saved_step = False, None
            logged = self._flush_records() if flush else []
        bar.update(step - bar.n)
        bar.set_postfix({k: f"{record[k]:.3g}" for k in self.progress_keys if isinstance(record.get(k), float)},
                        refresh=False)
        self._announce(logged)  # callbacks run outside the held block: a hanging one can still be stopped
        stopping = self._stop_requested and not last
        if stopping:
            with _HeldInterrupts():
                logged = self._flush_records()
            self._announce(logged)
        if self.output_dir is not None and (step % self.config.save_steps == 0 or last or stopping):
            self.save()
        return stopping

    def _save_after_interrupt(self) -> None:
        if self.output_dir is None or self.state.step == 0:
            print("\ninterrupted")
            return
        with _HeldInterrupts(reraise=False):  # a second Ctrl-C must not tear the save of the first
            if self._saved_step == self.state.step and not self._finishing_step:
                path = self.checkpoint_dir / checkpoint_name(self.state.step)  # nothing changed since
            else:
                path = self.save()
        print(f"\ninterrupted: kept the {self.state.step} completed steps in {path}; continue with "
              ".train(resume_from=True)")

    def _start_fresh(self) -> None:
        self.generator.manual_seed(self.config.seed)
        self.state, self._pending = TrainerState(), []
        self._saved_step, self._skipped_in_a_row = None, 0
        for stream in self._streams.values():
            stream.reset()
        self.on_fresh_start()
        if self.output_dir is not None:
            self._remove_leftovers()
            old = complete_checkpoints(self.checkpoint_dir)
            if old:
                warnings.warn(
                    f"{self.output_dir} holds checkpoints of an earlier run (up to {old[-1].name}); starting "
                    "over replaces them. To continue that run instead, call train(resume_from=True).",
                    stacklevel=3,
                )
                shutil.rmtree(self.checkpoint_dir)
            for path in self.log_files:
                path.unlink(missing_ok=True)
        if self.does_evaluate and self.evaluate_at_start:
            self._record({"step": 0, **self.evaluate()})

    def _flush_records(self) -> list[Record]:
        """Merge the open logging window into one record and log it (no callbacks); return it."""
        if not self._pending:
            return []
        record, self._pending = _merge(self._pending), []
        return [self._log_record(record)]

    def _record(self, record: Record) -> None:
        self._announce([self._log_record(record)])

    def _log_record(self, record: Record) -> Record:
        record = _jsonable(record)
        self.state.history.append(record)
        if self.output_dir is not None:
            self.append_jsonl(self.metrics_path, record)
        return record

    def _announce(self, records: list[Record]) -> None:
        for record in records:
            for callback in self.callbacks:
                callback.on_log(self, record)

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> Path:
        """Checkpoint everything needed to continue the run; return the checkpoint directory."""
        with _HeldInterrupts():  # a Ctrl-C during a save is raised once the checkpoint is whole
            state = {
                "step": self.state.step,
                "trainer": type(self).__name__,
                "config": self.config.to_dict(),
                "fingerprints": self.data_fingerprint(),
                "scheduler": self.scheduler.state_dict(),
                "pending_records": [_jsonable(r) for r in self._pending],
                "finishing_step": self._finishing_step,
                "skipped_in_a_row": self._skipped_in_a_row,
                **self._subclass_state(),
            }
            if self.scaler.is_enabled():
                state["grad_scaler"] = self.scaler.state_dict()
            tensors = {"generator": self.generator.get_state(), **self.trainer_tensors()}
            path = save_checkpoint(
                self.checkpoint_dir / checkpoint_name(self.state.step), self.model, self.tokenizer, self.optimizer,
                state, extra_models=self.checkpoint_models(), extra_tensors=tensors,
            )
            self._saved_step = self.state.step
            limit = self.config.save_total_limit
            if limit is not None:  # every checkpoint here is of this run's branch (see resume), so step order is age
                for old in complete_checkpoints(self.checkpoint_dir)[:-limit]:
                    shutil.rmtree(old, ignore_errors=True)
        for callback in self.callbacks:
            callback.on_save(self, path)
        return path

    def resume(self, resume_from: str | Path | bool = True, allow_config_changes: bool | Iterable[str] = False) -> bool:
        """Restore the run from a checkpoint (True: the latest under ``output_dir``); False when there is none.

        With True, a checkpoint whose files cannot be read is skipped for the one before it, with a
        warning. Checkpoints newer than the one resumed from belong to an abandoned branch of the
        run: they are moved to ``abandoned_checkpoints/`` (with a warning), so that rotation and a
        later ``resume_from=True`` follow the run that goes on.
        """
        self._remove_leftovers()
        candidates = complete_checkpoints(self.checkpoint_dir) if resume_from is True else [Path(resume_from)]
        if resume_from is True:
            self._warn_about_damaged(candidates[-1] if candidates else None)
        for index in range(len(candidates) - 1, -1, -1):
            path = candidates[index]
            try:
                self._restore(path, allow_config_changes)
            except CheckpointError as error:
                if resume_from is not True or index == 0:
                    self._partly_loaded = path  # the weights may be this checkpoint's already: refuse to train on
                    raise
                warnings.warn(f"{error}; resuming from {candidates[index - 1].name} instead", stacklevel=2)
                continue
            self._partly_loaded = None
            self._retire_newer_than(path)
            return True
        return False

    def _restore(self, path: Path, allowed: bool | Iterable[str]) -> None:
        saved = read_state(path)
        allowed = allowed if allowed is True else set(allowed or ())
        self._check_config(path, saved.get("config", {}), allowed)
        self._check_fingerprints(path, saved.get("fingerprints", {}), allowed)
        self._check_schedule(path, saved, allowed)
        state = load_checkpoint(path, self.model, self.optimizer, extra_models=self.checkpoint_models())
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
        tensors = load_extra_tensors(path)
        self.generator.set_state(tensors.pop("generator"))
        self.load_trainer_tensors(tensors)
        self._load_subclass_state(state)
        step = int(state["step"])
        self.state = TrainerState(step, self._trim_logs(step))
        self._pending = list(state.get("pending_records", []))
        self._finishing_step = bool(state.get("finishing_step", False))
        self._skipped_in_a_row = int(state.get("skipped_in_a_row", 0))
        self._saved_step = step

    def _warn_about_damaged(self, chosen: Path | None) -> None:
        """Say which newer checkpoints are skipped because a file is missing or cut short."""
        after = checkpoint_step(chosen) if chosen is not None else -1
        for path in sorted(self.checkpoint_dir.glob("step-*"), key=lambda p: checkpoint_step(p) or -1):
            step = checkpoint_step(path)
            problem = checkpoint_problem(path) if step is not None and step > after else None
            if problem:
                instead = f"resuming from {chosen.name} instead" if chosen is not None else "starting over"
                warnings.warn(f"{problem}; {instead}", stacklevel=3)

    def _retire_newer_than(self, path: Path) -> None:
        step = checkpoint_step(path)
        if step is None or Path(path).parent.resolve() != self.checkpoint_dir.resolve():
            return  # a checkpoint from elsewhere: this run's own folder is not a branch of it
        newer = [p for p in self.checkpoint_dir.glob("step-*") if p.is_dir() and (checkpoint_step(p) or -1) > step]
        if not newer:
            return
        place = self.output_dir / "abandoned_checkpoints" / f"after-{path.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        place.mkdir(parents=True, exist_ok=True)
        for old in sorted(newer, key=checkpoint_step):
            old.replace(place / old.name)
        warnings.warn(
            f"resumed from {path.name}: the newer checkpoints {[p.name for p in sorted(newer, key=checkpoint_step)]} "
            f"(an abandoned continuation, or damaged) were moved to {place}", stacklevel=3,
        )

    def _remove_leftovers(self) -> None:
        """Temporary files of writes that a kill interrupted: partial checkpoints and log rewrites."""
        remove_partial_checkpoints(self.checkpoint_dir)
        for path in self.log_files:
            for temporary in path.parent.glob(f".{path.name}.*"):
                temporary.unlink(missing_ok=True)

    def _subclass_state(self) -> dict[str, Any]:
        """The declared streams' states and :meth:`trainer_state`, side by side in a checkpoint's state."""
        return {**{name: stream.state_dict() for name, stream in self._streams.items()}, **self.trainer_state()}

    def _load_subclass_state(self, state: dict[str, Any]) -> None:
        for name, stream in self._streams.items():
            if name in state:
                stream.load_state_dict(state[name])
        self.load_trainer_state(state)

    def data_fingerprint(self) -> dict[str, str]:
        """Fingerprints (:func:`r1lib.stream.fingerprint`) of what the run trains on: the data of
        the declared streams, and whatever a subclass adds (e.g. its reward functions). Checkpoints
        keep them, and resuming with different ones is refused, naming them, unless
        ``allow_config_changes`` names them too."""
        return {name: fingerprint(data) for name, data in self._stream_data.items()}

    def _check_config(self, path: Path, saved: dict[str, Any], allowed: bool | set[str]) -> None:
        if allowed is True:
            return
        allowed = RESUMABLE_CHANGES | allowed
        now = json.loads(json.dumps(self.config.to_dict()))
        defaults = json.loads(json.dumps(type(self.config)().to_dict())) if not set(now) <= set(saved) else {}
        changed = {
            k: (saved.get(k), now.get(k)) for k in set(saved) | set(now)
            # a setting added to the library since the checkpoint was written is fine at its default
            if saved.get(k) != now.get(k) and not (k not in saved and now.get(k) == defaults.get(k))
        }
        refused = {k: v for k, v in changed.items() if k not in allowed}
        if refused:
            lines = "\n".join(f"  {k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in sorted(refused.items()))
            raise ValueError(
                f"{path} was trained with other settings:\n{lines}\nResume with the same config, or accept the "
                f"change with train(resume_from=..., allow_config_changes={sorted(refused)})"
            )

    def _check_fingerprints(self, path: Path, saved: dict[str, str], allowed: bool | set[str]) -> None:
        now = self.data_fingerprint()
        refused = sorted(k for k in set(saved) & set(now) if saved[k] != now[k] and allowed is not True and k not in allowed)
        if refused:
            raise ValueError(
                f"{path} was trained on other {' and '.join(refused)} than this trainer was given (fingerprints "
                f"{', '.join(f'{k}: {saved[k]} then, {now[k]} now' for k in refused)}). Resume with the same data, "
                f"or accept the change with train(resume_from=..., allow_config_changes={refused})"
            )

    def _check_schedule(self, path: Path, saved: dict[str, Any], allowed: bool | set[str]) -> None:
        """A schedule stretched to a new ``max_steps`` would make the learning rate jump: refuse
        that unless ``max_steps`` is named in ``allowed``."""
        before = saved.get("config", {}).get("max_steps", self.config.max_steps)
        if before == self.config.max_steps or "scheduler" not in saved:
            return
        # the schedule's factor for the next update, had the run gone on (learning_rate may change by itself)
        planned = saved["scheduler"]["_last_lr"][0] / saved["config"].get("learning_rate", self.config.learning_rate)
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        stretched = get_scheduler(
            self.config.lr_scheduler_type, probe, num_warmup_steps=self.config.num_warmup_steps,
            num_training_steps=self.config.max_steps, scheduler_specific_kwargs=dict(self.config.lr_scheduler_kwargs) or None,
        )
        for _ in range(int(saved["scheduler"]["last_epoch"])):
            probe.step()
            stretched.step()
        now = stretched.get_last_lr()[0]
        if math.isclose(planned, now, rel_tol=1e-6, abs_tol=1e-12):
            return
        jump = (f"the {self.config.lr_scheduler_type} schedule depends on max_steps: changing it from {before} to "
                f"{self.config.max_steps} moves the next update's learning rate from {planned * self.config.learning_rate:.6g} "
                f"to {now * self.config.learning_rate:.6g}")
        if allowed is True or "max_steps" in allowed:
            warnings.warn(f"{path}: {jump}", stacklevel=4)
            return
        raise ValueError(
            f"{path}: {jump}. Keep max_steps={before}, accept the jump with allow_config_changes=['max_steps'], "
            "or use a schedule that does not depend on it (lr_scheduler_type='constant_with_warmup')"
        )

    def _trim_logs(self, step: int) -> list[Record]:
        """Drop log lines after ``step`` (written after the checkpoint, or torn by a kill), atomically;
        return the kept records of ``metrics.jsonl``."""
        history: list[Record] = []
        for path in self.log_files:
            if not path.exists():
                continue
            kept_lines, kept = [], []
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a kill
                if isinstance(record, dict) and record.get("step", step + 1) <= step:
                    kept_lines.append(line)
                    kept.append(record)
            atomic_write_text(path, "".join(line + "\n" for line in kept_lines))
            if path == self.metrics_path:
                history = kept
        return history
