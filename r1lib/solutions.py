"""Worked solutions that retrain: run them when the reader asks, skip them otherwise.

A notebook's solution cells that train for a while start with the cell magic ``%%solution``. The
cell runs when the notebook's ``RUN_SOLUTIONS`` is true, and otherwise prints one line saying how
to run it, so that *Run all* does not retrain for minutes inside a solution nobody opened. The
committed notebooks are published with the solutions run (``make publish-notebooks`` sets
``R1LIB_RUN_SOLUTIONS=1``), so their outputs are there to read either way.

    %load_ext r1lib.solutions
    RUN_SOLUTIONS = run_solutions_default(profile)

    %%solution
    ...  # runs only when RUN_SOLUTIONS is true
"""

from __future__ import annotations

import os
from typing import Any

ENV_VAR = "R1LIB_RUN_SOLUTIONS"
SKIPPED = ("Solution not run: it trains for a while. Set RUN_SOLUTIONS = True in the first code cell (or "
           f"{ENV_VAR}=1 before Jupyter starts) and run this cell again; the published notebook shows its output.")


def run_solutions_default(profile: Any) -> bool:
    """Whether solutions that retrain run: ``$R1LIB_RUN_SOLUTIONS`` (``1``/``0``) when set, else only
    on the ``smoke`` profile, where they take seconds and the tests check that they still run."""
    value = os.environ.get(ENV_VAR)
    if value is None or value == "":
        return getattr(profile, "name", profile) == "smoke"
    if value not in ("0", "1"):
        raise ValueError(f"{ENV_VAR} must be 1 (run the solutions) or 0 (skip them), got {value!r}")
    return value == "1"


def solution(line: str, cell: str, namespace: dict[str, Any]) -> bool:
    """Run ``cell`` in ``namespace`` when ``namespace["RUN_SOLUTIONS"]`` is true; else print why not.
    Returns whether it ran. The cell shares the notebook's variables, as any cell does."""
    if "RUN_SOLUTIONS" not in namespace:
        raise NameError("%%solution needs RUN_SOLUTIONS in the notebook: set it in the first code cell, e.g. "
                        "RUN_SOLUTIONS = run_solutions_default(profile)")
    if not namespace["RUN_SOLUTIONS"]:
        print(SKIPPED)
        return False
    exec(compile(cell, "<solution>", "exec"), namespace)  # the notebook's own code, as if typed in a cell
    return True


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext r1lib.solutions``: registers the ``%%solution`` cell magic."""

    def solution_magic(line: str, cell: str) -> None:
        solution(line, cell, ipython.user_ns)

    ipython.register_magic_function(solution_magic, magic_kind="cell", magic_name="solution")
