"""Atomic, pickle-free checkpoints: safetensors for tensors, JSON for everything else.

A checkpoint is a directory ``step-000123/`` holding

* the model in Hugging Face layout (``config.json``, ``model.safetensors``) and the tokenizer, so
  ``AutoModelForCausalLM.from_pretrained(path)`` loads it directly;
* ``optimizer.safetensors`` + ``optimizer.json``: optimizer tensors and scalars;
* ``trainer_tensors.safetensors``: the trainer's own tensors (its sampling generator's state, a
  generation batch it is still optimising on, ...);
* ``trainer_state.json``: step, scheduler, Python/torch/CUDA RNG states, the data stream's position,
  the config, and anything else the trainer adds.

The directory is first written under a temporary name and then renamed, so a kill at any moment
leaves either the previous checkpoint or the complete new one, never a partial file. Replacing a
checkpoint of the same step moves the old one aside before the new one is renamed in; a kill
between the two is undone by :func:`remove_partial_checkpoints`. ``trainer_state.json``, written
last, lists every file with its size: a directory counts as complete only when they all match.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from transformers.utils import logging as hf_logging

STATE_FILE = "trainer_state.json"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
TRAINER_TENSORS = "trainer_tensors.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint file that is missing, truncated or unreadable; the message names the file."""


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make shared run folders unreadable to others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(directory: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``directory``; when the block succeeds, it replaces ``directory``.

    A failure (or a kill) inside the block leaves the old ``directory`` untouched; the temporary
    directory is removed on failure. An old ``directory`` is renamed aside before the new one is
    renamed in and only then deleted, so some whole version always exists: after a kill between
    the two renames, :func:`recover_replaced_directories` (run on the next write beside it, and by
    :func:`remove_partial_checkpoints`) puts the old one back.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    recover_replaced_directories(directory.parent)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
        aside = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
        if directory.exists():
            os.replace(directory, aside)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def recover_replaced_directories(parent: str | Path) -> list[Path]:
    """Finish replacements that a kill interrupted in ``parent``: an old version moved aside is
    deleted when its new version is in place, and moved back when it is not. Returns what was restored."""
    parent = Path(parent)
    restored = []
    for aside in sorted(parent.glob(".*.old-*")) if parent.is_dir() else []:
        target = parent / aside.name[1:].rsplit(".old-", 1)[0]
        if target.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(aside, target)
            restored.append(target)
    return restored


def _split_optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            name = f"{index}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> dict[str, Any]:
    """Python, torch and (when present) CUDA RNG states, JSON-serialisable."""
    version, internal, gauss = random.getstate()
    state = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    tokenizer: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
    state: dict[str, Any] | None = None,
    extra_models: dict[str, torch.nn.Module] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a complete checkpoint to ``directory`` atomically and return its path.

    ``extra_models`` (e.g. a reference model that is refreshed during training) are stored as
    ``<name>.safetensors``; ``extra_tensors`` in ``trainer_tensors.safetensors``.
    """
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one "Writing model shards" bar per checkpoint is noise
    try:
        with atomic_directory(directory) as tmp:
            model.save_pretrained(str(tmp))
            if tokenizer is not None:
                tokenizer.save_pretrained(str(tmp))
            if optimizer is not None:
                tensors, meta = _split_optimizer_state(optimizer)
                save_file(tensors, str(tmp / OPTIMIZER_TENSORS))
                (tmp / OPTIMIZER_META).write_text(json.dumps(meta))
            for name, extra in (extra_models or {}).items():
                save_model(extra, str(tmp / f"{name}.safetensors"))
            if extra_tensors:
                save_file({k: v.detach().cpu().contiguous() for k, v in extra_tensors.items()}, str(tmp / TRAINER_TENSORS))
            files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
            (tmp / STATE_FILE).write_text(json.dumps({**(state or {}), "rng": rng_state(), "files": files}))
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    return Path(directory)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """``load_file`` with an error that names the file (safetensors' own does not)."""
    try:
        return load_file(str(path))
    except Exception as error:  # SafetensorError, OSError, ...: all mean this file is unusable
        raise CheckpointError(f"{path} cannot be read ({type(error).__name__}: {error})") from error


def load_weights(model: torch.nn.Module, directory: str | Path) -> None:
    """Load a checkpoint's weights into an existing model: a full model, or a LoRA adapter."""
    directory = Path(directory)
    adapter = directory / "adapter_model.safetensors"
    if adapter.exists():
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, _read_tensors(adapter))
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"adapter checkpoint has weights the model lacks: {result.unexpected_keys[:5]}")
        missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
        if missing:  # e.g. an adapter trained on fewer target modules: the rest would keep fresh values
            raise ValueError(f"adapter checkpoint {adapter} lacks adapter weights the model has: {missing[:5]}")
        return
    weights = _read_tensors(directory / "model.safetensors")
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"checkpoint has weights the model lacks: {result.unexpected_keys[:5]}")
    current = model.state_dict()
    loaded = {current[name].data_ptr() for name in weights}
    untied = [k for k in result.missing_keys if current[k].data_ptr() not in loaded]
    if untied:
        raise ValueError(f"checkpoint is missing weights: {untied[:5]}")


def load_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    extra_models: dict[str, torch.nn.Module] | None = None,
) -> dict[str, Any]:
    """Restore model, optimizer, extra models and RNG states from ``directory``; return the trainer state."""
    directory = Path(directory)
    state = read_state(directory)
    _check_files(directory, state)
    load_weights(model, directory)
    if optimizer is not None:
        tensors = _read_tensors(directory / OPTIMIZER_TENSORS)
        optimizer.load_state_dict(_join_optimizer_state(tensors, _read_json(directory / OPTIMIZER_META)))
    for name, extra in (extra_models or {}).items():
        path = directory / f"{name}.safetensors"
        try:
            load_model(extra, str(path))
        except Exception as error:  # safetensors' errors do not name the file
            raise CheckpointError(f"{path} cannot be read ({type(error).__name__}: {error})") from error
    state.pop("files", None)
    set_rng_state(state.pop("rng"))
    return state


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} cannot be read ({type(error).__name__}: {error})") from error


def read_state(directory: str | Path) -> dict[str, Any]:
    """The JSON state of a complete checkpoint, without loading anything else."""
    path = Path(directory) / STATE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a complete checkpoint (no {STATE_FILE})")
    return _read_json(path)


def _check_files(directory: Path, state: dict[str, Any]) -> None:
    """Every file the checkpoint listed when it was written is there, at its size."""
    for name, size in state.get("files", {}).items():
        path = directory / name
        found = path.stat().st_size if path.exists() else None
        if found != size:
            what = "is missing" if found is None else f"has {found} bytes, {size} were written"
            raise CheckpointError(f"{path} {what}: the checkpoint is damaged")


def checkpoint_problem(directory: str | Path) -> str | None:
    """Why ``directory`` is not a whole checkpoint (naming the file), or None when it is: its state,
    and every file at the size it was written with (checkpoints from before sizes were recorded:
    the state and the weights)."""
    directory = Path(directory)
    try:
        state = read_state(directory)
        _check_files(directory, state)
    except (FileNotFoundError, CheckpointError) as error:
        return str(error)
    if "files" not in state and not any((directory / n).exists() for n in ("model.safetensors", "adapter_model.safetensors")):
        return f"{directory} has no model weights"
    return None


def load_extra_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
    """The ``extra_tensors`` a checkpoint was saved with (empty when none)."""
    path = Path(directory) / TRAINER_TENSORS
    return _read_tensors(path) if path.exists() else {}


def complete_checkpoints(root: str | Path) -> list[Path]:
    """The complete ``step-*`` checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    complete = [p for p in root.glob("step-*") if checkpoint_step(p) is not None and checkpoint_problem(p) is None]
    return sorted(complete, key=checkpoint_step)


def latest_checkpoint(root: str | Path) -> Path | None:
    """The complete ``step-*`` checkpoint with the highest step under ``root``, or None."""
    complete = complete_checkpoints(root)
    return complete[-1] if complete else None


def remove_partial_checkpoints(root: str | Path) -> list[Path]:
    """Delete temporary directories left by a save that was killed, and finish an interrupted
    replacement (:func:`recover_replaced_directories`); return what was removed."""
    root = Path(root)
    recover_replaced_directories(root)
    stale = [p for p in root.glob(".step-*.tmp-*") if p.is_dir()] if root.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint taken after ``step`` optimizer steps."""
    return f"step-{step:06d}"


def checkpoint_step(path: str | Path) -> int | None:
    """The step of a ``step-*`` directory name; None for any other name."""
    name = Path(path).name
    number = name[len("step-"):] if name.startswith("step-") else ""
    return int(number) if number.isdigit() else None
