"""What a notebook reads from earlier notebooks, and where it comes from.

Notebook 04 reads 03's R1-Zero, 06 reads 05's cold start, 07 reads 04's teacher, 09 reads them all.
Each is taken, in this order, from

1. **the earlier notebook's own run** (``runs/...``), when it finished;
2. **the stage shipped with r1lib** (:mod:`r1lib.shipped`), on the tiny world, when it was trained
   with the settings in force; skipped when ``train_yourself`` is true;
3. **a training run now**, with the earlier notebook's own code and settings.

Every function returns a :class:`Predecessor`, which says which of the three it was.
:func:`plan` says it all before anything runs, with the time a T4 would need on the gpu profile.

A shipped stage is never written into a run folder: the pipeline *is provided* it for the session
(:meth:`~r1lib.pipeline.Pipeline.provide`). So the notebook that makes a stage (05 the cold start, 06
stage 4) still trains its own, with its logs, whatever was opened before it, and its finished run
then comes first everywhere. The shipped stages were built from one another (the cold start from the
shipped R1-Zero, and so on); an own run on another machine may differ from them in the last digits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import checkpoint_step, latest_checkpoint
from ..configs import GRPOConfig, SFTConfig
from ..estimates import COLAB_T4, KNOWN_SHAPES, estimate_step_seconds
from ..experiment import build_experiment
from ..grpo import GRPOTrainer
from ..pipeline import Pipeline, pipeline_config
from ..profiles import DATA_DIR, Profile, get_profile, runs_dir
from ..shipped import SHIPPED, STAGES_DIR, file_sha256, find, fingerprint

ORIGINS = ("own run", "shipped", "trained now")
# What each notebook reads from earlier ones (notebook 08 reads nothing).
READS: dict[str, tuple[str, ...]] = {
    "04": ("r1_zero",), "05": ("r1_zero",), "06": ("r1_zero", "cold_start"), "07": ("search_r1_zero",),
    "09": ("r1_zero", "search_r1_zero", "cold_start", "final_r1"),
}
PIPELINE_STAGE = {"cold_start": "cold_start", "final_r1": "all_scenarios_rl"}
PROMPT_TOKENS = 200  # a GSM8K prompt in Qwen's chat template, rounded up


@dataclass(frozen=True)
class Predecessor:
    """A model an earlier notebook makes, as this notebook found it."""

    stage: str  # a name of r1lib.shipped.SHIPPED
    path: Path  # the model's folder
    origin: str  # one of ORIGINS
    what: str = ""  # what the model is, when not the shipped stage's description (another profile's run)
    made_by: str = ""  # who made it, when not the shipped stage's notebook

    def __post_init__(self) -> None:
        if self.stage not in SHIPPED or self.origin not in ORIGINS:
            raise ValueError(f"unknown stage {self.stage!r} or origin {self.origin!r}; origins: {ORIGINS}")

    def __str__(self) -> str:
        shipped = SHIPPED[self.stage]
        where = {"own run": "its own run", "shipped": "the stage shipped with r1lib (sha256 checked)",
                 "trained now": "trained just now"}[self.origin]
        return f"{self.what or shipped.what} ({self.made_by or shipped.made_by}): {where}, {short_path(self.path)}"


def short_path(path: Path) -> str:
    """``path`` from the runs folder (``runs/...``) or the data folder (``data/...``) when it is in one."""
    for root, name in ((runs_dir(), "runs"), (DATA_DIR, "data"), (STAGES_DIR, "data/stages")):
        try:
            return str(Path(name) / Path(path).resolve().relative_to(Path(root).resolve()))
        except ValueError:
            continue
    return str(path)


def _finished(folder: Path, max_steps: int) -> Path | None:
    final = latest_checkpoint(folder / "checkpoints")
    return final if final is not None and (checkpoint_step(final) or 0) >= max_steps else None


def _base_weights(model_dir: str) -> str:
    return file_sha256(Path(model_dir) / "model.safetensors")


def _task_of(profile: Profile, run: str) -> str:
    return profile.task if run == "chain" else "search"  # notebook 03 trains on the profile's task


def r1_zero_fingerprint(profile: Profile, run: str) -> str:
    """The settings notebook 03's (``run="chain"``) or 04's (``"search"``) R1-Zero run is trained
    with, on a tiny-world profile (whose base is a local folder)."""
    return fingerprint(grpo=profile.grpo, task=_task_of(profile, run), num_train=profile.num_train_prompts,
                       num_eval=profile.num_eval_prompts, seed=0, base=_base_weights(profile.model.name_or_path))


def pipeline_fingerprint(pipeline: Pipeline) -> str:
    """The settings of a pipeline's stages (all of them: a shipped stage is used only by the same pipeline)."""
    return fingerprint(pipeline=pipeline.config, data_dir=None, base=_base_weights(pipeline.base.name_or_path))


def _r1_zero_folder(profile: Profile, run: str) -> Path:
    return runs_dir("03_r1_zero", profile.name, "seed-0") if run == "chain" else runs_dir("04_aha", profile.name)


def _shipped(name: str, settings: Callable[[], str], profile: Profile, train_yourself: bool) -> Path | None:
    """The shipped stage for these settings; never on a profile outside the tiny world (nothing is
    shipped for it, and its base is not a local folder to fingerprint) or with ``train_yourself``."""
    return None if train_yourself or not profile.is_tiny else find(name, settings())


def _available(name: str, profile: Profile, pipeline: Pipeline | None, train_yourself: bool) -> tuple[str, Path | None]:
    """Where ``name`` would come from, without training or providing anything: ``("own run", its
    folder)``, ``("shipped", the stage's folder)`` or ``("trained now", None)``."""
    if name in PIPELINE_STAGE:
        if pipeline is None:
            raise ValueError(f"finding the pipeline's {name} needs the pipeline")
        stage = PIPELINE_STAGE[name]
        if pipeline.done(stage):
            return "own run", pipeline.final(stage)
        settings = lambda: pipeline_fingerprint(pipeline)  # noqa: E731
    else:
        run = "chain" if name == "r1_zero" else "search"
        own = _finished(_r1_zero_folder(profile, run), profile.grpo.max_steps)
        if own is not None:
            return "own run", own
        settings = lambda: r1_zero_fingerprint(profile, run)  # noqa: E731
    shipped = _shipped(name, settings, profile, train_yourself)
    return ("shipped", shipped) if shipped is not None else ("trained now", None)


def _r1_zero_what(profile: Profile, run: str) -> str:
    return "" if profile.task == "chain" or run == "search" else f"R1-Zero on {profile.task}, seed 0"


def r1_zero(profile: Profile, run: str = "chain", train_yourself: bool = False) -> Predecessor:
    """Notebook 03's R1-Zero (``run="chain"``: seed 0, on the profile's task, chains in the tiny world)
    or notebook 04's on the search task (``"search"``, the teacher of notebook 07): its finished run,
    else the shipped stage, else trained now as that notebook trains it.

    Ctrl-C while it trains keeps its checkpoint and raises ``KeyboardInterrupt``; running the cell
    again resumes it.
    """
    if run not in ("chain", "search"):
        raise ValueError(f"run must be 'chain' (notebook 03) or 'search' (notebook 04), got {run!r}")
    name, folder = ("r1_zero" if run == "chain" else "search_r1_zero"), _r1_zero_folder(profile, run)
    what = _r1_zero_what(profile, run)
    origin, found = _available(name, profile, None, train_yourself)
    if found is not None:
        return Predecessor(name, found, origin, what)
    exp = build_experiment(profile, seed=0, task=None if run == "chain" else "search")
    trainer = GRPOTrainer(exp.model, exp.tokenizer, exp.task, exp.reward_funcs, exp.train_examples, profile.grpo, folder,
                          eval_examples=exp.eval_examples)
    trainer.train(resume_from=True)
    if trainer.outcome == "interrupted":
        raise KeyboardInterrupt(f"{what or SHIPPED[name].what} was interrupted at step {trainer.state.step} of "
                                f"{profile.grpo.max_steps}; its checkpoint is kept, and running the cell again resumes it")
    if trainer.outcome != "completed":
        raise RuntimeError(f"{what or SHIPPED[name].what} ended at step {trainer.state.step} of {profile.grpo.max_steps} "
                           f"with outcome {trainer.outcome!r}; running the cell again resumes it")
    return Predecessor(name, _finished(folder, profile.grpo.max_steps), "trained now", what)


def _adopts_notebook_03(pipeline: Pipeline, profile: Profile) -> bool:
    """Whether the pipeline's R1-Zero is notebook 03's run: the same task, prompts and length of run."""
    c = pipeline.config
    return (c.r1_zero.max_steps == profile.grpo.max_steps and c.reasoning_task == profile.task and c.seed == 0
            and (c.num_train_prompts, c.num_eval_prompts) == (profile.num_train_prompts, profile.num_eval_prompts))


OWN_PIPELINE_R1_ZERO = ("the pipeline's own R1-Zero", "its settings are not notebook 03's")  # what, made by


def pipeline_r1_zero(pipeline: Pipeline, profile: Profile, train_yourself: bool = False) -> Predecessor:
    """The pipeline's first stage. When its settings are notebook 03's, that is notebook 03's R1-Zero
    as :func:`r1_zero` finds it: its run is adopted into the pipeline's folder, the shipped stage is
    provided for this session. Otherwise the pipeline trains (or has) its own."""
    if pipeline.done("r1_zero"):
        adopted = "adopted_from" in json.loads((pipeline.folder("r1_zero") / "stage.json").read_text())
        what, made_by = (_r1_zero_what(profile, "chain"), "") if adopted else OWN_PIPELINE_R1_ZERO
        return Predecessor("r1_zero", pipeline.final("r1_zero"), "own run", what, made_by)
    if not _adopts_notebook_03(pipeline, profile):
        return Predecessor("r1_zero", pipeline.r1_zero(), "trained now", *OWN_PIPELINE_R1_ZERO)
    found = r1_zero(profile, "chain", train_yourself)
    if found.origin == "shipped":
        return Predecessor("r1_zero", pipeline.provide("r1_zero", found.path), "shipped", found.what)
    return Predecessor("r1_zero", pipeline.adopt("r1_zero", found.path), found.origin, found.what)


def pipeline_stage(pipeline: Pipeline, name: str, profile: Profile, train_yourself: bool = False) -> Predecessor:
    """The pipeline's ``cold_start`` or ``final_r1`` (stage 4): its finished stage, else the shipped
    stage provided to the pipeline for this session, else trained now with every stage before it."""
    if name not in PIPELINE_STAGE:
        raise ValueError(f"name must be one of {tuple(PIPELINE_STAGE)}, got {name!r}")
    stage = PIPELINE_STAGE[name]
    origin, found = _available(name, profile, pipeline, train_yourself)
    if origin == "own run":
        return Predecessor(name, found, origin)
    if origin == "shipped":
        return Predecessor(name, pipeline.provide(stage, found), origin)
    pipeline_r1_zero(pipeline, profile, train_yourself)  # so that the cold start samples notebook 03's R1-Zero
    return Predecessor(name, pipeline.model_of(stage), "trained now")


# ---------------------------------------------------------------------------------------------- plan


def _t4_minutes(config: GRPOConfig | SFTConfig, model: str) -> float | None:
    """A run's estimated minutes on a Colab T4: GRPO samples its completions, SFT only trains on
    ``max_length`` tokens; None for a model whose shape is not known."""
    shape = KNOWN_SHAPES.get(model)
    batch = config.per_device_train_batch_size * config.gradient_accumulation_steps
    if isinstance(config, GRPOConfig):
        seconds = shape and estimate_step_seconds(shape, COLAB_T4, batch, PROMPT_TOKENS, config.max_completion_length)
    else:
        seconds = shape and estimate_step_seconds(shape, COLAB_T4, batch, config.max_length, 0, generate=False)
    return seconds * config.max_steps / 60 if seconds else None


def gpu_training_first(notebook: str, gpu: Profile | None = None) -> list[tuple[str, float | None]]:
    """What notebook ``notebook`` trains first on the gpu profile when no earlier run exists, as
    (what, estimated minutes on a Colab T4 or None), the estimate from FLOPs and memory bandwidth
    (:func:`r1lib.estimates.estimate_step_seconds`). Notebooks 07 and 09 measure the tiny world on
    every profile, so nothing is trained on the GPU for them."""
    gpu = gpu or get_profile("gpu")
    model, reads = gpu.model.name_or_path, READS.get(notebook, ())
    if notebook in ("07", "09") or not reads:
        return []
    if notebook == "04":
        return [(f"notebook 03's R1-Zero ({gpu.grpo.max_steps} GRPO steps on {model})", _t4_minutes(gpu.grpo, model))]
    config = pipeline_config(gpu)
    first = [(f"the pipeline's R1-Zero ({config.r1_zero.max_steps} GRPO steps on {model})",
              _t4_minutes(config.r1_zero, model))]
    if "cold_start" in reads:
        first.append((f"the cold start ({config.cold_start_sft.max_steps} SFT steps on {config.cold_start.size} "
                      f"examples)", _t4_minutes(config.cold_start_sft, model)))
    return first


def _where(name: str, profile: Profile, pipeline: Pipeline | None, train_yourself: bool) -> str:
    origin, found = _available(name, profile, pipeline, train_yourself)
    if origin == "own run":
        return "its own run"
    if origin == "shipped":
        return f"the shipped stage ({short_path(found)})"
    return "trained first (TRAIN_STAGES is on)" if train_yourself and profile.is_tiny else "trained first"


def plan(notebook: str, profile: Profile, train_yourself: bool = False, pipeline: Pipeline | None = None) -> str:
    """What notebook ``notebook`` reads from earlier notebooks and where each will come from, before
    anything runs; on every profile, what the gpu profile would train first and its estimated time
    on a T4; and the switch that trains everything here instead."""
    reads = READS.get(notebook, ())
    if not reads:
        return f"notebook {notebook} reads no model of an earlier notebook"
    lines = [f"notebook {notebook} reads:"]
    for name in reads:
        shipped = SHIPPED[name]
        lines.append(f"  {shipped.what} ({shipped.made_by}): {_where(name, profile, pipeline, train_yourself)}")
    first = gpu_training_first(notebook)
    if first:
        parts = [f"{what}, about {minutes:.0f} min" if minutes else f"{what} (no estimate for this model)"
                 for what, minutes in first]
        lines.append("On the gpu profile, without earlier runs, it first trains " + "; then ".join(parts) +
                     " on a free T4: an estimate from FLOPs and memory bandwidth, not a measurement. On the cpu "
                     "profile (PROFILE = \"cpu\") the tiny world's stages ship with r1lib and it starts at once.")
    elif profile.is_tiny or notebook in ("07", "09"):
        lines.append("On every profile these are the tiny world's models, shipped with r1lib.")
    lines.append("To train them here instead of taking the shipped stages: TRAIN_STAGES = True (or R1LIB_TRAIN_STAGES=1).")
    return "\n".join(lines)
