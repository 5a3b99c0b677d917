"""Notebook views: live training curves, and a browser for the completions sampled during training."""

from __future__ import annotations

import base64
import html
import inspect
import io
import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from .plots import plot_history
from .trainer import TrainerCallback


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, a notebook executor)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def figure_html(figure) -> str:
    """A matplotlib figure as an inline PNG ``<img>`` (for static copies of widgets)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return f"<img src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'/>"


def display_widget(widget, static_html: str, handle=None):
    """Display ``widget`` with a static HTML copy of how it looks now, in one output.

    A live Jupyter shows the widget; a saved notebook seen where widgets cannot run (GitHub,
    nbviewer, a notebook opened without its kernel) shows the copy. Pass the returned ``handle``
    again to refresh the copy (e.g. at the end of training). Returns the display handle.
    """
    from IPython.display import display

    bundle = {
        WIDGET_MIME: {"model_id": widget.model_id, "version_major": 2, "version_minor": 0},
        "text/html": static_html,
        "text/plain": f"<{type(widget).__name__} widget: run the notebook to interact>",
    }
    if handle is None:
        return display(bundle, raw=True, display_id=True)
    handle.update(bundle, raw=True)
    return handle


class LiveCurves(TrainerCallback):
    """A live training dashboard (ipywidgets): a status line and curves that redraw as the run goes.

    Use it as ``GRPOTrainer(..., callbacks=[LiveCurves()])``. It redraws every ``every`` steps and
    whenever an evaluation lands; when training ends, the static copy kept in the notebook's output
    is refreshed to the final curves. Outside a notebook it only records the history.
    """

    def __init__(
        self,
        keys: Sequence[str] = ("reward", "eval/pass@1", "completions/mean_length", "eval/reasoning_rate"),
        every: int = 10,
        titles: Sequence[str] | None = None,
    ) -> None:
        self.keys, self.every, self.titles = list(keys), every, titles
        self.history: list[dict[str, Any]] = []
        self._status = self._plot = self._figure = self._box = self._handle = None

    def _start(self) -> bool:
        if not in_notebook():
            return False
        import ipywidgets as widgets

        self._status, self._plot = widgets.HTML(), widgets.Output()
        self._figure = plt.figure(figsize=(4 * min(4, len(self.keys)), 3.2 * -(-len(self.keys) // 4)))
        plt.close(self._figure)  # shown only inside the dashboard
        self._box = widgets.VBox([self._status, self._plot])
        self._handle = display_widget(self._box, "<i>training starts...</i>")
        return True

    def __call__(self, record: dict[str, Any]) -> None:
        self.on_log(None, record)

    def on_log(self, trainer, record: dict[str, Any]) -> None:
        self.history.append(record)
        if record["step"] % self.every and not any(k.startswith("eval/") for k in record):
            return
        self._redraw()

    def on_train_end(self, trainer) -> None:
        if self.history:
            self._redraw()
        if self._handle is not None:
            display_widget(self._box, self._status.value + figure_html(self._figure), self._handle)

    def _redraw(self) -> None:
        if self._status is None and not self._start():
            return
        from IPython.display import clear_output, display

        record = self.history[-1]
        latest = {k: v for k, v in record.items() if isinstance(v, float)}
        shown = ", ".join(f"{k} = {latest[k]:.3f}" for k in self.keys if k in latest)
        self._status.value = f"<b>step {record['step']}</b> &nbsp; {html.escape(shown)}"
        plot_history(self.history, self.keys, self.titles, figure=self._figure)
        with self._plot:
            clear_output(wait=True)
            display(self._figure)


def show_source(*objects: Any) -> None:
    """Display the library's own source of functions or methods (not a copy that could drift).

    In a notebook it renders as a highlighted code block; elsewhere it is printed. It returns
    ``None``, so that a call ending a notebook cell leaves no second copy as the cell's value.
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


def say(markdown: str) -> None:
    """Show a sentence built from a run's numbers as Markdown in a notebook (printed elsewhere).

    The course never types a measured number into its prose: it computes the sentence and shows it.
    """
    if in_notebook():
        from IPython.display import Markdown, display

        display(Markdown(markdown))
    else:
        print(markdown)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], colours: Sequence[Sequence[str | None]] | None = None,
               monospace: bool = True) -> str:
    """An HTML table with every cell escaped (so ``<think>`` shows as text, not as a vanished tag).

    ``colours`` gives an optional background per cell (``None`` for none).
    """
    style = "font-family:monospace;text-align:left;white-space:pre-wrap" if monospace else "text-align:left"
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            colour = colours[r][c] if colours else None
            background = f"background:{colour};" if colour else ""
            cells.append(f"<td style='{background}{style}'>{html.escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def show_html(markup: str) -> None:
    """Display HTML in a notebook (printed elsewhere)."""
    if in_notebook():
        from IPython.display import HTML, display

        display(HTML(markup))
    else:
        print(markup)


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
        static = f"<p><b>step {step.value}</b>, prompt <code>{html.escape(str(question.value))}</code></p>" + view.value
        display_widget(box, static)
        return box
