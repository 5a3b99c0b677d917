"""The %%solution cell magic: a solution that retrains runs only when the notebook asks for it."""

import pytest

from r1lib.solutions import ENV_VAR, SKIPPED, run_solutions_default, solution


def test_solutions_run_by_default_only_on_smoke(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert run_solutions_default("smoke") is True
    assert run_solutions_default("cpu") is False and run_solutions_default("gpu") is False
    monkeypatch.setenv(ENV_VAR, "1")
    assert run_solutions_default("cpu") is True
    monkeypatch.setenv(ENV_VAR, "0")
    assert run_solutions_default("smoke") is False
    monkeypatch.setenv(ENV_VAR, "yes")
    with pytest.raises(ValueError, match="must be 1"):
        run_solutions_default("cpu")


def test_a_skipped_solution_changes_nothing_and_says_how_to_run_it(capsys):
    namespace = {"RUN_SOLUTIONS": False, "x": 1}
    assert solution("", "x = 2\nprint('trained')", namespace) is False
    assert namespace["x"] == 1
    out = capsys.readouterr().out
    assert out.strip() == SKIPPED and "RUN_SOLUTIONS = True" in out


def test_a_run_solution_shares_the_notebook_variables(capsys):
    namespace = {"RUN_SOLUTIONS": True, "x": 1}
    assert solution("", "y = x + 1\nprint('trained', y)", namespace) is True
    assert namespace["y"] == 2 and capsys.readouterr().out == "trained 2\n"
    with pytest.raises(ZeroDivisionError):  # an error in the solution is the cell's error
        solution("", "1 / 0", namespace)


def test_a_notebook_without_the_switch_is_told_where_to_set_it():
    with pytest.raises(NameError, match="RUN_SOLUTIONS"):
        solution("", "pass", {})


def test_the_magic_is_registered_in_ipython():
    from IPython.core.interactiveshell import InteractiveShell

    from r1lib.solutions import load_ipython_extension

    shell = InteractiveShell.instance()
    try:
        load_ipython_extension(shell)
        shell.user_ns["RUN_SOLUTIONS"] = True
        shell.run_cell("%%solution\nz = 41 + 1")
        assert shell.user_ns["z"] == 42
    finally:  # a live shell would make later tests in this process believe they run inside IPython
        InteractiveShell.clear_instance()
