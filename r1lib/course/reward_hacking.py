"""Notebook 06's reward-hacking study: stage 4's general prompts against the reward model, judged by gold.

DeepSeek-R1 scored reasoning by rules and general prompts by reward models, and warned that "pure RL
faces reward-hacking challenges". The tiny world can show it, because its general task has a gold
judge that no model is trained on (:meth:`r1lib.tasks.general.GeneralTask.judge`). Each *arm* is a
GRPO run from the stage-3 model on general requests only, rewarded by one reward model and nothing
else. The first three run at a learning rate high enough that the policy finds what the reward model
cannot see:

* ``reward model alone``: many steps, no KL; the reward-model score keeps rising while gold falls;
* ``final steps only``: the paper's containment, the preference reward for the last 400 of 1,700
  steps of the final RL stage (the same share of this run's steps);
* ``KL to stage 3``: all the steps, held near the stage-3 model by a strong KL penalty;
* ``gentle``: half the steps at a fifth of that learning rate, with a small KL penalty. In notebook
  06's run it is the arm whose replies beat stage 3's on the requests it trained on
  (:func:`gold_change`).

A :class:`GoldProbe` measures gold and the reward model's score every few steps, so each arm leaves a
curve; :func:`top_hacks` lists the replies the reward model likes most that the gold judge rejects.
:data:`DPO_ARM` is the gentle arm against another judge, DPO's implicit reward model (notebook 06's
exercise), and :func:`gold_change` compares an arm's replies with stage 3's, request by request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_text
from ..configs import GRPOConfig
from ..grpo import GRPOTrainer
from ..pipeline import Pipeline, general_quality, gold_per_request, paired_difference
from ..reward_model import Scorer
from ..rejection import sample_groups
from ..tasks.base import Example
from ..tasks.general import GeneralTask
from ..trainer import Record, Trainer, TrainerCallback

PAPER_PREFERENCE_SHARE = 400 / 1700  # the final RL stage's steps with preference rewards, of all its steps


JUDGES = ("bradley_terry", "dpo")  # Pipeline.scorer() and Pipeline.implicit_scorer()


@dataclass(frozen=True)
class Arm:
    """One way to run stage 4's general RL: its folder suffix, KL coefficient, share of the study's
    steps, learning rate (``None``: the study's) and judge (one of :data:`JUDGES`)."""

    name: str
    label: str
    beta: float = 0.0
    step_share: float = 1.0
    learning_rate: float | None = None
    judge: str = "bradley_terry"

    def __post_init__(self) -> None:
        if self.beta < 0 or not 0 < self.step_share <= 1:
            raise ValueError(f"need beta >= 0 and 0 < step_share <= 1, got {self.beta}, {self.step_share}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be None or > 0, got {self.learning_rate}")
        if self.judge not in JUDGES:
            raise ValueError(f"judge must be one of {JUDGES}, got {self.judge!r}")


ARMS = (
    Arm("rm_alone", "reward model alone"),
    Arm("final_steps", "final steps only (the paper)", step_share=PAPER_PREFERENCE_SHARE),
    Arm("kl", "KL to stage 3 (beta 1)", beta=1.0),
    Arm("gentle", "gentle (lr 1e-4, beta 0.1, half the steps)", beta=0.1, step_share=0.5, learning_rate=1e-4),
)
DPO_ARM = Arm("gentle_dpo", "gentle, judged by DPO's implicit reward model", beta=0.1, step_share=0.5,
              learning_rate=1e-4, judge="dpo")


class GoldProbe(TrainerCallback):
    """Every ``every`` steps, measure gold quality and the reward model's score of the policy's replies
    on held-out requests, and append them to ``path`` (jsonl; a resumed run drops points past its step)."""

    def __init__(self, path: Path, requests: Sequence[Example], scorer: Scorer, every: int, k: int,
                 seed: int = 11) -> None:
        self.path, self.requests, self.scorer, self.every, self.k, self.seed = path, list(requests), scorer, every, k, seed

    def on_train_begin(self, trainer: Trainer) -> None:
        kept = [r for r in read_curve(self.path) if r["step"] <= trainer.state.step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        if not any(r["step"] == trainer.state.step for r in kept):  # a restart before step 1 kept its step 0
            self._measure(trainer, trainer.state.step)

    def on_log(self, trainer: Trainer, record: Record) -> None:
        step = record["step"]
        if step % self.every == 0 or step == trainer.config.max_steps:
            if not any(r["step"] == step for r in read_curve(self.path)):
                self._measure(trainer, step)

    def _measure(self, trainer: Trainer, step: int) -> None:
        was_training = trainer.model.training
        trainer.model.eval()
        quality = general_quality(trainer.model, trainer.tokenizer, self.requests, k=self.k, seed=self.seed,
                                  scorer=self.scorer)
        trainer.model.train(was_training)
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **quality}) + "\n")


def read_curve(path: Path) -> list[dict[str, Any]]:
    """The points a :class:`GoldProbe` wrote, oldest first (none when the file is missing). A line cut
    short by a kill during an append is skipped: that point is measured again on resume."""
    points = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            points.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return points


def arm_config(pipeline: Pipeline, arm: Arm, steps: int, learning_rate: float) -> GRPOConfig:
    """The GRPO settings of ``arm``: stage 4's, with a constant learning rate (the arm's, else
    ``learning_rate``), the arm's KL and its share of ``steps``."""
    arm_steps = max(1, round(steps * arm.step_share))
    return replace(pipeline.config.all_scenarios_rl, max_steps=arm_steps, beta=arm.beta,
                   learning_rate=arm.learning_rate or learning_rate, lr_scheduler_type="constant", warmup_ratio=0.0,
                   warmup_steps=0, reward_weights=None, max_completion_length=48, save_steps=max(1, arm_steps // 2),
                   eval_steps=arm_steps)


def judge_of(pipeline: Pipeline, arm: Arm) -> Scorer:
    """The reward model ``arm`` is trained against (trained first when missing)."""
    return pipeline.implicit_scorer() if arm.judge == "dpo" else pipeline.scorer()


def run_arm(pipeline: Pipeline, arm: Arm, steps: int = 100, learning_rate: float = 5e-4, probe_every: int = 10,
            probe_k: int = 8) -> Path:
    """Train ``arm`` from the stage-3 model (skipped when done, resumed when interrupted); its folder is
    ``all_scenarios_rl_<arm.name>`` under the pipeline, with the probe's ``gold_curve.jsonl``, whose
    reward-model scores are the arm's own judge's."""
    stage = f"all_scenarios_rl_{arm.name}"
    config = arm_config(pipeline, arm, steps, learning_rate)
    scorer = judge_of(pipeline, arm)
    probe = GoldProbe(pipeline.folder(stage) / "gold_curve.jsonl", pipeline.general_eval, scorer, probe_every, probe_k)
    final = pipeline.train_stage(stage, "rejection_sft", lambda model, tokenizer, out: GRPOTrainer(
        model, tokenizer, pipeline.general, [scorer.as_reward_func("reward_model")], pipeline.general_train, config,
        out, progress=pipeline.progress, callbacks=[probe]))
    done = json.loads((pipeline.folder(stage) / "stage.json").read_text()).get("steps")
    if done != config.max_steps:  # a finished arm is skipped: refuse to pass it off as another length
        raise ValueError(f"{stage} finished with {done} steps, not the {config.max_steps} asked for; delete "
                         f"{pipeline.folder(stage)} to run it again")
    return final


def run_study(pipeline: Pipeline, arms: Sequence[Arm] = ARMS, **settings: Any) -> dict[str, list[dict[str, Any]]]:
    """Every arm (see :func:`run_arm` for ``settings``); returns each arm's gold curve by name."""
    return {arm.name: read_curve(run_arm(pipeline, arm, **settings).parent / "gold_curve.jsonl") for arm in arms}


def top_hacks(model, tokenizer, scorer: Scorer, requests: Sequence[Example], k: int = 16, seed: int = 12,
              count: int = 8) -> list[dict[str, Any]]:
    """The ``count`` distinct replies the reward model scores highest among those the gold judge rejects:
    request, reply, score and verdict, best score first."""
    general = GeneralTask()
    groups = list(sample_groups(model, tokenizer, [general.prompt(e) for e in requests], k, 48, 1.0, seed,
                                batch_prompts=None))
    scores = scorer.score([g.prompt for g in groups for _ in g.texts], [t for g in groups for t in g.texts])
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for (request, text), score in zip([(r, t) for g, r in zip(groups, requests) for t in g.texts], scores):
        verdict = general.judge(text, request)
        if verdict != "acceptable":
            found[(request.question, text)] = {"request": request.question, "reply": text, "score": score,
                                               "verdict": verdict}
    return sorted(found.values(), key=lambda hack: -hack["score"])[:count]


def training_requests(pipeline: Pipeline) -> list[Example]:
    """The distinct general requests that stage 4's RL prompts are drawn from (none of them held out)."""
    trained_on = {e.question for e in pipeline.general_train}
    return [e for e in pipeline.general.all_examples() if e.question in trained_on]


def gold_change(pipeline: Pipeline, after: Path, before: Path, requests: Sequence[Example], k: int = 16,
                seed: int = 11) -> dict[str, float]:
    """Gold quality of the models in ``after`` and ``before`` on ``requests`` (``k`` replies each, the
    same seed for both), and the paired change with its standard error over requests."""
    values = {}
    for name, folder in (("after", after), ("before", before)):
        model, tokenizer = pipeline.load(folder)
        values[name] = gold_per_request(model, tokenizer, requests, k=k, seed=seed)
    change, error = paired_difference(values["after"], values["before"])
    return {"before": sum(values["before"]) / len(requests), "after": sum(values["after"]) / len(requests),
            "change": change, "stderr": error, "requests": len(requests)}
