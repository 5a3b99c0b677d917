"""The course as a reader meets it: JupyterLab in a real headless Chromium.

Run with ``make test-browser`` (not part of ``make test``). It needs Chromium from the
distribution's packages (``apt-get install chromium``) and the ``playwright`` Python package (the
``browser`` extra), which drives that Chromium: playwright's own browser download is not used.

The test starts JupyterLab on 127.0.0.1, runs notebook 00 and a short training notebook in the
browser, and checks that the live dashboard renders as a widget and redraws during training, that
the completion browser follows its slider, and that the browser console shows no widget errors.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.browser

TRAINING_CELLS = [
    """from r1lib.experiment import build_experiment
from r1lib.grpo import GRPOTrainer
from r1lib.profiles import get_profile, with_overrides
from r1lib.widgets import CompletionBrowser, LiveCurves

profile = with_overrides(get_profile("smoke"), max_steps=12, eval_steps=100, save_steps=100, log_completions=8,
                         per_device_train_batch_size=16, num_generations=4, max_completion_length=24)
exp = build_experiment(profile)""",
    """dashboard = LiveCurves(keys=("reward", "completions/mean_length"), every=1)
trainer = GRPOTrainer(exp.model, exp.tokenizer, exp.task, exp.reward_funcs, exp.train_examples, profile.grpo,
                      "browser-run", callbacks=[dashboard], progress=False)
history = trainer.train()""",
    """browser = CompletionBrowser("browser-run/completions.jsonl")
widget = browser.show()
print("steps logged:", browser.steps)""",
]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium found: install it from your distribution's packages (Debian/Ubuntu: "
                "`apt-get install chromium`) to run the browser test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a folder with notebook 00 and a training notebook."""
    folder = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / "00_setup_and_tour.ipynb", folder)
    training = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in TRAINING_CELLS])
    training.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(training, folder / "training.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "R1LIB_PROFILE": "smoke", "R1LIB_RUNS_DIR": str(folder / "runs")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--expose-app-in-browser",
         "--LabApp.news_url=", "--ServerApp.open_browser=False",
         *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI and containers run as root
        env=env, stdout=subprocess.DEVNULL, stderr=open(folder / "lab.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as response:
                json.load(response)
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited: {(folder / 'lab.log').read_text()[-2000:]}")
            time.sleep(1)
    else:
        server.terminate()
        pytest.fail("JupyterLab did not start within 90 s")
    yield url, token, folder
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the `browser` extra)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


PANEL = """(name) => window.jupyterapp && [...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === name)"""


def open_notebook(browser, lab, name: str):
    url, token, _ = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    # A workspace of its own, reset: otherwise JupyterLab reopens the previous test's notebook beside this one.
    workspace = name.split(".")[0]
    page.goto(f"{url}/lab/workspaces/{workspace}/tree/{name}?reset&token={token}", wait_until="domcontentloaded")
    # The notebook's own kernel must be idle before "run all", or the first cells queue on a kernel still starting.
    page.wait_for_function(f"() => {{ const p = ({PANEL})('{name}'); const s = p && p.sessionContext.session; "
                           "return s && s.kernel && s.kernel.status === 'idle'; }", timeout=90_000, polling=500)
    return page, console


def run_all(page, name: str) -> None:
    # Not awaited: the command's promise settles only when every cell has run.
    page.evaluate(f"() => {{ const p = ({PANEL})('{name}'); window.jupyterapp.shell.activateById(p.id); "
                  "window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


# JupyterLab renders only the cells in view, so progress and outputs are read from the notebook's model.
NOTEBOOK_STATE = """(name) => {
    const panel = (PANEL)(name);
    const cells = Array.from(panel.content.model.cells).filter(c => c.type === 'code');
    const outputs = cells.map(c => c.outputs.toJSON());
    const error = outputs.flat().find(o => o.output_type === 'error');
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    return {done: cells.every(c => c.executionCount !== null) && kernel && kernel.status === 'idle',
            error: error ? error.ename + ': ' + error.evalue : null,
            text: outputs.flat().map(o => JSON.stringify(o.text || o.data || '')).join('\\n')};
}""".replace("PANEL", PANEL)


def wait_until_done(page, name: str, timeout_s: float) -> dict:
    """Until every code cell has run (or one failed); returns the notebook's state."""
    page.wait_for_function(f"() => {{ const s = ({NOTEBOOK_STATE})('{name}'); return s.done || s.error; }}",
                           timeout=timeout_s * 1000, polling=500)
    state = page.evaluate(f"() => ({NOTEBOOK_STATE})('{name}')")
    assert state["error"] is None, state["error"]
    return state


def widget_errors(console: list[str], page) -> list[str]:
    bad = [line for line in console if line.startswith(("error", "pageerror")) and "widget" in line.lower()]
    if "Error displaying widget" in page.content():
        bad.append("Error displaying widget (in the page)")
    return bad


def test_notebook_00_runs_in_the_browser(browser, lab):
    page, console = open_notebook(browser, lab, "00_setup_and_tour.ipynb")
    run_all(page, "00_setup_and_tour.ipynb")
    text = wait_until_done(page, "00_setup_and_tour.ipynb", 300)["text"]
    assert "all checks passed" in text and "profile 'smoke'" in text
    assert not widget_errors(console, page), widget_errors(console, page)
    page.close()


def test_dashboard_redraws_live_and_the_completion_browser_follows_its_slider(browser, lab):
    page, console = open_notebook(browser, lab, "training.ipynb")
    run_all(page, "training.ipynb")
    steps_seen: set[str] = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for status in page.query_selector_all(".jp-OutputArea .widget-html-content b"):
            steps_seen.add(status.inner_text())
        if page.query_selector(".widget-slider") is not None:
            break
        error = page.evaluate(f"() => ({NOTEBOOK_STATE})('training.ipynb')")["error"]
        assert error is None, error
        time.sleep(0.3)
    wait_until_done(page, "training.ipynb", 120)
    # The dashboard is a live widget (not its static copy), and it showed several steps while training ran.
    assert page.query_selector(".jp-OutputArea .widget-vbox .widget-output img") is not None
    assert len({s for s in steps_seen if s.startswith("step ")}) >= 3, steps_seen

    view = page.query_selector_all(".widget-vbox .widget-html-content")[-1]
    readout = page.query_selector(".widget-slider .widget-readout")
    before_step, before_view = readout.inner_text(), view.inner_html()
    page.focus(".widget-slider .noUi-handle")
    page.keyboard.press("Home")  # the first logged step
    page.wait_for_function("([el, old]) => el.textContent !== old", arg=[readout, before_step], timeout=10_000)
    page.wait_for_function("([el, old]) => el.innerHTML !== old", arg=[view, before_view], timeout=10_000)
    assert readout.inner_text() != before_step and "reference answer" in view.inner_text()
    assert not widget_errors(console, page), widget_errors(console, page)
    page.close()
