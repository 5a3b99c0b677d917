"""Rebuild the tiny world's shipped stages (data/stages/) from their seeds: `make stages`.

Each stage is trained by the code its notebook runs (r1lib.course.predecessors, with every earlier
stage trained here too), in a temporary runs folder, on the cpu profile:

    r1_zero         notebook 03's R1-Zero on chains, seed 0
    search_r1_zero  notebook 04's R1-Zero on the search task
    cold_start      the pipeline's cold start (notebook 05), from the R1-Zero above
    final_r1        the pipeline's stage 4 (notebook 06)

The same PyTorch version and thread count give the same bytes. `--check` builds into a temporary
folder and compares every file's sha256 with data/stages/manifest.json, exiting 1 on a difference.
About 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


def build(out: Path, runs: Path) -> dict[str, float]:
    os.environ["R1LIB_RUNS_DIR"] = str(runs)  # runs_dir() reads it at every call
    from r1lib.course.predecessors import pipeline_fingerprint, pipeline_stage, r1_zero, r1_zero_fingerprint
    from r1lib.pipeline import Pipeline, pipeline_config
    from r1lib.profiles import get_profile, runs_dir
    from r1lib.shipped import record_stage

    profile, seconds = get_profile("cpu"), {}
    common = dict(torch=torch.__version__.split("+")[0], threads=torch.get_num_threads())
    for name, task in (("r1_zero", "chain"), ("search_r1_zero", "search")):
        began = time.time()
        found = r1_zero(profile, task, train_yourself=True)
        seconds[name] = time.time() - began
        record_stage(name, found.path, r1_zero_fingerprint(profile, task), root=out, seconds=round(seconds[name]), **common)
    pipeline = Pipeline(profile.model, pipeline_config(profile), runs_dir("pipeline", profile.name))
    for name in ("cold_start", "final_r1"):
        began = time.time()
        found = pipeline_stage(pipeline, name, profile, train_yourself=True)
        seconds[name] = time.time() - began
        record_stage(name, found.path, pipeline_fingerprint(pipeline), root=out, seconds=round(seconds[name]), **common)
    return seconds


def compare(built: Path, shipped: Path) -> list[str]:
    from r1lib.shipped import read_manifest

    new, old = read_manifest(built / "manifest.json")["stages"], read_manifest(shipped / "manifest.json")["stages"]
    differences = []
    for name in sorted(set(new) | set(old)):
        a, b = new.get(name, {}), old.get(name, {})
        if a.get("fingerprint") != b.get("fingerprint"):
            differences.append(f"{name}: settings fingerprint {a.get('fingerprint')} built, {b.get('fingerprint')} shipped")
        for file in sorted(set(a.get("files", {})) | set(b.get("files", {}))):
            if a.get("files", {}).get(file) != b.get("files", {}).get(file):
                differences.append(f"{name}/{file}: sha256 differs")
    return differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="where to write the stages (default: the shipped data/stages)")
    parser.add_argument("--check", action="store_true", help="build into a temporary folder and compare with the shipped hashes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the shipped stages: 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from r1lib.shipped import STAGES_DIR

    with tempfile.TemporaryDirectory(prefix="r1lib-stages-") as scratch:
        out = Path(scratch) / "stages" if args.check else (args.out or STAGES_DIR)
        seconds = build(out, Path(scratch) / "runs")
        print("built in " + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()) + f" ({args.threads} threads)")
        if not args.check:
            print(f"wrote {out}")
            return 0
        differences = compare(out, args.out or STAGES_DIR)
    print("\n".join(differences) if differences else "every shipped file matches the rebuild, bit for bit")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
