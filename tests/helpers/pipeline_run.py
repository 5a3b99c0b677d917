"""A very small multi-stage pipeline on the tiny base, used by the kill-and-resume test.

    python tests/helpers/pipeline_run.py ROOT

Runs (or resumes) every stage under ROOT, then writes the stage-by-stage table to ROOT/table.json.
With ``SLOW_STEPS=seconds`` every logged step of the rejection-sampling SFT (stage 3) pauses, so that
a test can kill the run there.
"""

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from r1lib.pipeline import Pipeline, evaluate_stage, pipeline_config
from r1lib.profiles import get_profile
from r1lib.trainer import Trainer

ROWS = ("base", "r1_zero", "cold_start", "reasoning_rl", "rejection_sft", "all_scenarios_rl")


def make_pipeline(root) -> Pipeline:
    profile = get_profile("smoke")
    config = pipeline_config(profile)
    config = replace(config, rejection_sft=replace(config.rejection_sft, max_steps=16, save_steps=4, eval_steps=16))
    return Pipeline(profile.model, config, root, progress=False)


def run(root) -> dict:
    pipeline = make_pipeline(root)
    pipeline.run()
    table = {}
    for stage in ROWS:
        model, tokenizer = pipeline.load(pipeline.model_of(stage))
        table[stage] = evaluate_stage(model, tokenizer, pipeline, k=2)
    (Path(root) / "table.json").write_text(json.dumps(table))
    return table


if __name__ == "__main__":
    torch.set_num_threads(1)
    pause = float(os.environ.get("SLOW_STEPS", "0"))
    if pause:  # stage 3's trainer pauses after each logged step
        original = Trainer._log_record  # every record the loop writes goes through it

        def slow_record(self, record):
            logged = original(self, record)
            if self.output_dir is not None and self.output_dir.name == "rejection_sft":
                time.sleep(pause)
            return logged

        Trainer._log_record = slow_record
    run(sys.argv[1])
