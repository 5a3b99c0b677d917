"""``show_source`` shows a function's source once: no second copy as the cell's value."""

from __future__ import annotations

import pytest

from r1lib.widgets import show_source


def _example(x: int) -> int:
    """A function whose source the tests show."""
    return x + 1  # a marker line


MARKER = "return x + 1  # a marker line"


def test_show_source_prints_once_and_returns_none_outside_ipython(capsys):
    result = show_source(_example)
    out = capsys.readouterr().out
    assert result is None
    assert out.count(MARKER) == 1


def test_show_source_as_last_expression_of_a_cell_shows_the_source_once():
    """Run ``show_source(...)`` as a notebook cell's last expression, under IPython's display hook.

    The old version returned the text, so the display hook added the string's repr (``Out[1]: 'def
    _example...'``) after the rendered Markdown: the source appeared twice in every published cell.
    """
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    from IPython.utils.capture import capture_output

    shell = interactiveshell.InteractiveShell.instance()
    try:
        shell.user_ns.update(show_source=show_source, _example=_example)
        with capture_output() as captured:
            result = shell.run_cell("show_source(_example)", store_history=True)
        assert result.success, result.error_in_exec
        assert result.result is None  # nothing for the display hook to show as the cell's value
        shown = [output.data.get("text/markdown", "") for output in captured.outputs]
        shown.append(captured.stdout)
        assert sum(text.count(MARKER) for text in shown) == 1, shown
    finally:
        interactiveshell.InteractiveShell.clear_instance()
