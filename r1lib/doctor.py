"""Check this machine before the course: ``python -m r1lib.doctor`` (or ``make doctor``).

One line per check, each ``ok``, ``warn`` or ``FAIL``; a FAIL line ends with the command that fixes
it, and any FAIL makes the exit status non-zero (a warn does not). The checks: Python, torch,
transformers and TRL against the tested versions; CPU cores and free memory; the GPU and the
precision it gets; the shipped tiny models and trained stages (sha256 checked); whether
ipywidgets can draw the dashboards; which profile runs; and, from a ~10-second calibration run,
how long ``make course`` takes here.

``--no-calibration`` skips the timing run, ``--json`` prints the report for a program.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet  # a dependency of transformers, so always present

OK, WARN, FAIL = "ok", "warn", "FAIL"

# The versions the course is tested with: pyproject.toml's ranges (tests/test_doctor.py keeps them equal).
TESTED = {"python": ">=3.10", "torch": ">=2.5,<3", "transformers": ">=5.24,<6", "trl": ">=1.16,<1.17"}
# Only the gpu profile and r1lib.scale import TRL: without it the CPU course still runs.
OPTIONAL = {"trl": 'pip install -e ".[gpu]"'}

# The calibration run timed on the reference machine; `make course` scales with it.
# calibration_seconds: the median of 3 runs with 2 threads on an idle machine (torch 2.13 CPU build).
REFERENCE = {"machine": "2-core CPU (no GPU)", "calibration_seconds": 11.2, "course_minutes": 16.9}
CALIBRATION_STEPS = 24  # GRPO-like steps (sample, then train): about 10 s on the reference machine
# Two torch threads sharing their cores with another busy program ran the calibration 28 times slower
# (measured): past this many seconds, the remaining steps are projected from the ones done.
CALIBRATION_TIME_LIMIT = 60.0

# A process with torch, transformers and the tiny base peaks at 0.8 GiB (the calibration, measured), a
# notebook kernel a little more; below this the course may swap or be killed.
MIN_FREE_MEMORY_GIB = 2.0
TINY_MODELS_FIX = "run `make tiny-models` (about an hour on 2 cores) or reinstall r1lib"


@dataclass
class Check:
    """One line of the report: what was checked, how it went, and how to fix it when it did not."""

    name: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""
    values: dict[str, Any] = field(default_factory=dict)  # the measured facts, for --json

    def line(self, width: int = 18) -> str:
        """``ok    torch             2.6.0 (tested: >=2.5,<3)``, with ``; fix: ...`` when there is one."""
        text = f"{self.status:<5} {self.name:<{width}} {self.detail}"
        return f"{text}; fix: {self.fix}" if self.fix else text


# --- versions ---------------------------------------------------------------------------------------------------

def installed_version(package: str) -> str | None:
    """The installed version of ``package`` (``"python"``: the interpreter's), or None when it is missing."""
    if package == "python":
        return platform.python_version()
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_version(package: str) -> Check:
    """``package``'s installed version against :data:`TESTED`."""
    tested = TESTED[package]
    version = installed_version(package)
    values = {"installed": version, "tested": tested}
    failing = WARN if package in OPTIONAL else FAIL
    if package == "python":
        fix = f"use Python {tested.lstrip('>=')} or newer: `rm -rf .venv && make install PYTHON=python3.11`"
    else:
        fix = OPTIONAL.get(package) or f'pip install "{package}{tested}"'
    if version is None:
        why = " (only the gpu profile and r1lib.scale need it)" if package in OPTIONAL else ""
        return Check(package, failing, f"not installed{why}", fix, values)
    # prereleases: a nightly torch inside the range is still a torch in the range
    if SpecifierSet(tested).contains(version, prereleases=True):
        return Check(package, OK, f"{version} (tested: {tested})", values=values)
    return Check(package, failing, f"{version} is outside the tested {tested}", fix, values)


# --- the machine ------------------------------------------------------------------------------------------------

def usable_cores() -> int:
    """CPU cores this process may run on (a container's or taskset's limit, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def free_memory_bytes() -> int | None:
    """Memory available to new processes, or None when this platform does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def check_cpu() -> Check:
    """Cores: the course's timings were measured on 2."""
    cores = usable_cores()
    values = {"cores": cores, "reference": REFERENCE["machine"]}
    if cores < 2:
        return Check("cpu", WARN, f"{cores} core: the course runs, about twice as slowly as on 2",
                     "give the machine (or container) 2 cores or more", values)
    return Check("cpu", OK, f"{cores} cores", values=values)


def check_memory() -> Check:
    """Free memory against what a notebook kernel needs."""
    free = free_memory_bytes()
    if free is None:
        return Check("memory", WARN, "free memory unknown on this platform", values={"free_gib": None})
    gib = free / 2**30
    values = {"free_gib": round(gib, 1)}
    if gib < MIN_FREE_MEMORY_GIB:
        return Check("memory", WARN, f"{gib:.1f} GiB free; the course wants {MIN_FREE_MEMORY_GIB:.0f} GiB",
                     "close other programs (or give the container more memory)", values)
    return Check("memory", OK, f"{gib:.1f} GiB free", values=values)


def check_gpu() -> Check:
    """The accelerator and the precision a run gets on it (r1lib.estimates decides both)."""
    from .estimates import device_info, mixed_precision
    from .profiles import gpu_precision

    info = device_info()
    if info.kind != "cuda":
        where = "an Apple GPU, which the course does not use" if info.kind == "mps" else "no CUDA GPU"
        return Check("gpu", OK, f"{where}: the cpu profile (the tiny world) will be used",
                     values={"kind": info.kind})
    precision, dtype = mixed_precision(info), gpu_precision(info)[0]
    major, minor = info.compute_capability
    memory = f", {info.total_memory / 2**30:.0f} GiB" if info.total_memory else ""
    note = "" if info.real_bf16 else " with a gradient scaler (bf16 needs compute capability 8.0)"
    return Check("gpu", OK, f"{info.name} (compute capability {major}.{minor}{memory}): {precision}{note}",
                 values={"kind": info.kind, "name": info.name, "compute_capability": f"{major}.{minor}",
                         "precision": precision, "dtype": dtype})


# --- the course's files and views -------------------------------------------------------------------------------

def shipped_models() -> dict[str, Path]:
    """The models the notebooks load from disk, by what they are; a new shipped model is one more entry."""
    from .profiles import DATA_DIR, TINY_BASE

    return {"tiny base": TINY_BASE,
            "base, no reflection": DATA_DIR / "tiny-base-no-reflection",
            "quarter student": DATA_DIR / "tiny-student-quarter",
            "sixteenth student": DATA_DIR / "tiny-student-sixteenth"}


def check_models() -> list[Check]:
    """One check per shipped model: its weights are on disk."""
    checks = []
    for name, directory in shipped_models().items():
        weights = directory / "model.safetensors"
        if weights.is_file():
            checks.append(Check(name, OK, str(directory), values={"path": str(directory)}))
        else:
            checks.append(Check(name, FAIL, f"no {weights.name} in {directory}", TINY_MODELS_FIX,
                                {"path": str(directory)}))
    return checks


STAGES_FIX = "run `make stages` (about 3 minutes on 2 cores) or reinstall r1lib"


def check_stages() -> Check:
    """The trained stages later notebooks read (r1lib.shipped): present, and every file matching its
    recorded sha256. Without them a notebook opened on its own trains its predecessors first."""
    from .shipped import SHIPPED, STAGES_DIR, problems

    wrong = [problem for name in SHIPPED for problem in problems(name)]
    if wrong:
        return Check("shipped stages", FAIL, "; ".join(wrong), STAGES_FIX, {"path": str(STAGES_DIR)})
    return Check("shipped stages", OK, f"{', '.join(SHIPPED)} in {STAGES_DIR} (sha256 checked)",
                 values={"path": str(STAGES_DIR), "stages": list(SHIPPED)})


def check_widgets() -> Check:
    """Whether the live dashboards and progress bars (ipywidgets 8) can draw."""
    version = installed_version("ipywidgets")
    frontends = {name: installed_version(name) for name in ("jupyterlab_widgets", "widgetsnbextension")}
    values = {"ipywidgets": version, **frontends}
    fix = 'pip install "ipywidgets>=8", then restart Jupyter'
    if version is None:
        return Check("widgets", WARN, "ipywidgets not installed: progress bars fall back to text, no dashboards",
                     fix, values)
    major = int(version.split(".")[0])
    if "google.colab" in sys.modules:
        # Colab's own widget manager draws ipywidgets 7 (what Colab ships); ipywidgets 8 needs its custom one.
        if major < 8:
            return Check("widgets", OK, f"ipywidgets {version} (Colab's widget manager)", values=values)
        return Check("widgets", WARN, f"ipywidgets {version} in Colab: drawn only by Colab's custom widget manager",
                     "run `from google.colab import output; output.enable_custom_widget_manager()`", values)
    if major < 8:
        return Check("widgets", WARN, f"ipywidgets {version}: the course is tested with ipywidgets 8", fix, values)
    present = ", ".join(f"{name} {v}" for name, v in frontends.items() if v)
    if not present:
        # Jupyter may run from another environment that has the extension; Python cannot see that one.
        return Check("widgets", WARN, f"ipywidgets {version}, but no Jupyter widget extension in this environment",
                     'pip install "ipywidgets>=8" into the environment Jupyter runs from, then restart it', values)
    return Check("widgets", OK, f"ipywidgets {version} ({present})", values=values)


# --- the profile and the time of `make course` ------------------------------------------------------------------

def check_profile() -> Check:
    """The profile a notebook gets, and where the choice came from."""
    import torch

    from .profiles import ENV_VAR, PROFILE_NAMES, get_profile

    chosen = os.environ.get(ENV_VAR)
    source = f"from {ENV_VAR}" if chosen else f"the default {'with' if torch.cuda.is_available() else 'without'} CUDA"
    try:
        profile = get_profile()
    except ValueError:
        return Check("profile", FAIL, f"{ENV_VAR}={chosen!r} is not a profile",
                     f"set {ENV_VAR} to one of {', '.join(PROFILE_NAMES)}, or unset it", {"profile": chosen})
    except FileNotFoundError:
        return Check("profile", FAIL, f"{chosen or 'cpu'!r} ({source}) needs the tiny base, which is missing",
                     TINY_MODELS_FIX, {"profile": chosen or "cpu"})
    if profile.model.device.startswith("cuda") and not torch.cuda.is_available():
        return Check("profile", FAIL, f"{profile.name!r} ({source}) needs a CUDA GPU, and there is none",
                     f"unset {ENV_VAR} or set it to cpu", {"profile": profile.name})
    return Check("profile", OK, f"{profile.name!r} ({source}); `make course` runs 'cpu'",
                 values={"profile": profile.name})


def calibrate(steps: int = CALIBRATION_STEPS, time_limit: float = CALIBRATION_TIME_LIMIT) -> float:
    """Seconds this machine takes for ``steps`` GRPO-like steps of the cpu profile on the tiny base:
    sample 8 completions of 64 tokens for each of 8 prompts (r1lib.rollout, as the course does),
    then a forward and backward pass and an AdamW step on a fixed batch of 64 sequences of 96 tokens.
    Seeded and of fixed length, so that every machine does the same work; loading is not timed. Past
    ``time_limit`` seconds it stops and returns the time the ``steps`` steps would take at that pace."""
    import torch
    from transformers.utils import logging as transformers_logging

    from .models import ModelSpec, load_model_and_tokenizer
    from .profiles import TINY_BASE
    from .rollout import render_prompts, rollout

    bar_was_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # a "Loading weights" bar would break the report's lines
    try:
        model, tokenizer = load_model_and_tokenizer(ModelSpec(str(TINY_BASE)))
    finally:
        if bar_was_on:
            transformers_logging.enable_progress_bar()
    prompts = render_prompts(tokenizer, [[{"role": "user", "content": f"{i} + {3 * i + 1} * 2 = ?"}]
                                         for i in range(8)])
    vocab = model.config.vocab_size
    batch = torch.randint(5, vocab, (64, 96), generator=torch.Generator().manual_seed(0))  # no pad, no eos
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model(batch[:1, :8])  # the first call's one-time setup is not the machine's speed
    start = time.perf_counter()
    for step in range(steps):
        # A stop id outside the vocabulary is never sampled: every completion has all 64 tokens.
        rollout(model, tokenizer, prompts, num_generations=8, max_new_tokens=64,
                generator=torch.Generator().manual_seed(step), stop_token_ids=[vocab])
        model.train()
        model(batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.eval()
        elapsed = time.perf_counter() - start
        if elapsed > time_limit:
            return elapsed * steps / (step + 1)
    return time.perf_counter() - start


def estimate_course_minutes(calibration_seconds: float) -> float:
    """``make course``'s minutes here: the reference machine's, scaled by the calibration times."""
    return REFERENCE["course_minutes"] * calibration_seconds / REFERENCE["calibration_seconds"]


def check_course_time(measure: Callable[[], float] = calibrate) -> Check:
    """How long ``make course`` (the cpu profile, always on the CPU) should take on this machine."""
    from .profiles import TINY_BASE

    if not (TINY_BASE / "model.safetensors").is_file():
        return Check("course time", WARN, "not measured: the tiny base is missing", TINY_MODELS_FIX)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    seconds = measure()
    minutes = estimate_course_minutes(seconds)
    detail = (f"`make course` about {minutes:.0f} min: calibration {seconds:.1f} s here, "
              f"{REFERENCE['calibration_seconds']:.1f} s on a {REFERENCE['machine']} where it takes "
              f"{REFERENCE['course_minutes']:.0f} min")
    values = {"calibration_seconds": round(seconds, 2), "course_minutes": round(minutes, 1), "load": round(load, 2),
              "reference": REFERENCE}
    if load >= usable_cores() / 2:
        # Other programs on the same cores slow small-matrix torch by several times, not by their share.
        return Check("course time", WARN, f"{detail}; measured while busy (load {load:.1f}): too high",
                     "rerun `make doctor` when the machine is idle", values)
    return Check("course time", OK, detail, values=values)


# --- the report -------------------------------------------------------------------------------------------------

def guarded(name: str, check: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run ``check``; an exception becomes a FAIL line instead of ending the report early."""
    try:
        result = check()
    except ImportError as error:  # torch or transformers missing: their version lines say which
        return [Check(name, FAIL, f"cannot import: {error}", 'install r1lib and its dependencies: `make install`')]
    except Exception as error:  # noqa: BLE001 - a setup check must report every other line too
        return [Check(name, FAIL, f"{type(error).__name__}: {error}",
                      "fix the FAIL lines above first; if none, report this line as an r1lib bug")]
    return result if isinstance(result, list) else [result]


def run_checks(calibrate: bool = True) -> list[Check]:
    """Every check, in report order; ``calibrate=False`` leaves out the ~10-second timing run."""
    steps: list[tuple[str, Callable[[], Check | list[Check]]]] = [
        *((package, lambda package=package: check_version(package)) for package in TESTED),
        ("cpu", check_cpu), ("memory", check_memory), ("gpu", check_gpu),
        ("tiny models", check_models), ("shipped stages", check_stages), ("widgets", check_widgets),
        ("profile", check_profile),
    ]
    if calibrate:
        steps.append(("course time", check_course_time))
    return [check for name, run in steps for check in guarded(name, run)]


def report(checks: list[Check]) -> str:
    """The readable report: a line per check, then what to do."""
    width = max(len(check.name) for check in checks) + 1
    lines = ["r1lib doctor: is this machine ready for the course?", ""]
    lines += [check.line(width) for check in checks]
    failed = sum(check.status == FAIL for check in checks)
    warned = sum(check.status == WARN for check in checks)
    lines.append("")
    if failed:
        lines.append(f"{failed} FAIL, {warned} warn: apply each FAIL line's fix, then run `make doctor` again.")
    else:
        lines.append(f"Ready{f' ({warned} warn: worth a look, not required)' if warned else ''}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the report; the exit status is 1 when a check FAILs, else 0."""
    parser = argparse.ArgumentParser(prog="python -m r1lib.doctor", description=__doc__.split("\n")[0])
    parser.add_argument("--no-calibration", action="store_true", help="skip the ~10-second timing run")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    checks = run_checks(calibrate=not args.no_calibration)
    failed = any(check.status == FAIL for check in checks)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(check) for check in checks]}, indent=2))
    else:
        print(report(checks))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
