"""Notebook views: live training curves, and a browser for the completions sampled during training."""

from __future__ import annotations

import html
import inspect
import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from .plots import plot_history


class LiveCurves:
    """A live training dashboard (ipywidgets): a status line and curves that redraw as the run goes.

    Use it as ``GRPOTrainer(..., callbacks=[LiveCurves()])``. It redraws every ``every`` steps and
    whenever an evaluation lands. Outside a notebook it only records the history.
    """

    def __init__(
        self,
        keys: Sequence[str] = ("reward", "eval/pass@1", "completions/mean_length", "eval/reasoning_rate"),
        every: int = 10,
    ) -> None:
        self.keys, self.every = list(keys), every
        self.history: list[dict[str, Any]] = []
        self._status = self._plot = self._figure = None

    def _start(self) -> bool:
        try:
            import ipywidgets as widgets
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return False
        if get_ipython() is None:
            return False
        self._status, self._plot = widgets.HTML(), widgets.Output()
        self._figure = plt.figure(figsize=(4 * len(self.keys), 3.2))
        plt.close(self._figure)  # shown only inside the dashboard
        display(widgets.VBox([self._status, self._plot]))
        return True

    def __call__(self, metrics: dict[str, Any]) -> None:
        self.history.append(metrics)
        if metrics["step"] % self.every and not any(k.startswith("eval/") for k in metrics):
            return
        if self._status is None and not self._start():
            return
        latest = {k: v for k, v in metrics.items() if isinstance(v, float)}
        shown = ", ".join(f"{k} = {latest[k]:.3f}" for k in self.keys if k in latest)
        self._status.value = f"<b>step {metrics['step']}</b> &nbsp; {html.escape(shown)}"
        plot_history(self.history, self.keys, figure=self._figure)
        with self._plot:
            from IPython.display import clear_output, display

            clear_output(wait=True)
            display(self._figure)


def show_source(*objects: Any) -> str:
    """Display the library's own source of functions or methods (not a copy that could drift).

    In a notebook it renders as a highlighted code block; elsewhere it is printed. Returns the text.
    """
    text = "\n\n".join(textwrap.dedent(inspect.getsource(obj)).rstrip() for obj in objects)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(f"```python\n{text}\n```"))
    else:
        print(text)
    return text


def load_completions(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``completions.jsonl`` (one per logged completion)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _completion_html(records: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in records:
        correct = r.get("rewards", {}).get("accuracy")
        colour = "#f1f3f4" if correct is None else "#e6f4ea" if correct >= 1 else "#fce8e6"
        parts = ", ".join(f"{k}={v:.2f}" for k, v in r.get("rewards", {}).items() if v is not None)
        text = html.escape(r["completion"])
        rows.append(
            f"<tr style='background:{colour}'><td>{r.get('reward', 0):.2f}<br><small>{parts}</small></td>"
            f"<td>{r.get('advantage', 0):+.2f}</td>"
            f"<td style='font-family:monospace;text-align:left;white-space:pre-wrap'>{text}</td></tr>"
        )
    return "<table><tr><th>reward</th><th>advantage</th><th>completion</th></tr>" + "".join(rows) + "</table>"


class CompletionBrowser:
    """Pick a training step and one of its prompts; read the sampled completions with their rewards.

    ``CompletionBrowser("runs/03_r1_zero/cpu/completions.jsonl").show()`` in a notebook.
    """

    def __init__(self, source: str | Path | Sequence[dict[str, Any]]) -> None:
        self.records = load_completions(source) if isinstance(source, (str, Path)) else list(source)
        if not self.records:
            raise ValueError("no completions to browse")
        self.steps = sorted({r["step"] for r in self.records})

    def questions(self, step: int) -> list[str]:
        """The prompts logged at ``step``, in order."""
        return list(dict.fromkeys(r["question"] for r in self.records if r["step"] == step))

    def completions(self, step: int, question: str) -> list[dict[str, Any]]:
        """The logged completions of ``question`` at ``step``."""
        return [r for r in self.records if r["step"] == step and r["question"] == question]

    def show(self):
        """Display the browser (ipywidgets); returns the widget."""
        import ipywidgets as widgets
        from IPython.display import display

        step = widgets.SelectionSlider(options=self.steps, value=self.steps[-1], description="step",
                                       continuous_update=False, layout=widgets.Layout(width="60%"))
        question = widgets.Dropdown(description="prompt")
        view = widgets.HTML()

        def refresh_questions(*_):
            options = self.questions(step.value)
            question.options = options
            question.value = options[0] if options else None

        def refresh_view(*_):
            if question.value is not None:
                answer = self.completions(step.value, question.value)[0].get("answer", "")
                view.value = f"<b>reference answer:</b> {html.escape(str(answer))}" + _completion_html(
                    self.completions(step.value, question.value))

        step.observe(refresh_questions, names="value")
        question.observe(refresh_view, names="value")
        refresh_questions()
        refresh_view()
        box = widgets.VBox([step, question, view])
        display(box)
        return box
