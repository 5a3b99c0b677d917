"""Every notebook runs top to bottom in the smoke profile; its final cell asserts what it promised."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebooks_are_built_from_their_sources():
    build = _load_script("build_notebooks")
    sources = sorted((ROOT / "notebooks" / "src").glob("*.py"))
    assert [s.stem for s in sources] == [n.stem for n in NOTEBOOKS]
    for source in sources:
        committed = json.loads((ROOT / "notebooks" / f"{source.stem}.ipynb").read_text())
        fresh = build.build(source)
        def text(source):
            return "".join(source) if isinstance(source, list) else source

        assert [text(c["source"]) for c in committed["cells"]] == [text(c["source"]) for c in fresh.cells], (
            f"{source.stem}.ipynb is stale: run `make notebooks`"
        )


def test_notebooks_follow_the_course_conventions():
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        text = "".join("".join(c["source"]) for c in cells)
        assert "colab-badge.svg" in "".join(cells[0]["source"]), path.name
        assert "google.colab" in "".join(cells[1]["source"]), path.name
        assert "## Exercises" in text, path.name
        assert any("solution" in c.get("metadata", {}).get("tags", []) for c in cells), path.name
        last = "".join(cells[-1]["source"])
        assert cells[-1]["cell_type"] == "code" and "assert" in last, path.name
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{path.name} has committed outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(path, tmp_path, monkeypatch):
    monkeypatch.setenv("R1LIB_PROFILE", "smoke")
    runner = _load_script("run_notebooks")
    notebook = runner.execute_notebook(path, tmp_path, timeout=900)
    printed = "".join(o.get("text", "") for o in notebook.cells[-1].get("outputs", []) if o.get("output_type") == "stream")
    assert "all checks passed" in printed
    assert os.environ["R1LIB_PROFILE"] == "smoke"
