"""The shipped stages (r1lib.shipped) and how a notebook finds what it reads (r1lib.course.predecessors):
its earlier run, else the shipped stage, else training; hashes, fingerprints and the plan it prints."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1lib import shipped
from r1lib.checkpoint import checkpoint_name, save_checkpoint
from r1lib.configs import GRPOConfig
from r1lib.course import predecessors
from r1lib.course.predecessors import Predecessor, gpu_training_first, pipeline_stage, plan, r1_zero
from r1lib.models import ModelSpec, load_model_and_tokenizer
from r1lib.pipeline import Pipeline, pipeline_config
from r1lib.profiles import TINY_BASE, get_profile
from r1lib.shipped import SHIPPED, ShippedStageError, find, fingerprint, problems, record_stage

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    """An empty runs folder: a fresh clone."""
    monkeypatch.setenv("R1LIB_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture()
def no_training(monkeypatch):
    """Any GRPO training fails the test: the shipped stage must be taken as it is."""
    class Refuses:
        def __init__(self, *args, **kwargs):
            raise AssertionError("trained although a finished run or a shipped stage was there")

    monkeypatch.setattr(predecessors, "GRPOTrainer", Refuses)
    from r1lib.pipeline import stages

    for trainer in ("GRPOTrainer", "SFTTrainer", "RewardModelTrainer"):
        monkeypatch.setattr(stages, trainer, Refuses)


# ------------------------------------------------------------------ fingerprints and hashes


def test_fingerprint_changes_with_any_setting_and_refuses_objects():
    config = GRPOConfig(max_steps=100)
    assert fingerprint(grpo=config, seed=0) == fingerprint(seed=0, grpo=GRPOConfig(max_steps=100))
    assert fingerprint(grpo=config, seed=0) != fingerprint(grpo=replace(config, learning_rate=1e-4), seed=0)
    assert fingerprint(grpo=config, seed=0) != fingerprint(grpo=config, seed=1)
    with pytest.raises(TypeError, match="cannot fingerprint a PosixPath"):
        fingerprint(base=Path("data/tiny-base"))


def _fake_model(folder: Path, content: bytes = b"weights") -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(content)
    (folder / "config.json").write_text("{}")
    (folder / "optimizer.safetensors").write_bytes(b"not shipped")
    return folder


def test_record_find_and_a_damaged_file(tmp_path):
    root = tmp_path / "stages"
    folder = record_stage("r1_zero", _fake_model(tmp_path / "run"), "abc", root=root, seconds=3)
    record = json.loads((root / "manifest.json").read_text())["stages"]["r1_zero"]
    assert sorted(record["files"]) == ["config.json", "model.safetensors"]  # the trainer's state stays behind
    assert record["bytes"] == len(b"weights") + 2 and record["seconds"] == 3
    assert find("r1_zero", "abc", root) == folder
    assert find("r1_zero", "other settings", root) is None  # trained with other settings: not used
    assert find("cold_start", "abc", root) is None  # not shipped
    (folder / "model.safetensors").write_bytes(b"weightz")
    assert problems("r1_zero", root) == ["r1_zero: model.safetensors does not match its recorded sha256"]
    with pytest.raises(ShippedStageError, match="model.safetensors does not match.*make stages"):
        find("r1_zero", "abc", root)
    (folder / "config.json").unlink()
    assert "r1_zero: config.json is missing" in problems("r1_zero", root)
    with pytest.raises(ValueError, match="unknown shipped stage 'r2'"):
        find("r2", "abc", root)


def test_train_stages_switch(monkeypatch):
    monkeypatch.delenv(shipped.TRAIN_ENV_VAR, raising=False)
    assert shipped.train_stages_default() is False
    monkeypatch.setenv(shipped.TRAIN_ENV_VAR, "1")
    assert shipped.train_stages_default() is True
    monkeypatch.setenv(shipped.TRAIN_ENV_VAR, "maybe")
    with pytest.raises(ValueError, match="R1LIB_TRAIN_STAGES must be 1 or 0"):
        shipped.train_stages_default()


# ------------------------------------------------------------------ the files in data/stages


def test_every_shipped_stage_matches_its_hashes_and_the_cpu_settings(runs):
    """The manifest's fingerprints are those of today's cpu profile: a change of its settings without
    `make stages` fails here, instead of notebooks silently training their predecessors."""
    manifest = shipped.read_manifest()["stages"]
    assert sorted(manifest) == sorted(SHIPPED)
    for name in SHIPPED:
        assert problems(name) == [], f"{name}: rebuild with `make stages`"
    cpu = get_profile("cpu")
    assert manifest["r1_zero"]["fingerprint"] == predecessors.r1_zero_fingerprint(cpu, "chain")
    assert manifest["search_r1_zero"]["fingerprint"] == predecessors.r1_zero_fingerprint(cpu, "search")
    pipeline = Pipeline(cpu.model, pipeline_config(cpu), runs / "pipeline" / "cpu")
    for name in ("cold_start", "final_r1"):
        assert manifest[name]["fingerprint"] == predecessors.pipeline_fingerprint(pipeline), f"{name}: `make stages`"
    total = sum(record["bytes"] for record in manifest.values())
    assert total < 16 * 2**20, f"the shipped stages hold {total / 2**20:.1f} MiB"
    assert all(record["threads"] == 2 for record in manifest.values())  # bit for bit needs the same thread count


# ------------------------------------------------------------------ where a notebook finds what it reads


def test_a_fresh_clone_takes_the_shipped_r1_zero_without_training(runs, no_training):
    cpu = get_profile("cpu")
    found = r1_zero(cpu, "chain")
    assert found == Predecessor("r1_zero", shipped.STAGES_DIR / "r1_zero", "shipped")
    assert "shipped with r1lib (sha256 checked), data/stages/r1_zero" in str(found)
    teacher = r1_zero(cpu, "search")
    assert teacher.origin == "shipped" and teacher.path.name == "search_r1_zero"
    model, _ = load_model_and_tokenizer(ModelSpec(str(found.path)), trainable=False)
    base, _ = load_model_and_tokenizer(ModelSpec(str(TINY_BASE)), trainable=False)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), base.parameters()))  # a trained model


def test_an_own_finished_run_comes_first_and_other_settings_train(runs, monkeypatch):
    cpu = get_profile("cpu")
    model, tokenizer = load_model_and_tokenizer(ModelSpec(str(TINY_BASE)), trainable=False)
    own = save_checkpoint(runs / "03_r1_zero" / "cpu" / "seed-0" / "checkpoints" / checkpoint_name(100), model, tokenizer,
                          state={"step": 100})
    assert r1_zero(cpu, "chain") == Predecessor("r1_zero", own, "own run")

    class Trained(Exception):
        pass

    def trainer(*args, **kwargs):
        raise Trained(args[5])  # the config it would train with

    monkeypatch.setattr(predecessors, "GRPOTrainer", trainer)
    with pytest.raises(Trained):  # the switch: train it here although a shipped one exists
        r1_zero(cpu, "search", train_yourself=True)
    longer = replace(cpu, grpo=replace(cpu.grpo, max_steps=120))  # its fingerprint differs from the shipped one
    with pytest.raises(Trained) as trained:
        r1_zero(longer, "search")
    assert trained.value.args[0].max_steps == 120
    with pytest.raises(ValueError, match="'chain' \\(notebook 03\\) or 'search'"):
        r1_zero(cpu, "countdown")


class _StoppedTrainer:
    """A trainer whose run ends with ``outcome`` at step 7, as Ctrl-C or a budget would end it."""

    outcome = "interrupted"

    def __init__(self, *args, **kwargs):
        self.state = type("State", (), {"step": 7})()

    def train(self, resume_from=None):
        return []


def test_a_stopped_predecessor_says_how_it_stopped(runs, monkeypatch):
    cpu = get_profile("cpu")
    monkeypatch.setattr(predecessors, "GRPOTrainer", _StoppedTrainer)
    with pytest.raises(KeyboardInterrupt, match="interrupted at step 7 of 100; its checkpoint is kept"):
        r1_zero(cpu, "chain", train_yourself=True)
    monkeypatch.setattr(_StoppedTrainer, "outcome", "stopped")
    with pytest.raises(RuntimeError, match="ended at step 7 of 100 with outcome 'stopped'"):
        r1_zero(cpu, "chain", train_yourself=True)


def test_the_gpu_profile_trains_notebook_03s_run_on_its_own_task(runs, monkeypatch):
    """Nothing is shipped for a hub model, and its base is not a folder to fingerprint: no lookup, no crash."""
    gpu = get_profile("gpu")
    asked = {}

    def experiment(profile, seed=0, task=None):
        asked.update(profile=profile.name, task=task)
        raise RuntimeError("would load the hub model here")

    monkeypatch.setattr(predecessors, "build_experiment", experiment)
    with pytest.raises(RuntimeError, match="hub model"):
        r1_zero(gpu, "chain")
    assert asked == {"profile": "gpu", "task": None}  # None: the profile's own task (GSM8K), as notebook 03 trains
    with pytest.raises(RuntimeError, match="hub model"):
        r1_zero(gpu, "search")
    assert asked["task"] == "search"


def test_the_pipeline_is_provided_shipped_stages_and_its_own_runs_come_first(runs, no_training):
    cpu = get_profile("cpu")
    pipeline = Pipeline(cpu.model, pipeline_config(cpu), runs / "pipeline" / "cpu", progress=False)
    found = pipeline_stage(pipeline, "cold_start", cpu)
    assert found == Predecessor("cold_start", shipped.STAGES_DIR / "cold_start", "shipped")
    # Stage 2 starts from it and the stage's own method returns it: nothing is trained...
    assert pipeline.model_of("cold_start") == pipeline.cold_start() == shipped.STAGES_DIR / "cold_start"
    final = pipeline_stage(pipeline, "final_r1", cpu)
    assert final.origin == "shipped" and pipeline.all_scenarios_rl() == shipped.STAGES_DIR / "final_r1"
    # ...and nothing is written: notebook 05, run later, still trains its own cold start, with its logs.
    assert not pipeline.done("cold_start") and not (runs / "pipeline").exists()
    assert not Pipeline(cpu.model, pipeline_config(cpu), runs / "pipeline" / "cpu").done("cold_start")
    zero = predecessors.pipeline_r1_zero(pipeline, cpu)
    assert zero.origin == "shipped" and pipeline.r1_zero() == shipped.STAGES_DIR / "r1_zero"
    # Notebook 03's own finished run is adopted into the pipeline's folder and counts from then on.
    model, tokenizer = load_model_and_tokenizer(ModelSpec(str(TINY_BASE)), trainable=False)
    save_checkpoint(runs / "03_r1_zero" / "cpu" / "seed-0" / "checkpoints" / checkpoint_name(100), model, tokenizer,
                    state={"step": 100})
    again = Pipeline(cpu.model, pipeline_config(cpu), runs / "pipeline" / "cpu", progress=False)
    own = predecessors.pipeline_r1_zero(again, cpu)
    assert own == Predecessor("r1_zero", again.final("r1_zero"), "own run") and again.done("r1_zero")
    assert str(own).startswith("R1-Zero on chains, seed 0 (notebook 03): its own run, runs/pipeline/cpu/r1_zero/final")
    adopted = load_file(again.final("r1_zero") / "model.safetensors")
    weights = model.state_dict()
    assert adopted and all(torch.equal(value, weights[name]) for name, value in adopted.items())
    assert predecessors.pipeline_r1_zero(again, cpu) == own  # read back: still notebook 03's
    with pytest.raises(ValueError, match="only a policy's training stage"):
        again.provide("reward_model", shipped.STAGES_DIR / "cold_start")
    with pytest.raises(ValueError, match="name must be one of"):
        pipeline_stage(again, "reward_model", cpu)


def test_a_pipeline_whose_r1_zero_is_its_own_says_so(runs):
    """The smoke profile's pipeline trains a shorter R1-Zero than notebook 03's: it is not labelled as 03's."""
    smoke = get_profile("smoke")
    pipeline = Pipeline(smoke.model, pipeline_config(smoke), runs / "pipeline" / "smoke", progress=False)
    model, tokenizer = load_model_and_tokenizer(ModelSpec(str(TINY_BASE)), trainable=False)
    save_checkpoint(pipeline.final("r1_zero"), model, tokenizer)
    (pipeline.folder("r1_zero") / "stage.json").write_text(json.dumps({"start": "base", "steps": 2}))
    found = predecessors.pipeline_r1_zero(pipeline, smoke)
    assert str(found) == ("the pipeline's own R1-Zero (its settings are not notebook 03's): its own run, "
                          "runs/pipeline/smoke/r1_zero/final")


# ------------------------------------------------------------------ the plan a notebook prints first


def test_the_plan_says_where_each_comes_from_and_what_a_t4_would_train(runs):
    cpu = get_profile("cpu")
    text = plan("06", cpu, pipeline=Pipeline(cpu.model, pipeline_config(cpu), runs / "pipeline" / "cpu"))
    assert "R1-Zero on chains, seed 0 (notebook 03): the shipped stage (data/stages/r1_zero)" in text
    assert "the pipeline's cold-start model (notebook 05): the shipped stage (data/stages/cold_start)" in text
    assert "TRAIN_STAGES = True" in text and "an estimate from FLOPs" in text
    assert "trained first (TRAIN_STAGES is on)" in plan("04", cpu, train_yourself=True)
    assert plan("08", cpu) == "notebook 08 reads no model of an earlier notebook"
    with pytest.raises(ValueError, match="needs the pipeline"):
        plan("09", cpu)
    gpu = get_profile("gpu")
    first_04, first_06 = gpu_training_first("04", gpu), gpu_training_first("06", gpu)
    assert [what for what, _ in first_06] == [f"the pipeline's R1-Zero (100 GRPO steps on {gpu.model.name_or_path})",
                                             "the cold start (125 SFT steps on 1000 examples)"]
    # One estimate per step times the steps: the pipeline's 100-step R1-Zero takes half of notebook 03's 200.
    assert first_06[0][1] == pytest.approx(first_04[0][1] / 2)
    assert 5 < first_04[0][1] < 120 and 0 < first_06[1][1] < first_04[0][1]
    assert f"about {first_04[0][1]:.0f} min" in plan("04", gpu)
    assert gpu_training_first("07", gpu) == [] and gpu_training_first("09", gpu) == []  # the tiny world on every profile


def test_the_stage_builder_reports_every_difference(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_stages
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    a, b = tmp_path / "a", tmp_path / "b"
    record_stage("r1_zero", _fake_model(tmp_path / "m1"), "f", root=a)
    record_stage("r1_zero", _fake_model(tmp_path / "m2"), "f", root=b)
    assert build_stages.compare(a, b) == []
    record_stage("cold_start", _fake_model(tmp_path / "m3", b"other"), "g", root=a)
    record_stage("cold_start", _fake_model(tmp_path / "m4"), "h", root=b)
    assert build_stages.compare(a, b) == ["cold_start: settings fingerprint g built, h shipped",
                                          "cold_start/model.safetensors: sha256 differs"]
