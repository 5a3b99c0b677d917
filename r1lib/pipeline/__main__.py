"""``python -m r1lib.pipeline``: run the pipeline's stages from a shell."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..profiles import get_profile, runs_dir
from .config import STAGES, pipeline_config
from .stages import Pipeline


def main(argv: list[str] | None = None) -> None:
    """``python -m r1lib.pipeline [--profile cpu] [--root DIR] [--until STAGE]``: run the stages.

    ``--until cold_start_data`` stops after writing the cold-start set to
    ``<root>/cold_start_data/cold_start.jsonl`` (TRL's prompt-completion jsonl).
    """
    # Named as it is run: argparse would otherwise call the program "__main__.py".
    parser = argparse.ArgumentParser(prog="python -m r1lib.pipeline", description=main.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help="cpu, smoke or gpu (default: $R1LIB_PROFILE, else by hardware)")
    parser.add_argument("--root", default=None, help="where the stages go (default: runs/pipeline/<profile>)")
    parser.add_argument("--until", default="all_scenarios_rl", choices=STAGES)
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    root = Path(args.root) if args.root else runs_dir("pipeline", profile.name)
    pipeline = Pipeline(profile.model, pipeline_config(profile), root, data_dir=profile.data_dir)
    for stage, folder in pipeline.run(args.until).items():
        print(f"{stage:>18}: {folder}")


if __name__ == "__main__":
    main()
