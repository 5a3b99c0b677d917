"""Seeded, checkpointable streams of training items.

Every trainer draws its data from one of these and declares it to the base trainer
(:meth:`r1lib.trainer.Trainer.add_stream`), which resets it for a fresh run and keeps its state in
checkpoints, so that a resumed run sees exactly the items the uninterrupted run would have seen.

* :class:`ExampleStream`: the items of a finite list, in a fresh seeded shuffle every epoch.
* :class:`RandomStream`: an endless stream made by a function of a seeded ``random.Random``
  (procedurally generated documents, as in the tiny world's pretraining).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


def fingerprint(value: Any) -> str:
    """A short, stable hash of ``value``'s ``repr`` (lists, dicts, dataclasses, strings, numbers).

    Trainers store fingerprints of their training data and reward functions in checkpoints, so that
    resuming with other data of the same size is noticed instead of silently mixing two runs.
    """
    # an object without its own repr shows its address, which differs in every process
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Stream(Protocol):
    """What the base trainer needs of a data stream: its state, and a way back to its seeded beginning."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def reset(self) -> None: ...


class ExampleStream(Generic[T]):
    """Items of ``items`` in a seeded shuffle; every item is seen once before any repeats.

    The state is two integers (epoch and position): the order of an epoch is recomputed from the
    seed, so a checkpoint stays small whatever the data size.
    """

    def __init__(self, items: Sequence[T], seed: int = 0) -> None:
        if not items:
            raise ValueError("an ExampleStream needs at least one item")
        self.items = list(items)
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        """Back to the first item of the first epoch, as a new stream with the same seed."""
        self.epoch, self.position = 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[int]:
        order = list(range(len(self.items)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def take(self, count: int) -> list[T]:
        """The next ``count`` items, crossing into a new epoch (and shuffle) when needed."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        picked = []
        while len(picked) < count:
            if self.position == len(self.items):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._shuffled(self.epoch)
            picked.append(self.items[self._order[self.position]])
            self.position += 1
        return picked

    def state_dict(self) -> dict[str, int]:
        """JSON-able state; :meth:`load_state_dict` restores it."""
        return {"epoch": self.epoch, "position": self.position, "size": len(self.items), "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("size", len(self.items)) != len(self.items):
            raise ValueError(
                f"the checkpoint's stream had {state['size']} items, this one has {len(self.items)}: "
                "resume with the same training data"
            )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._shuffled(self.epoch)


class RandomStream(Generic[T]):
    """An endless stream of ``make(rng, **kwargs)`` results from one seeded ``random.Random``."""

    def __init__(self, make: Callable[..., T], seed: int = 0) -> None:
        self.make = make
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        """Back to the first item, as a new stream with the same seed."""
        self.rng = random.Random(self.seed)

    def take(self, count: int, **kwargs: Any) -> list[T]:
        """The next ``count`` items; ``kwargs`` go to ``make`` (e.g. the curriculum's progress)."""
        return [self.make(self.rng, **kwargs) for _ in range(count)]

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss], "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
