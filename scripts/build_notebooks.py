"""Build notebooks/*.ipynb from their sources in notebooks/src/*.py (percent format).

Cell markers: ``# %%`` code, ``# %% [markdown]`` markdown (each line starts with ``# ``), and
``# %% [solution]`` a code cell whose source is collapsed in Jupyter/Colab.

The builder adds what every notebook shares, from one template each: the "Open in Colab" badge
(built from the repository URL in ``pyproject.toml``) at the top of the first cell, and the Colab
install cell after it. Sources contain neither.

    python scripts/build_notebooks.py            # rebuild, keeping the outputs of unchanged cells
    python scripts/build_notebooks.py --check    # exit 1 when a committed notebook is stale

Run ``make notebooks`` after editing a source; a test checks that sources and notebooks agree.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SRC, OUT = ROOT / "notebooks" / "src", ROOT / "notebooks"
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def repository_url() -> str:
    """The one place the course's repository URL is set: ``[project.urls] Repository`` in pyproject.toml."""
    match = re.search(r'^Repository\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    if match is None:
        raise ValueError('pyproject.toml needs [project.urls] Repository = "https://github.com/<owner>/<name>"')
    return match.group(1).rstrip("/")


def badge(stem: str, repository: str) -> str:
    """The Colab badge of notebook ``stem``, opening it from the repository's main branch on GitHub."""
    match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+)", repository)
    if match is None:
        raise ValueError(f"the repository URL must be https://github.com/<owner>/<name>, got {repository!r}")
    link = f"https://colab.research.google.com/github/{match.group(1)}/blob/main/notebooks/{stem}.ipynb"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({link})"


INSTALL_CELL = '''\
# The profile. "cpu": the tiny world, which the text and its numbers describe; minutes, on any runtime
# (a GPU one too). "gpu": Qwen2.5 on GSM8K instead, on a GPU runtime; hours, and other numbers.
# get_profile() reads it when the next cell runs: after a change, run the notebook again (no restart).
PROFILE = "cpu"

# Colab only: fetch the course and install what Colab lacks, and apply PROFILE. Safe to run again, also
# after a runtime restart. Anywhere else it does nothing: $R1LIB_PROFILE decides there (make course: cpu),
# else gpu on a machine with a GPU and cpu without.
import os, subprocess, sys
if "google.colab" in sys.modules:
    os.environ["R1LIB_PROFILE"] = PROFILE
    COURSE = os.environ.get("R1_COURSE_DIR", "/content/r1-course")
    if not os.path.isdir(os.path.join(COURSE, "r1lib")):
        subprocess.run(["git", "clone", "--depth", "1", "{repository}", COURSE], check=True)
    try:
        import r1lib  # noqa: F401
    except ImportError:  # Colab has torch, transformers and widgets: only r1lib and the gpu extras are added
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", COURSE + "[gpu]"], check=True)
    if COURSE not in sys.path:
        sys.path.insert(0, COURSE)  # an editable install is only seen by a new interpreter otherwise
    os.chdir(os.path.join(COURSE, "notebooks"))'''


PROFILE_NOTE = (
    "**Profile.** The text, its numbers and the saved outputs come from the `cpu` profile: the tiny world, "
    "which runs in minutes on a laptop or on any Colab runtime. In Colab the next cell sets it "
    "(`PROFILE = \"cpu\"`), on a GPU runtime too; set `PROFILE = \"gpu\"` there to train Qwen2.5 on GSM8K instead."
)


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


def build(source: Path, repository: str | None = None) -> nbformat.NotebookNode:
    """The notebook of ``source``, without outputs: badge and install cell added from the templates."""
    repository = repository or repository_url()
    cells = parse_cells(source.read_text())
    if not cells or cells[0].cell_type != "markdown":
        raise ValueError(f"{source.name} must start with a markdown cell (its title)")
    cells[0].source = badge(source.stem, repository) + "\n\n" + cells[0].source + "\n\n" + PROFILE_NOTE
    cells.insert(1, nbformat.v4.new_code_cell(INSTALL_CELL.replace("{repository}", repository)))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = cells
    notebook.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}, "colab": {"provenance": []}}
    for i, cell in enumerate(notebook.cells):
        cell["id"] = f"{source.stem[:2]}-{i:03d}"  # stable ids keep diffs small
    return notebook


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def stale_cells(committed: nbformat.NotebookNode, fresh: nbformat.NotebookNode) -> list[int]:
    """Indices of cells whose type or source differ (a different cell count makes every cell stale)."""
    if len(committed.cells) != len(fresh.cells):
        return list(range(len(fresh.cells)))
    return [i for i, (a, b) in enumerate(zip(committed.cells, fresh.cells))
            if a.cell_type != b.cell_type or _text(a.source) != _text(b.source)]


def rebuild(source: Path, target: Path) -> tuple[nbformat.NotebookNode, list[int]]:
    """The fresh notebook with the outputs of the committed one carried over where a cell did not
    change; returns it and the indices of the changed cells (whose outputs are now missing)."""
    fresh = build(source)
    if not target.exists():
        return fresh, list(range(len(fresh.cells)))
    committed = nbformat.read(target, as_version=4)
    changed = stale_cells(committed, fresh)
    if len(committed.cells) == len(fresh.cells):
        for i, (old, new) in enumerate(zip(committed.cells, fresh.cells)):
            if i not in changed and new.cell_type == "code":
                new.outputs, new.execution_count = old.get("outputs", []), old.get("execution_count")
                if "execution" in old.get("metadata", {}):  # the cell's timing, which scripts/course_times.py reads
                    new.metadata["execution"] = old.metadata["execution"]
        if not changed:  # the committed run still describes this notebook: keep its widget state and provenance
            fresh.metadata.update({k: committed.metadata[k] for k in ("widgets", "r1course") if k in committed.metadata})
    return fresh, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report stale notebooks")
    args = parser.parse_args(argv)
    stale = []
    for source in sorted(SRC.glob("[0-9][0-9]_*.py")):
        target = OUT / f"{source.stem}.ipynb"
        notebook, changed = rebuild(source, target)
        if args.check:
            if changed:
                stale.append(f"{target.relative_to(ROOT)} (cells {changed[:8]})")
            continue
        nbformat.write(notebook, target)
        note = f", {len(changed)} changed cells without outputs: run `make publish-notebooks`" if changed else ""
        print(f"wrote {target.relative_to(ROOT)}{note}")
    if stale:
        print("stale notebooks: run `make notebooks`\n  " + "\n  ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
