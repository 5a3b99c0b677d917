"""How long each notebook's published cpu run took, read from the committed notebooks themselves.

    python scripts/course_times.py            # a table: every notebook, its worked solutions, the rest
    python scripts/course_times.py --check    # exit 1 when the README or docs/workshop.md disagrees

``make publish-notebooks`` records each run's wall time in the notebook's metadata (``r1course``)
and nbclient records every cell's start and end; the solutions' time is the sum over the cells
tagged ``solution``. ``make course`` skips the solutions that retrain, so its time per notebook is
the run's time less theirs. The README's course table and the instructor's guide
(``docs/workshop.md``) quote these numbers; ``--check`` (run by the tests) keeps them in step.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


@dataclass
class NotebookTime:
    """One notebook's published run: its total wall time and the part spent in worked solutions."""

    stem: str
    seconds: int
    solution_seconds: int

    @property
    def course_seconds(self) -> int:
        """What ``make course`` takes for it: the run without the worked solutions."""
        return self.seconds - self.solution_seconds


def _cell_seconds(cell: dict) -> float:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    parse = lambda stamp: datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))  # noqa: E731
    return max(0.0, (parse(end) - parse(start)).total_seconds())


def notebook_time(path: Path) -> NotebookTime | None:
    """The published cpu run's times of the notebook at ``path``; None when it carries no cpu run."""
    notebook = json.loads(path.read_text())
    meta = notebook.get("metadata", {}).get("r1course", {})
    if meta.get("profile") != "cpu" or not meta.get("seconds"):
        return None
    solutions = sum(_cell_seconds(c) for c in notebook["cells"] if "solution" in c.get("metadata", {}).get("tags", []))
    return NotebookTime(path.stem, int(meta["seconds"]), round(solutions))


def solution_times(path: Path) -> list[int]:
    """Seconds of each worked solution of the notebook at ``path``, in order (exercise 1 first)."""
    cells = json.loads(path.read_text())["cells"]
    return [round(_cell_seconds(c)) for c in cells if "solution" in c.get("metadata", {}).get("tags", [])]


def course_times(folder: Path = NOTEBOOKS) -> list[NotebookTime]:
    """Every numbered notebook's published times, in course order."""
    times = [notebook_time(p) for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))]
    return [t for t in times if t is not None]


def format_seconds(seconds: float) -> str:
    """``45 s`` under 90 seconds, else ``2.5 min``: how the README writes a time."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def readme_times(readme: Path = ROOT / "README.md") -> dict[str, str]:
    """A course table's last column, by notebook stem (rows ``| `03_r1_zero` | ... | 2.2 min |``)."""
    # An exercise row (``| `03_r1_zero` | 2 | ...``) is not a notebook's row.
    rows = re.findall(r"^\| `(\d\d_[a-z0-9_]+)` \| (?!\d \|).*\| ([^|]+) \|$", readme.read_text(), re.MULTILINE)
    return {stem: time.strip() for stem, time in rows}


def guide_solution_times(guide: Path = ROOT / "docs" / "workshop.md") -> dict[tuple[str, int], str]:
    """The guide's exercise table, by (notebook stem, exercise): rows ``| `03_r1_zero` | 2 | ... | 35 s |``."""
    rows = re.findall(r"^\| `(\d\d_[a-z0-9_]+)` \| (\d) \|.*\| ([^|]+) \|$", guide.read_text(), re.MULTILINE)
    return {(stem, int(number)): time.strip() for stem, number, time in rows}


def disagreements(readme: Path = ROOT / "README.md", guide: Path = ROOT / "docs" / "workshop.md") -> list[str]:
    """Every time that the README or the guide quotes differently from the published runs."""
    published = {t.stem: format_seconds(t.course_seconds) for t in course_times()}
    wrong = []
    for document in (readme, guide):
        for stem, quoted in readme_times(document).items():
            if published.get(stem) != quoted:
                wrong.append(f"{document.name}: {stem} says {quoted!r}, the published run {published.get(stem)!r}")
    missing = sorted(set(published) - set(readme_times(readme)))
    wrong += [f"{readme.name}: no row for {stem}" for stem in missing]
    for (stem, number), quoted in guide_solution_times(guide).items():
        seconds = solution_times(NOTEBOOKS / f"{stem}.ipynb")
        actual = format_seconds(seconds[number - 1]) if number <= len(seconds) else None
        if actual != quoted:
            wrong.append(f"{guide.name}: {stem} exercise {number} says {quoted!r}, the published run {actual!r}")
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when the README's course table disagrees")
    args = parser.parse_args(argv)
    times = course_times()
    if args.check:
        wrong = disagreements()
        print("\n".join(wrong) or "the README and the guide quote the published runs")
        return 1 if wrong else 0
    print(f"{'notebook':<32} {'make course':>12} {'solutions':>10} {'published run':>14}")
    for t in times:
        print(f"{t.stem:<32} {format_seconds(t.course_seconds):>12} {format_seconds(t.solution_seconds):>10} "
              f"{format_seconds(t.seconds):>14}")
    total = sum(t.course_seconds for t in times)
    print(f"{'all':<32} {format_seconds(total):>12} {format_seconds(sum(t.solution_seconds for t in times)):>10} "
          f"{format_seconds(sum(t.seconds for t in times)):>14}")
    print("\nworked solutions, each: " + "; ".join(
        f"{t.stem[:2]}: " + ", ".join(format_seconds(s) for s in solution_times(NOTEBOOKS / f"{t.stem}.ipynb"))
        for t in times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
