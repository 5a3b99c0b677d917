"""How long each notebook takes, opened on its own in a fresh clone, to reach its first new computation.

For each notebook that reads an earlier one's model (04-07, 09; 08 reads none and is timed too), this
starts a fresh kernel with an empty runs folder on the cpu profile and runs its cells in order up to
and including the last cell that fetches what it reads (a call of r1lib.course.predecessors), then
stops: what comes next is the notebook's own work. The time printed runs from the kernel's start.
Nothing must be trained before that point: the shipped stages are taken (the cell outputs say so).

    python scripts/standalone_start.py [04 06 ...]     # default: 04 05 06 07 08 09
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FETCHES = re.compile(r"\b(r1_zero|pipeline_r1_zero|pipeline_stage)\(")
LIMIT_SECONDS = 30.0


def last_fetching_cell(notebook: nbformat.NotebookNode) -> int:
    """The index of the last code cell that fetches an earlier notebook's model (the first code cell when none does)."""
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    fetching = [i for i in code if FETCHES.search(cell_source(notebook.cells[i]))]
    return fetching[-1] if fetching else code[1]  # code[0] is the Colab install cell


def cell_source(cell) -> str:
    return "".join(cell.source) if isinstance(cell.source, list) else cell.source


def time_to_first_computation(path: Path) -> tuple[float, str]:
    """Seconds from a fresh kernel's start to the end of the last fetching cell, and that cell's text output."""
    notebook = nbformat.read(path, as_version=4)
    stop = last_fetching_cell(notebook)
    with tempfile.TemporaryDirectory(prefix="r1lib-standalone-") as runs:
        os.environ.update(R1LIB_PROFILE="cpu", R1LIB_RUNS_DIR=runs)
        os.environ.pop("R1LIB_TRAIN_STAGES", None)
        client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
        began = time.time()
        with client.setup_kernel():
            for index in range(stop + 1):
                if notebook.cells[index].cell_type == "code":
                    client.execute_cell(notebook.cells[index], index)
        seconds = time.time() - began
    printed = "".join(o.get("text", "") for o in notebook.cells[stop].get("outputs", []) if o.get("output_type") == "stream")
    return seconds, printed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", default=["04", "05", "06", "07", "08", "09"])
    args = parser.parse_args()
    slow = []
    for number in args.notebooks:
        path = next(NOTEBOOKS.glob(f"{number}_*.ipynb"))
        seconds, printed = time_to_first_computation(path)
        trained = "trained just now" in printed
        print(f"{path.stem}: first new computation after {seconds:.1f} s" + ("  (TRAINED A PREDECESSOR)" if trained else ""))
        for line in printed.strip().splitlines():
            print("    " + line)
        if seconds > LIMIT_SECONDS or trained:
            slow.append(path.stem)
    print(f"over {LIMIT_SECONDS:.0f} s or training: {', '.join(slow)}" if slow else f"every notebook within {LIMIT_SECONDS:.0f} s")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
