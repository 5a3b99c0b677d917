"""Matplotlib figures used by the notebooks. Each function returns the figure it draws."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt


def series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key`` over a metrics history, skipping steps where it was not logged."""
    points = [(m["step"], m[key]) for m in history if key in m]
    return [p[0] for p in points], [p[1] for p in points]


def running_mean(values: Sequence[float], window: int = 5) -> list[float]:
    """The mean of each value and up to ``window - 1`` values before it (noisy per-step metrics)."""
    return [sum(values[max(0, j - window + 1) : j + 1]) / len(values[max(0, j - window + 1) : j + 1]) for j in range(len(values))]


def plot_history(
    history: Sequence[dict[str, Any]],
    keys: Sequence[str] = ("reward", "eval/pass@1", "completions/mean_length", "eval/reasoning_rate"),
    titles: Sequence[str] | None = None,
    smooth: int = 5,
    figure=None,
):
    """One panel per metric against the training step; noisy per-step metrics get a running mean."""
    figure = figure or plt.figure(figsize=(4 * len(keys), 3.2))
    figure.clear()
    axes = figure.subplots(1, len(keys), squeeze=False)[0]
    for i, (ax, key) in enumerate(zip(axes, keys)):
        steps, values = series(history, key)
        if not key.startswith("eval/") and smooth > 1 and len(values) > smooth:
            ax.plot(steps, values, color="0.8", lw=1)
            values = running_mean(values, smooth)
        ax.plot(steps, values, marker="o" if key.startswith("eval/") else None, lw=2)
        ax.set_title(titles[i] if titles else key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_before_after(before: dict[str, float], after: dict[str, float], keys: Sequence[str], title: str = ""):
    """Grouped bars of a few summary statistics before and after training."""
    figure, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 3))
    for ax, key in zip(axes, keys):
        bars = ax.bar(["before", "after"], [before[key], after[key]], color=["0.6", "tab:blue"])
        ax.bar_label(bars, fmt="%.2f")
        ax.set_title(key)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
