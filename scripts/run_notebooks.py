"""Execute the course notebooks top to bottom, in order, headless.

    python scripts/run_notebooks.py [--out DIR | --in-place] [NOTEBOOK ...]

The profile comes from ``R1LIB_PROFILE`` (``make course`` sets ``cpu``; the tests set ``smoke``).
Executed copies, with their outputs and the state of their widgets, are written to ``--out``, or
over the notebooks themselves with ``--in-place`` (``make publish-notebooks``: the committed
notebooks carry the outputs of a CPU-profile run). A failing cell, including a final assertion
that the notebook's promise did not hold, stops the run with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import datetime
import html
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _progress_text(models: dict, box: dict) -> str | None:
    """The text of a tqdm progress bar (an HBox of text, bar, text) in its saved, final state."""
    children = [models.get(c.removeprefix("IPY_MODEL_"), {}) for c in box.get("state", {}).get("children", [])]
    if len(children) != 3 or children[1].get("model_name") != "FloatProgressModel":
        return None
    left, bar, right = (child.get("state", {}) for child in children)
    fraction = min(1.0, (bar.get("value") or 0) / bar["max"]) if bar.get("max") else 0.0
    text = f"{left.get('value', '')}|{'█' * round(10 * fraction):<10}|{right.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


def finish_progress_text(notebook: dict) -> int:
    """Give every progress bar's plain-text copy (what GitHub, or Colab before running, shows) the
    bar's final state; tqdm leaves its first frame (``0%|``) there. Returns how many were rewritten."""
    models = notebook.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    rewritten = 0
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            text = _progress_text(models, models.get(view["model_id"], {})) if view else None
            if text is not None:
                output["data"]["text/plain"] = text
                rewritten += 1
    return rewritten


def output_problems(notebook: dict, name: str = "notebook") -> list[str]:
    """What a published notebook must not show a reader: an error, a Python warning, a temporary
    ``/tmp/`` path, or a progress bar frozen at its first frame (``0%|``)."""
    problems = []
    models = notebook.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for index, cell in enumerate(notebook.get("cells", [])):
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            view = output.get("data", {}).get(WIDGET_VIEW)
            final = _progress_text(models, models.get(view["model_id"], {})) if view else None
            texts = [output.get("text", "")] + [output.get("data", {}).get("text/plain", "")]
            text = "".join("".join(t) if isinstance(t, list) else t for t in texts)
            where = f"{name} cell {index}"
            if kind == "error":
                problems.append(f"{where}: an error ({output.get('ename')})")
            if "/tmp/" in text:
                problems.append(f"{where}: a temporary path: {text[text.index('/tmp/'):][:80]!r}")
            warning = re.search(r"[^\n]*\b\w+Warning: [^\n]*", text)
            if warning:
                problems.append(f"{where}: a warning: {warning.group(0)[:120]!r}")
            # a bar whose saved final state is 0% (a run with nothing left to do) is what it shows
            if re.search(r"(^|\s)0%\|", text) and (final is None or final not in text):
                problems.append(f"{where}: a progress bar at its first frame: {text.strip()[:80]!r}")
    return problems


def execute_notebook(path: Path, out_dir: Path | None = None, timeout: int = 1800, in_place: bool = False) -> nbformat.NotebookNode:
    """Run one notebook with its folder as working directory; raise on the first failing cell.

    Widget state is stored in the notebook (``store_widget_state``), so that dashboards and
    browsers render from the saved file.
    """
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(path.parent)}})
    began = time.time()
    try:
        client.execute()
        finish_progress_text(notebook)
    finally:
        notebook.metadata["r1course"] = {
            "profile": os.environ.get("R1LIB_PROFILE", "(auto)"),
            "executed": datetime.date.today().isoformat(),
            "seconds": round(time.time() - began),
        }
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, out_dir / path.name)
    if in_place:
        nbformat.write(notebook, path)
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=NOTEBOOKS / "executed")
    parser.add_argument("--in-place", action="store_true", help="write outputs into the notebooks themselves")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    print(f"profile: {os.environ.get('R1LIB_PROFILE', '(auto)')}")
    total = time.time()
    for path in paths:
        began = time.time()
        print(f"running {path.name} ...", flush=True)
        try:
            execute_notebook(path.resolve(), None if args.in_place else args.out, in_place=args.in_place)
        except Exception as error:  # noqa: BLE001 - report which notebook failed, then fail
            where = path if args.in_place else args.out / path.name
            print(f"FAILED {path.name} after {time.time() - began:.0f}s; see {where}\n{error}")
            return 1
        if args.in_place:
            problems = output_problems(nbformat.read(path, as_version=4), path.name)
            if problems:
                print("\n".join([f"FAILED {path.name}: its outputs are not fit to publish", *problems]))
                return 1
        print(f"ok      {path.name} in {time.time() - began:.0f}s", flush=True)
    print(f"all {len(paths)} notebooks ran in {time.time() - total:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
