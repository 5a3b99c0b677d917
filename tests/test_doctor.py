"""python -m r1lib.doctor: every check reports, a FAIL sets the exit status and names its fix."""

from __future__ import annotations

import json
import shutil
import sys
import time
import types
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from r1lib import doctor

ROOT = Path(__file__).resolve().parent.parent


def _requirement(requirements: list[str], package: str) -> SpecifierSet:
    """The version range ``requirements`` (pyproject's strings) give ``package``, comments stripped."""
    for requirement in requirements:
        name, _, spec = requirement.partition(package)
        if name == "" and spec[:1] in "<>=!~":
            return SpecifierSet(spec.split(";")[0].strip())
    raise AssertionError(f"{package} is not in {requirements}")


def test_tested_versions_agree_with_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert SpecifierSet(doctor.TESTED["python"]) == SpecifierSet(project["requires-python"])
    for package in ("torch", "transformers"):
        assert SpecifierSet(doctor.TESTED[package]) == _requirement(project["dependencies"], package), package
    assert SpecifierSet(doctor.TESTED["trl"]) == _requirement(extras["gpu"], "trl")
    pinned = str(_requirement(extras["test"], "trl")).removeprefix("==")
    assert SpecifierSet(doctor.TESTED["trl"]).contains(pinned), "the test extra's TRL lies outside the gpu range"


def test_a_too_old_torch_fails_with_a_fix(monkeypatch):
    real = doctor.installed_version
    monkeypatch.setattr(doctor, "installed_version", lambda p: "2.1.0" if p == "torch" else real(p))
    check = doctor.check_version("torch")
    assert check.status == doctor.FAIL
    assert "2.1.0" in check.detail and check.fix == 'pip install "torch>=2.5,<3"'
    assert doctor.check_version("transformers").status == doctor.OK


def test_a_local_torch_build_is_in_range(monkeypatch):
    monkeypatch.setattr(doctor, "installed_version", lambda p: "2.6.0+cu124")
    assert doctor.check_version("torch").status == doctor.OK


def test_a_missing_trl_only_warns(monkeypatch):
    monkeypatch.setattr(doctor, "installed_version", lambda p: None)
    assert doctor.check_version("trl").status == doctor.WARN
    assert doctor.check_version("transformers").status == doctor.FAIL


def test_a_missing_tiny_model_fails_the_run_and_prints_the_fix(monkeypatch, tmp_path, capsys):
    present, missing = tmp_path / "tiny-base", tmp_path / "tiny-student-quarter"
    present.mkdir()
    (present / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(doctor, "shipped_models", lambda: {"tiny base": present, "quarter student": missing})
    assert doctor.main(["--no-calibration"]) == 1
    lines = capsys.readouterr().out.splitlines()
    failing = [line for line in lines if line.startswith("FAIL")]
    assert len(failing) == 1 and "quarter student" in failing[0] and str(missing) in failing[0]
    assert failing[0].endswith("fix: " + doctor.TINY_MODELS_FIX)


def test_shipped_stages_are_checked_against_their_hashes(monkeypatch, tmp_path, capsys):
    from r1lib import shipped

    good = doctor.check_stages()
    assert good.status == doctor.OK and good.values["stages"] == list(shipped.SHIPPED) and "sha256 checked" in good.detail
    damaged = tmp_path / "stages"
    shutil.copytree(shipped.STAGES_DIR, damaged)
    weights = damaged / "cold_start" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"x")
    monkeypatch.setattr(shipped, "STAGES_DIR", damaged)
    assert doctor.main(["--no-calibration"]) == 1
    failing = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert len(failing) == 1 and failing[0].split()[:3] == ["FAIL", "shipped", "stages"]
    assert failing[0].endswith("cold_start: model.safetensors does not match its recorded sha256; fix: " + doctor.STAGES_FIX)


def test_warnings_leave_the_exit_status_at_zero(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "check_widgets", lambda: doctor.Check("widgets", doctor.WARN, "none", "install"))
    assert doctor.main(["--no-calibration"]) == 0
    assert "warn  widgets" in capsys.readouterr().out


def test_a_crashing_check_becomes_a_fail_line():
    def broken() -> doctor.Check:
        raise RuntimeError("boom")

    (check,) = doctor.guarded("gpu", broken)
    assert check.status == doctor.FAIL and "boom" in check.detail and check.fix


def test_json_report_has_every_check_and_is_quick(capsys):
    start = time.perf_counter()
    assert doctor.main(["--json", "--no-calibration"]) == 0
    assert time.perf_counter() - start < 3.0
    report = json.loads(capsys.readouterr().out)
    names = [check["name"] for check in report["checks"]]
    assert names == [*doctor.TESTED, "cpu", "memory", "gpu", "tiny base", "base, no reflection", "quarter student",
                     "sixteenth student", "shipped stages", "widgets", "profile"]
    assert report["ok"] is True
    assert all(set(check) == {"name", "status", "detail", "fix", "values"} for check in report["checks"])
    assert all(check["status"] in (doctor.OK, doctor.WARN) for check in report["checks"])


def test_an_unknown_profile_fails(monkeypatch):
    monkeypatch.setenv("R1LIB_PROFILE", "laptop")
    check = doctor.check_profile()
    assert check.status == doctor.FAIL and "R1LIB_PROFILE" in check.fix


def test_widgets_missing_only_warn(monkeypatch):
    monkeypatch.setattr(doctor, "installed_version", lambda p: None)
    check = doctor.check_widgets()
    assert check.status == doctor.WARN and 'pip install "ipywidgets>=8"' in check.fix


def test_calibration_gives_a_positive_estimate():
    seconds = doctor.calibrate(steps=1)
    assert seconds > 0
    # Past the time limit, the steps left are projected from the first one instead of run.
    start = time.perf_counter()
    projected = doctor.calibrate(steps=1000, time_limit=0.0)
    assert time.perf_counter() - start < 30 and projected > 10 * seconds
    check = doctor.check_course_time(measure=lambda: seconds)
    assert check.status in (doctor.OK, doctor.WARN) and check.values["course_minutes"] > 0  # WARN: a busy machine
    seconds, minutes = doctor.REFERENCE["calibration_seconds"], doctor.REFERENCE["course_minutes"]
    assert doctor.estimate_course_minutes(seconds) == pytest.approx(minutes)
    assert doctor.estimate_course_minutes(2 * seconds) == pytest.approx(2 * minutes)


@pytest.mark.parametrize(("version", "colab", "status", "fix"), [
    ("7.7.1", False, doctor.WARN, 'pip install "ipywidgets>=8"'),
    ("7.7.1", True, doctor.OK, ""),
    ("8.1.5", True, doctor.WARN, "enable_custom_widget_manager()"),
])
def test_widgets_by_version_and_place(monkeypatch, version, colab, status, fix):
    monkeypatch.setattr(doctor, "installed_version", lambda p: version if p == "ipywidgets" else "3.0.0")
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    check = doctor.check_widgets()
    assert check.status == status and fix in check.fix


@pytest.mark.parametrize(("name", "capability", "precision"), [("Tesla T4", (7, 5), "fp16"),
                                                                ("NVIDIA A100-SXM4-40GB", (8, 0), "bf16")])
def test_a_gpu_is_named_with_its_precision(monkeypatch, name, capability, precision):
    from r1lib import estimates

    info = estimates.DeviceInfo("cuda", name, 16 * 2**30, capability)
    monkeypatch.setattr(estimates, "device_info", lambda device=None: info)
    check = doctor.check_gpu()
    assert check.status == doctor.OK and name in check.detail and check.values["precision"] == precision
    assert f"{capability[0]}.{capability[1]}" in check.detail
