"""Every notebook runs top to bottom in the smoke profile; its final cell asserts what it promised."""

import importlib.util
import sys
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# The run folder each training notebook writes (under R1LIB_RUNS_DIR).
RUN_FOLDERS = {"01_tasks_and_rewards": "01_hacking", "03_r1_zero": "03_r1_zero", "04_evaluation_and_aha": "04_aha",
               "05_cold_start": "pipeline", "06_multi_stage_r1": "pipeline", "07_distillation": "07_distillation",
               "08_scaling_up": "08_scaling_up", "09_limits_and_open_questions": "09_limits"}


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass in the script looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One temporary runs folder for the notebooks of this session: 04 reads what 03 trained."""
    return tmp_path_factory.mktemp("runs")


def test_notebooks_are_built_from_their_sources():
    build = _load_script("build_notebooks")
    sources = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
    assert [s.stem for s in sources] == [n.stem for n in NOTEBOOKS]
    for source in sources:
        committed = build.nbformat.read(ROOT / "notebooks" / f"{source.stem}.ipynb", as_version=4)
        assert not build.stale_cells(committed, build.build(source)), f"{source.stem}.ipynb is stale: run `make notebooks`"


def test_notebooks_follow_the_course_conventions():
    build = _load_script("build_notebooks")
    repository = build.repository_url()
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        text = "".join("".join(c["source"]) for c in cells)
        assert build.badge(path.stem, repository) in "".join(cells[0]["source"]), path.name
        assert "".join(cells[1]["source"]) == build.INSTALL_CELL.replace("{repository}", repository), path.name
        assert "## Exercises" in text, path.name
        assert any("solution" in c.get("metadata", {}).get("tags", []) for c in cells), path.name
        first_code = next(c for c in cells[2:] if c["cell_type"] == "code")
        assert "print(describe(" in "".join(first_code["source"]), f"{path.name}: the first cell must show the profile"
        last = "".join(cells[-1]["source"])
        assert cells[-1]["cell_type"] == "code" and "assert" in last, path.name


INSTALL_HARNESS = """
import json, os, subprocess, sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")  # what Colab's runtime has imported
calls, installed = [], os.environ["FAKE_INSTALLED"] == "1"
real_run = subprocess.run


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name == "r1lib" and not installed:
            raise ImportError("r1lib is not installed yet")


def run(command, **kwargs):
    global installed
    calls.append(command[0] if command[0] == "git" else "pip")
    if command[0] == "git":
        return real_run(command, **kwargs)
    installed = True  # the pip install (offline here): from now on r1lib imports
    return subprocess.CompletedProcess(command, 0)


sys.meta_path.insert(0, NotInstalled())
subprocess.run = run
cell = open(sys.argv[1]).read()
for _ in range(2):  # a second run of the same cell, in the same kernel
    sys.modules.pop("r1lib", None)
    exec(cell, {})
print(json.dumps({"calls": calls, "cwd": os.getcwd(), "path_entries": sys.path.count(os.environ["R1_COURSE_DIR"]),
                  "profile": os.environ.get("R1LIB_PROFILE"),
                  "tiny_base": os.path.isfile("../data/tiny-base/model.safetensors")}))
"""


def test_the_colab_install_cell_is_idempotent_and_survives_a_restart(tmp_path):
    """Run the install cell twice in one kernel with Colab faked (clone from this checkout, pip intercepted),
    then twice more after a "restart" (a new interpreter): it clones and installs once, and the working
    directory and import path are right every time."""
    import subprocess
    import sys

    build = _load_script("build_notebooks")
    cell = tmp_path / "cell.py"
    cell.write_text(build.INSTALL_CELL.replace("{repository}", f"file://{ROOT}"))
    harness = tmp_path / "harness.py"
    harness.write_text(INSTALL_HARNESS)
    course = tmp_path / "content" / "r1-course"
    results = []
    for installed in ("0", "1"):  # before and after the restart
        out = subprocess.run([sys.executable, str(harness), str(cell)], cwd=tmp_path, capture_output=True, text=True,
                             env={**os.environ, "R1_COURSE_DIR": str(course), "FAKE_INSTALLED": installed,
                                  "R1LIB_PROFILE": "gpu"})  # what an earlier run of another choice left
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout.splitlines()[-1]))
    assert results[0]["calls"] == ["git", "pip"]  # first session: clone and install, once for two runs
    assert results[1]["calls"] == []  # after the restart: nothing to fetch or install
    for result in results:
        assert result["cwd"] == str(course / "notebooks") and result["path_entries"] == 1 and result["tiny_base"]
        assert result["profile"] == "cpu"  # the cell's PROFILE, whatever the runtime


# `make test` runs each test file on one worker (pytest-xdist's loadfile), so these run in order:
# each notebook reads what the ones before it trained, in the shared runs folder.
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(path, runs, monkeypatch):
    monkeypatch.setenv("R1LIB_PROFILE", "smoke")
    monkeypatch.setenv("R1LIB_RUNS_DIR", str(runs))
    runner = _load_script("run_notebooks")
    notebook = runner.execute_notebook(path, runs / "executed", timeout=900)
    printed = "".join(o.get("text", "") for o in notebook.cells[-1].get("outputs", []) if o.get("output_type") == "stream")
    assert "all checks passed" in printed
    # What the notebook trained went to the temporary runs folder, not the repository's runs/.
    if path.stem in RUN_FOLDERS:
        assert list((runs / RUN_FOLDERS[path.stem]).rglob("metrics.jsonl")), "no run under R1LIB_RUNS_DIR"


def test_committed_notebooks_carry_the_outputs_of_a_cpu_run():
    """A reader on GitHub or Colab sees the results before running: `make publish-notebooks` wrote them."""
    for path in NOTEBOOKS:
        notebook = json.loads(path.read_text())
        assert notebook["metadata"].get("r1course", {}).get("profile") == "cpu", f"{path.name}: run `make publish-notebooks`"
        printed = "".join("".join(o.get("text", "")) for o in notebook["cells"][-1].get("outputs", []))
        assert "all checks passed" in printed, path.name
        shows_widgets = any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                            for c in notebook["cells"] for o in c.get("outputs", []))
        if shows_widgets:  # the saved widgets render from the stored state, with a static copy for GitHub
            assert notebook["metadata"].get("widgets"), f"{path.name} shows widgets but stores no widget state"


def test_committed_outputs_show_no_error_warning_temporary_path_or_frozen_progress_bar():
    """What GitHub and Colab show before anything runs: `make publish-notebooks` refuses these too."""
    check = _load_script("run_notebooks").output_problems
    problems = [p for path in NOTEBOOKS for p in check(json.loads(path.read_text()), path.name)]
    assert not problems, "\n".join(problems)


def test_the_output_check_catches_what_it_names():
    check = _load_script("run_notebooks").output_problems
    clean = {"cells": [{"outputs": [{"output_type": "stream", "name": "stdout", "text": "runs/03_r1_zero/cpu\n"}]}]}
    assert check(clean) == []
    planted = {
        "/tmp/": {"output_type": "stream", "name": "stdout", "text": "teacher: /tmp/tmp.x1/04_aha\n"},
        "warning": {"output_type": "stream", "name": "stderr", "text": "/x.py:3: UserWarning: careful\n  warn()\n"},
        "first frame": {"output_type": "display_data", "data": {"text/plain": "GRPO:   0%|          | 0/100"}},
        "error": {"output_type": "error", "ename": "KeyError", "evalue": "", "traceback": []},
    }
    for what, output in planted.items():
        found = check({"cells": [{"outputs": [output]}]}, "nb")
        assert len(found) == 1 and found[0].startswith("nb cell 0"), (what, found)


def test_a_progress_bar_is_judged_by_its_saved_final_state():
    run = _load_script("run_notebooks")

    def notebook(text, value):
        state = {"box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_b", "IPY_MODEL_r"]}},
                 "l": {"model_name": "HTMLModel", "state": {"value": f"SFT:\u2007{100 * value // 4}%"}},
                 "b": {"model_name": "FloatProgressModel", "state": {"value": value, "max": 4}},
                 "r": {"model_name": "HTMLModel", "state": {"value": f"\u2007{value}/4"}}}
        output = {"output_type": "display_data", "data": {"text/plain": text, run.WIDGET_VIEW: {"model_id": "box"}}}
        return {"metadata": {"widgets": {run.WIDGET_STATE: {"state": state}}}, "cells": [{"outputs": [output]}]}

    frozen = notebook("SFT:   0%|          | 0/4", 4)  # tqdm's first frame of a bar that ended at 4/4
    assert len(run.output_problems(frozen)) == 1
    assert run.finish_progress_text(frozen) == 1
    assert frozen["cells"][0]["outputs"][0]["data"]["text/plain"] == "SFT: 100%|██████████| 4/4"
    assert run.output_problems(frozen) == []
    nothing_to_do = notebook("SFT: 0%|          | 0/4", 0)  # a run whose budget was spent before its first step
    run.finish_progress_text(nothing_to_do)
    assert run.output_problems(nothing_to_do) == []


def test_the_readme_quotes_each_notebooks_published_time(tmp_path):
    """The course table's times are those of the committed cpu runs (scripts/course_times.py), and
    the check notices a time that was edited by hand."""
    times = _load_script("course_times")
    assert times.main(["--check"]) == 0
    published = times.course_times()
    assert [t.stem for t in published] == [p.stem for p in NOTEBOOKS]
    assert all(0 <= t.solution_seconds <= t.seconds for t in published)
    readme = tmp_path / "README.md"
    first = published[0]
    readme.write_text(f"| `{first.stem}` | what | {times.format_seconds(first.course_seconds + 120)} |\n")
    assert times.readme_times(readme)[first.stem] != times.format_seconds(first.course_seconds)


def test_a_rebuild_keeps_the_outputs_and_timings_of_unchanged_cells(tmp_path):
    """make notebooks after an edit must not lose what course_times.py reads: each unchanged cell's
    outputs and its execution timing."""
    import shutil

    build = _load_script("build_notebooks")
    source = ROOT / "notebooks" / "src" / "03_r1_zero.py"
    target = tmp_path / "03_r1_zero.ipynb"
    shutil.copy(ROOT / "notebooks" / "03_r1_zero.ipynb", target)
    committed = build.nbformat.read(target, as_version=4)
    timed = [i for i, c in enumerate(committed.cells) if "execution" in c.get("metadata", {})]
    assert timed, "the committed notebook carries cell timings"
    fresh, changed = build.rebuild(source, target)
    assert changed == []
    for i in timed:
        assert fresh.cells[i].metadata["execution"] == committed.cells[i].metadata["execution"]
        assert fresh.cells[i].outputs == committed.cells[i].outputs


def test_the_doctors_reference_course_time_is_the_published_one():
    from r1lib.doctor import REFERENCE

    total = sum(t.course_seconds for t in _load_script("course_times").course_times())
    assert REFERENCE["course_minutes"] == round(total / 60, 1)
