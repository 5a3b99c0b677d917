"""Live views for notebooks: training curves that redraw while a run is in progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt

from .plots import plot_history


class LiveCurves:
    """A GRPO trainer callback that redraws the training curves in place every ``every`` steps.

    Use it as ``GRPOTrainer(..., callbacks=[LiveCurves()])``. Outside a notebook it does nothing.
    """

    def __init__(self, keys: Sequence[str] = ("reward", "eval/pass@1", "completions/mean_length", "eval/reasoning_rate"), every: int = 10) -> None:
        self.keys, self.every = list(keys), every
        self.history: list[dict[str, Any]] = []
        self._handle = None
        self._figure = None

    def __call__(self, metrics: dict[str, Any]) -> None:
        self.history.append(metrics)
        if metrics["step"] % self.every and not any(k.startswith("eval/") for k in metrics):
            return
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:
            return
        if self._figure is None:
            self._figure = plt.figure(figsize=(4 * len(self.keys), 3.2))
            plt.close(self._figure)  # drawn only through the display handle
        plot_history(self.history, self.keys, figure=self._figure)
        if self._handle is None:
            self._handle = display(self._figure, display_id=True)
        else:
            self._handle.update(self._figure)
