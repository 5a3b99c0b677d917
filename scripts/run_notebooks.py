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
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


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
        print(f"ok      {path.name} in {time.time() - began:.0f}s", flush=True)
    print(f"all {len(paths)} notebooks ran in {time.time() - total:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
