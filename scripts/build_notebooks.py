"""Build notebooks/*.ipynb from their sources in notebooks/src/*.py (percent format).

Cell markers: ``# %%`` code, ``# %% [markdown]`` markdown (each line starts with ``# ``), and
``# %% [solution]`` a code cell whose source is collapsed in Jupyter/Colab.
Run ``make notebooks`` after editing a source; a test checks the two are in sync.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SRC, OUT = ROOT / "notebooks" / "src", ROOT / "notebooks"
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def parse_cells(text: str) -> list[nbformat.NotebookNode]:
    cells, kind, lines = [], None, []

    def flush() -> None:
        source = "\n".join(lines).strip("\n")
        if kind is None or not source:
            return
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in source.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            cell = nbformat.v4.new_code_cell(source)
            if kind == "solution":
                cell.metadata = {"jupyter": {"source_hidden": True}, "cellView": "form", "tags": ["solution"]}
            cells.append(cell)

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            tag = line[4:].strip()
            kind = {"[markdown]": "markdown", "[solution]": "solution"}.get(tag, "code")
            lines = []
        else:
            lines.append(line)
    flush()
    return cells


def build(source: Path) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = parse_cells(source.read_text())
    notebook.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}, "colab": {"provenance": []}}
    for i, cell in enumerate(notebook.cells):
        cell["id"] = f"{source.stem[:2]}-{i:03d}"  # stable ids keep diffs small
    return notebook


def main() -> int:
    for source in sorted(SRC.glob("*.py")):
        target = OUT / f"{source.stem}.ipynb"
        nbformat.write(build(source), target)
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
