"""Tasks by name: what a profile's ``task`` string means.

Each entry turns ``(num_train, num_eval, seed, data_dir)`` into a task with disjoint training and
evaluation examples. Generated tasks draw their evaluation set from one fixed seed
(:mod:`r1lib.tasks.splits`); hub tasks read local jsonl files from ``data_dir`` (offline) or
download their splits.
Add your own with :func:`register_task`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import Example, Task
from .splits import eval_examples, train_examples


@dataclass
class TaskData:
    """A task and its disjoint training and evaluation examples."""

    task: Task
    train: list[Example]
    eval: list[Example]


Loader = Callable[[int, int, int, str | None], TaskData]
_REGISTRY: dict[str, Loader] = {}


def register_task(name: str) -> Callable[[Loader], Loader]:
    """Register ``loader(num_train, num_eval, seed, data_dir) -> TaskData`` under ``name``."""

    def decorate(loader: Loader) -> Loader:
        if name in _REGISTRY:
            raise ValueError(f"a task named {name!r} is already registered")
        _REGISTRY[name] = loader
        return loader

    return decorate


def task_names() -> list[str]:
    """The registered task names."""
    return sorted(_REGISTRY)


def load_task(name: str, num_train: int, num_eval: int, seed: int = 0, data_dir: str | Path | None = None) -> TaskData:
    """The task registered as ``name`` with ``num_train`` training and ``num_eval`` evaluation examples."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; registered tasks: {task_names()}")
    if num_train < 1 or num_eval < 0:
        raise ValueError(f"need num_train >= 1 and num_eval >= 0, got {num_train}, {num_eval}")
    return _REGISTRY[name](num_train, num_eval, seed, None if data_dir is None else str(data_dir))


def _generated(task) -> Loader:
    def load(num_train: int, num_eval: int, seed: int, data_dir: str | None) -> TaskData:
        return TaskData(task, train_examples(task, num_train, seed, held_out=num_eval), eval_examples(task, num_eval))

    return load


def _register_builtin() -> None:
    from .chain import ChainTask
    from .countdown import CountdownTask
    from .general import GeneralTask
    from .gsm8k import GSM8KTask, load_gsm8k
    from .search import SearchTask

    register_task("chain")(_generated(ChainTask()))
    register_task("search")(_generated(SearchTask()))
    register_task("general")(_generated(GeneralTask()))
    register_task("countdown")(_generated(CountdownTask()))

    @register_task("gsm8k")
    def gsm8k(num_train: int, num_eval: int, seed: int, data_dir: str | None) -> TaskData:
        local = {s: Path(data_dir) / f"{s}.jsonl" for s in ("train", "test")} if data_dir else {}
        train = load_gsm8k("train", local.get("train"), limit=num_train)
        evaluation = load_gsm8k("test", local.get("test"), limit=num_eval)
        return TaskData(GSM8KTask(), train, evaluation)


_register_builtin()
