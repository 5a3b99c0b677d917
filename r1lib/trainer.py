"""The one training loop of r1lib. Every trainer (GRPO, SFT, distillation, the reward model, the
tiny world's pretraining) is a subclass that only says what one step computes.

:class:`Trainer` owns, once for all of them:

* the optimizer (AdamW) and the learning-rate schedule (``transformers.get_scheduler``);
* mixed precision: autocast on CUDA, fp16 loss scaling, unscaling before clipping, and a skipped
  update when gradients are not finite;
* the loop, with its progress bar and the timing of evaluation, logging and saving;
* checkpoints: atomic safetensors directories with the model, optimizer, scheduler, RNG states,
  the data stream's position and whatever the subclass adds, plus ``save_total_limit`` rotation;
* resuming from the latest checkpoint, refusing a changed config unless told otherwise;
* ``metrics.jsonl``, one JSON line per logged step, trimmed atomically on resume so that no step
  appears twice; Ctrl-C (or a notebook's stop button) saves a checkpoint and returns;
* callbacks.

A subclass implements :meth:`Trainer.training_step` (compute the loss of one optimizer step, call
:meth:`Trainer.backward` for each micro-batch, return metrics) and, when it has something to
evaluate, :meth:`Trainer.evaluate`. The loop in :meth:`Trainer.train` is the only training loop of
the library.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import get_scheduler

from .checkpoint import (
    atomic_write_text,
    checkpoint_name,
    complete_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    load_extra_tensors,
    read_state,
    remove_partial_checkpoints,
    save_checkpoint,
)
from .configs import RESUMABLE_CHANGES, TrainingConfig
from .hardware import (
    GIB, DeviceInfo, MemoryEstimate, ModelShape, StepShape, check_fits, device_info, estimate_memory,
    estimate_step_seconds, format_bytes,
)

Record = dict[str, Any]


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
    """One record for a logging window: the mean of each numeric metric over the steps that have it."""
    merged: Record = {}
    sums: dict[str, list[float]] = {}
    for record in records:
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                sums.setdefault(key, []).append(float(value))
            else:
                merged[key] = value
    for key, values in sums.items():
        merged[key] = sum(values) / len(values)
    merged["step"] = records[-1]["step"]
    return {"step": merged.pop("step"), **merged}


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
        self.memory_estimate: MemoryEstimate | None = None  # set by preflight()

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

    def on_fresh_start(self) -> None:
        """Reset the subclass's data streams and buffers for a run that starts at step 0."""

    def after_optimizer_step(self) -> None:
        """Called after each update (e.g. GRPO's reference-model refresh)."""

    def trainer_state(self) -> dict[str, Any]:
        """JSON-able state a checkpoint must keep besides the weights (e.g. the stream's position)."""
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
        # transformers 5 renamed the flag, and reading the old name warns
        flag = "is_activation_checkpointing" if hasattr(self.model, "is_activation_checkpointing") else "is_gradient_checkpointing"
        checkpointing = bool(getattr(self.model, flag, False))
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

    def step(self) -> Record:
        """One optimizer update: the subclass's loss, then unscale, clip, step and schedule."""
        began = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        metrics = dict(self.training_step())
        metrics.update(self._apply_gradients())
        self.state.step += 1
        self.after_optimizer_step()
        metrics["step_time"] = time.perf_counter() - began
        return {"step": self.state.step, **metrics}

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
        (a fresh start when there is none). A checkpoint made with other settings is refused, naming
        the differences, unless ``allow_config_changes`` is True or names them; scheduling settings
        (``max_steps``, ``save_steps``, ...) may always change. Interrupting (Ctrl-C, or a notebook's
        stop button) saves a checkpoint and returns.
        """
        if resume_from and self.output_dir is None:
            raise ValueError("resuming needs an output_dir with checkpoints")
        if resume_from:
            self.resume(resume_from, allow_config_changes)
        if self.state.step < self.config.max_steps:  # before _start_fresh: a refused run must not delete old checkpoints
            message = self.preflight()
            if message and self.device.type == "cuda":
                print(message)
        if self.state.step == 0:
            self._start_fresh()
        self._stop_requested = False
        for callback in self.callbacks:
            callback.on_train_begin(self)
        bar = tqdm(total=self.config.max_steps, initial=self.state.step, desc=self.name, disable=not self.progress)
        try:
            while self.state.step < self.config.max_steps:
                metrics = self.step()
                step = self.state.step
                last = step == self.config.max_steps
                evaluated = self.does_evaluate and (step % self.config.eval_steps == 0 or last)
                if evaluated:
                    metrics.update(self.evaluate())
                self._log(metrics, flush=last or evaluated)
                bar.update(1)
                shown = {k: f"{metrics[k]:.3g}" for k in self.progress_keys if isinstance(metrics.get(k), float)}
                bar.set_postfix(shown, refresh=False)
                stopping = self._stop_requested and not last
                if stopping:
                    self._flush()
                if self.output_dir is not None and (step % self.config.save_steps == 0 or last or stopping):
                    self.save()
                if stopping:
                    break
        except KeyboardInterrupt:
            self._flush()
            if self.output_dir is not None and self.state.step > 0:
                path = self.save()
                print(f"\ninterrupted: saved {path}; continue with .train(resume_from=True)")
            else:
                print("\ninterrupted")
        finally:
            bar.close()
            for callback in self.callbacks:
                callback.on_train_end(self)
        return self.state.history

    def _start_fresh(self) -> None:
        self.generator.manual_seed(self.config.seed)
        self.state, self._pending = TrainerState(), []
        self.on_fresh_start()
        if self.output_dir is not None:
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

    def _log(self, metrics: Record, flush: bool) -> None:
        self._pending.append(metrics)
        if flush or metrics["step"] % self.config.logging_steps == 0:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            record, self._pending = _merge(self._pending), []
            self._record(record)

    def _record(self, record: Record) -> None:
        record = _jsonable(record)
        self.state.history.append(record)
        if self.output_dir is not None:
            self.append_jsonl(self.metrics_path, record)
        for callback in self.callbacks:
            callback.on_log(self, record)

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> Path:
        """Checkpoint everything needed to continue the run; return the checkpoint directory."""
        state = {
            "step": self.state.step,
            "trainer": type(self).__name__,
            "config": self.config.to_dict(),
            "scheduler": self.scheduler.state_dict(),
            "pending_records": [_jsonable(r) for r in self._pending],
            **self.trainer_state(),
        }
        if self.scaler.is_enabled():
            state["grad_scaler"] = self.scaler.state_dict()
        tensors = {"generator": self.generator.get_state(), **self.trainer_tensors()}
        path = save_checkpoint(
            self.checkpoint_dir / checkpoint_name(self.state.step), self.model, self.tokenizer, self.optimizer,
            state, extra_models=self.checkpoint_models(), extra_tensors=tensors,
        )
        limit = self.config.save_total_limit
        if limit is not None:
            for old in complete_checkpoints(self.checkpoint_dir)[:-limit]:
                shutil.rmtree(old, ignore_errors=True)
        for callback in self.callbacks:
            callback.on_save(self, path)
        return path

    def resume(self, resume_from: str | Path | bool = True, allow_config_changes: bool | Iterable[str] = False) -> bool:
        """Restore the run from a checkpoint (True: the latest under ``output_dir``); False when there is none."""
        remove_partial_checkpoints(self.checkpoint_dir)
        path = latest_checkpoint(self.checkpoint_dir) if resume_from is True else Path(resume_from)
        if path is None:
            return False
        saved = read_state(path)
        self._check_config(path, saved.get("config", {}), allow_config_changes)
        state = load_checkpoint(path, self.model, self.optimizer, extra_models=self.checkpoint_models())
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
        tensors = load_extra_tensors(path)
        self.generator.set_state(tensors.pop("generator"))
        self.load_trainer_tensors(tensors)
        self.load_trainer_state(state)
        self.state = TrainerState(int(state["step"]), self._trim_logs(int(state["step"])))
        self._pending = list(state.get("pending_records", []))
        return True

    def _check_config(self, path: Path, saved: dict[str, Any], allowed: bool | Iterable[str]) -> None:
        if allowed is True:
            return
        allowed = RESUMABLE_CHANGES | set(allowed or ())
        now = json.loads(json.dumps(self.config.to_dict()))
        changed = {k: (saved.get(k), now.get(k)) for k in set(saved) | set(now) if saved.get(k) != now.get(k)}
        refused = {k: v for k, v in changed.items() if k not in allowed}
        if refused:
            lines = "\n".join(f"  {k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in sorted(refused.items()))
            raise ValueError(
                f"{path} was trained with other settings:\n{lines}\nResume with the same config, or accept the "
                f"change with train(resume_from=..., allow_config_changes={sorted(refused)})"
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
