"""Matplotlib figures used by the notebooks. Each function returns the figure it draws."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt

# A summary statistic's title above its bars (the key with spaces when it is not listed).
STAT_TITLES = {
    "pass@1": "pass@1",
    "reasoning_rate": "samples that reason",
    "reflection_rate": "samples that reflect",
    "reflection_per_trace": "reasoning traces that reflect",
    "language_mixing_rate": "samples mixing languages",
    "language_mixing_per_trace": "reasoning traces mixing languages",
    "mean_length": "mean length",
}

# How a metric is labelled on a y-axis (the metric name itself when it is not listed).
AXIS_LABELS = {
    "reward": "mean reward",
    "eval/pass@1": "pass@1 (held-out)",
    "completions/mean_length": "tokens",
    "eval/mean_length": "tokens",
    "eval/reasoning_rate": "share of samples",
    "completions/reasoning_rate": "share of samples",
    "completions/reflection_rate": "share of samples",
    "completions/reflection_per_trace": "share of reasoning traces",
    "completions/language_mixing_rate": "share of samples",
    "eval/language_mixing_rate": "share of samples",
    "eval/language_mixing_per_trace": "share of reasoning traces",
    "kl": "KL to the reference",
    "entropy": "nats per token",
    "frac_reward_zero_std": "share of groups",
    "clip_ratio/region_mean": "share of tokens",
}
SHARES = {k for k, v in AXIS_LABELS.items() if v.startswith("share") or k == "eval/pass@1"}


def series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key`` over a metrics history, skipping steps where it was not logged (or null)."""
    points = [(m["step"], m[key]) for m in history if m.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def running_mean(values: Sequence[float], window: int = 5) -> list[float]:
    """The mean of each value and up to ``window - 1`` values before it (noisy per-step metrics)."""
    return [sum(values[max(0, j - window + 1) : j + 1]) / len(values[max(0, j - window + 1) : j + 1]) for j in range(len(values))]


def _style(ax, key: str, title: str | None) -> None:
    ax.set_title(title or key)
    ax.set_xlabel("step")
    ax.set_ylabel(AXIS_LABELS.get(key, key))
    if key in SHARES:
        ax.set_ylim(-0.02, 1.02)  # a share is shown on its whole range: a flat line must look flat
    ax.grid(alpha=0.3)


def plot_history(
    history: Sequence[dict[str, Any]],
    keys: Sequence[str] = ("reward", "eval/pass@1", "completions/mean_length", "eval/reasoning_rate"),
    titles: Sequence[str] | None = None,
    smooth: int = 5,
    figure=None,
    columns: int = 4,
):
    """One panel per metric against the training step; noisy per-step metrics get a running mean."""
    rows = -(-len(keys) // columns)
    figure = figure or plt.figure(figsize=(4 * min(columns, len(keys)), 3.2 * rows))
    figure.clear()
    axes = figure.subplots(rows, min(columns, len(keys)), squeeze=False).flatten()
    for i, key in enumerate(keys):
        ax = axes[i]
        steps, values = series(history, key)
        if not key.startswith("eval/") and smooth > 1 and len(values) > smooth:
            ax.plot(steps, values, color="0.8", lw=1)
            values = running_mean(values, smooth)
        ax.plot(steps, values, marker="o" if key.startswith("eval/") else None, lw=2)
        _style(ax, key, titles[i] if titles else None)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    figure.tight_layout()
    return figure


def plot_seed_band(
    histories: Sequence[Sequence[dict[str, Any]]],
    keys: Sequence[str],
    titles: Sequence[str] | None = None,
    smooth: int = 5,
    columns: int = 4,
):
    """Per metric, the mean over runs (seeds) as a line and their min-max range as a band.

    Runs are aligned by step; per-step metrics are smoothed with a running mean first.
    """
    rows = -(-len(keys) // columns)
    figure, axes = plt.subplots(rows, min(columns, len(keys)), figsize=(4 * min(columns, len(keys)), 3.2 * rows),
                                squeeze=False)
    axes = axes.flatten()
    for i, key in enumerate(keys):
        ax = axes[i]
        curves = []
        for history in histories:
            steps, values = series(history, key)
            if not key.startswith("eval/") and smooth > 1 and len(values) > smooth:
                values = running_mean(values, smooth)
            curves.append(dict(zip(steps, values)))
        common = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
        if common:
            table = [[c[s] for c in curves] for s in common]
            ax.fill_between(common, [min(r) for r in table], [max(r) for r in table], alpha=0.25,
                            label=f"range over {len(curves)} seeds")
            ax.plot(common, [sum(r) / len(r) for r in table], lw=2, marker="o" if key.startswith("eval/") else None,
                    label="mean")
        _style(ax, key, titles[i] if titles else None)
        if i == 0:
            ax.legend(fontsize=8)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    figure.tight_layout()
    return figure


def plot_before_after(before: dict[str, float], after: dict[str, float], keys: Sequence[str], title: str = "",
                      labels: Sequence[str] = ("before", "after")):
    """Grouped bars of a few summary statistics before and after training."""
    figure, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        bars = ax.bar(list(labels), [before[key], after[key]], color=["0.6", "tab:blue"])
        ax.bar_label(bars, fmt="%.2f", padding=2)
        top = max(before[key], after[key])
        ax.set_ylim(0, top * 1.2 if top > 0 else 1.0)  # headroom, so the value labels stay clear of the title
        ax.set_title(STAT_TITLES.get(key, key.replace("_", " ")))
        ax.set_ylabel("tokens" if "length" in key else "share" if key != "pass@1" else "pass@1")
    figure.suptitle(title)
    figure.tight_layout()
    return figure
