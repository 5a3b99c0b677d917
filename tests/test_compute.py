"""The compute ledger: a logging window's costs and steps, counted once each.

How trainers' costs reach the ledger and the budget stops a run is tested with a trainer that
spends them, in test_distill.py.
"""

from r1lib.compute import ComputeLedger


def test_a_merged_logging_window_counts_all_its_steps():
    ledger = ComputeLedger()
    ledger.add({"step": 0, "eval/pass@1": 0.1})  # step 0's evaluation: no step
    ledger.add({"step": 3, "flops/training": 30.0, "flops/teacher": 6.0, "step_time": 0.5, "logged_steps": 3})
    assert (ledger.steps, ledger.wall_seconds, ledger.total) == (3, 1.5, 36.0)
    ledger.add({"step": 4, "flops/training": 10.0, "step_time": 0.25})  # an older record: one step
    assert (ledger.steps, ledger.wall_seconds, ledger.total) == (4, 1.75, 46.0)
