"""Every config field documents itself (``metadata["help"]``, which ``HfArgumentParser`` shows for
``--help``), in the training configs and in the other dataclasses a user sets, and README's table of
defaults that differ from TRL's matches both r1lib and the TRL installed (``TRL_DEFAULT_DIFFERENCES``)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import warnings
from pathlib import Path

import pytest
from transformers import HfArgumentParser

from r1lib import configs
from r1lib.configs import (
    TRL_CHECKED_VERSION,
    TRL_COUNTERPARTS,
    TRL_DEFAULT_DIFFERENCES,
    DistillConfig,
    DPOConfig,
    GRPOConfig,
    RewardModelConfig,
    SFTConfig,
    TrainingConfig,
)
from r1lib.models import LoraSettings, ModelSpec
from r1lib.pipeline import ColdStartConfig, PipelineConfig, RejectionSamplingConfig
from r1lib.profiles import Profile
from r1lib.scale import LaunchPlan
from r1lib.tiny.corpus import CorpusConfig
from r1lib.tiny.model import TinyModelConfig

CONFIGS = [TrainingConfig, GRPOConfig, SFTConfig, DistillConfig, RewardModelConfig, DPOConfig]
# The other dataclasses a user sets: a model's placement and LoRA adapter, a cluster launch plan, a
# profile, the tiny world's corpus and model shape, and the multi-stage pipeline's settings.
OTHER_CONFIGS = [ModelSpec, LoraSettings, LaunchPlan, Profile, CorpusConfig, TinyModelConfig,
                 ColdStartConfig, RejectionSamplingConfig, PipelineConfig]
ALL_CONFIGS = CONFIGS + OTHER_CONFIGS
README = Path(__file__).resolve().parents[1] / "README.md"


def _default(config_class: type, name: str):
    f = {f.name: f for f in dataclasses.fields(config_class)}[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _squeeze(text: str) -> str:
    return "".join(text.split())  # argparse re-wraps help text (and may break at hyphens)


@pytest.fixture
def restore_field_types():
    """HfArgumentParser overwrites ``Field.type`` on the class (resolved, Optional unwrapped): put it back."""
    saved = [(f, f.type) for cls in ALL_CONFIGS for f in dataclasses.fields(cls)]
    yield
    for f, type_ in saved:
        f.type = type_


@pytest.mark.parametrize("config_class", ALL_CONFIGS, ids=lambda c: c.__name__)
def test_every_field_has_help(config_class):
    for f in dataclasses.fields(config_class):
        text = f.metadata.get("help")
        assert isinstance(text, str) and text.strip(), f"{config_class.__name__}.{f.name} has no help"
        assert "%" not in text, f"{config_class.__name__}.{f.name}: argparse reads % in help as a format"
        assert set(f.metadata) == {"help"}, f"HfArgumentParser passes every metadata key to argparse ({f.name})"


def test_no_trailing_comments_left_on_fields():
    source = Path(configs.__file__).read_text()
    lines = [line for line in source.splitlines() if re.match(r"    \w+: [\w| \[\]]+ = .*#", line)]
    assert not lines, "move these comments into metadata['help']:\n" + "\n".join(lines)


@pytest.mark.parametrize("config_class", OTHER_CONFIGS, ids=lambda c: c.__name__)
def test_no_trailing_comments_left_on_other_fields(config_class):
    lines = [line for line in inspect.getsource(config_class).splitlines() if re.match(r"    \w+: [^#]*#", line)]
    assert not lines, f"move these comments of {config_class.__name__} into metadata['help']:\n" + "\n".join(lines)


@pytest.mark.parametrize("config_class", ALL_CONFIGS, ids=lambda c: c.__name__)
def test_argument_parser_shows_every_help(config_class, restore_field_types):
    text = _squeeze(HfArgumentParser(config_class).format_help())
    for f in dataclasses.fields(config_class):
        assert f"--{f.name}" in text
        assert _squeeze(f.metadata["help"]) in text, f"{f.name}'s help is missing from --help"


def test_dash_dash_help_prints_the_help(capsys, restore_field_types):
    with pytest.raises(SystemExit) as exit_:
        HfArgumentParser(GRPOConfig).parse_args_into_dataclasses(["--help"], look_for_args_file=False)
    assert exit_.value.code == 0
    printed = _squeeze(capsys.readouterr().out)
    assert _squeeze(dataclasses.fields(GRPOConfig)[0].metadata["help"]) in printed
    assert "Dr.GRPO" in printed and "--loss_type" in printed


@pytest.mark.parametrize("config_class", CONFIGS, ids=lambda c: c.__name__)
def test_parse_command_line(config_class, restore_field_types):
    (config,) = HfArgumentParser(config_class).parse_args_into_dataclasses(
        ["--learning_rate", "3e-4"], look_for_args_file=False
    )
    assert type(config) is config_class
    assert config == dataclasses.replace(config_class(), learning_rate=3e-4)


# Not Profile (its fields are nested configs), nor LoraSettings.target_modules (a tuple), ModelSpec.lora
# (a nested dataclass) or ModelSpec.extra (a dict): HfArgumentParser cannot read those from a command
# line, so only their help is checked above.
OTHER_COMMAND_LINES = [
    (ModelSpec, ["--name_or_path", "Qwen/Qwen2.5-0.5B", "--dtype", "bfloat16", "--gradient_checkpointing"],
     ModelSpec("Qwen/Qwen2.5-0.5B", dtype="bfloat16", gradient_checkpointing=True)),
    (LoraSettings, ["--r", "8", "--dropout", "0.05"], LoraSettings(r=8, dropout=0.05)),
    (LaunchPlan, ["--mixed_precision", "bf16", "--setup", "ddp", "--gpus", "2", "--lora_r", "16"],
     LaunchPlan(setup="ddp", gpus=2, mixed_precision="bf16", lora_r=16)),
    (CorpusConfig, ["--diligent_rate", "0.5"], CorpusConfig(diligent_rate=0.5)),
    (TinyModelConfig, ["--hidden_size", "64", "--num_heads", "2"], TinyModelConfig(hidden_size=64, num_heads=2)),
]


@pytest.mark.parametrize("config_class, argv, expected", OTHER_COMMAND_LINES,
                         ids=[c.__name__ for c, _, _ in OTHER_COMMAND_LINES])
def test_parse_other_command_lines(config_class, argv, expected, restore_field_types):
    (config,) = HfArgumentParser(config_class).parse_args_into_dataclasses(argv, look_for_args_file=False)
    assert config == expected


def test_other_validation_still_runs(restore_field_types):
    with pytest.raises(ValueError, match="mixed_precision is required"):
        HfArgumentParser(LaunchPlan).parse_args_into_dataclasses(["--gpus", "1"], look_for_args_file=False)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        HfArgumentParser(TinyModelConfig).parse_args_into_dataclasses(["--num_heads", "3"], look_for_args_file=False)


def test_parse_switches_lists_and_optionals(restore_field_types):
    (grpo,) = HfArgumentParser(GRPOConfig).parse_args_into_dataclasses(
        ["--no_mask_truncated_completions", "--reward_weights", "1", "0.5", "--epsilon_high", "0.28",
         "--loss-type", "dapo"],
        look_for_args_file=False,
    )
    assert grpo.mask_truncated_completions is False and grpo.reward_weights == [1.0, 0.5]
    assert grpo.epsilon_high == 0.28 and grpo.loss_type == "dapo"
    (sft,) = HfArgumentParser(SFTConfig).parse_args_into_dataclasses(
        ["--max_length", "512", "--packing"], look_for_args_file=False
    )
    assert sft.max_length == 512 and sft.packing is True
    with pytest.raises(ValueError, match="loss_type must be one of"):  # the config's own validation still runs
        HfArgumentParser(GRPOConfig).parse_args_into_dataclasses(["--loss_type", "ppo"], look_for_args_file=False)


# ---------------------------------------------------------------------------- the TRL table

def _entry(config_class: type, name: str):
    """The recorded difference that covers ``config_class.name``: its own, or a base class's when the
    config keeps that base's default."""
    for base in config_class.__mro__:
        entry = TRL_DEFAULT_DIFFERENCES.get(base.__name__, {}).get(name)
        if entry is not None and _default(base, name) == _default(config_class, name):
            return base.__name__, entry
    return None, None


def _trl_class(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trl.experimental says so on import
        return getattr(importlib.import_module(module), name)


def test_trl_default_differences_are_complete():
    trl = pytest.importorskip("trl")
    version = f"(recorded against trl {TRL_CHECKED_VERSION}, installed {trl.__version__})"
    problems, used = [], set()
    for name, dotted in TRL_COUNTERPARTS.items():
        ours, theirs = getattr(configs, name), _trl_class(dotted)
        trl_fields = {f.name for f in dataclasses.fields(theirs)}
        for f in dataclasses.fields(ours):
            if f.name not in trl_fields:
                continue
            r1lib_default, trl_default = _default(ours, f.name), _default(theirs, f.name)
            owner, entry = _entry(ours, f.name)
            if r1lib_default == trl_default:
                if owner == name:
                    problems.append(f"{name}.{f.name}: same default as {dotted} now ({trl_default!r}); remove it")
                continue
            if entry is None:
                problems.append(f"{name}.{f.name}: r1lib {r1lib_default!r}, {dotted} {trl_default!r}: not in "
                                f"TRL_DEFAULT_DIFFERENCES")
                continue
            used.add((owner, f.name))
            if entry[0] != trl_default:
                problems.append(f"{owner}.{f.name}: recorded TRL default {entry[0]!r}, {dotted} has {trl_default!r}")
    unused = {(c, n) for c, entries in TRL_DEFAULT_DIFFERENCES.items() for n in entries} - used
    problems += [f"{c}.{n}: recorded, but no config differs from TRL there" for c, n in sorted(unused)]
    assert not problems, f"TRL_DEFAULT_DIFFERENCES is stale {version}:\n  " + "\n  ".join(problems)


def _format(value) -> str:
    if isinstance(value, float) and value and abs(value) < 1e-3:
        mantissa, exponent = f"{value:e}".split("e")
        return f"`{float(mantissa):g}e{int(exponent)}`"
    return f"`{value!r}`"


def expected_table() -> str:
    rows = ["| config | field | r1lib | TRL | why r1lib differs |", "|---|---|---|---|---|"]
    for name, entries in TRL_DEFAULT_DIFFERENCES.items():
        for field_name, (trl_default, why) in entries.items():
            r1lib_default = _default(getattr(configs, name), field_name)
            rows.append(f"| `{name}` | `{field_name}` | {_format(r1lib_default)} | {_format(trl_default)} | {why} |")
    return "\n".join(rows)


def _rows(table: str) -> list[tuple]:
    parsed = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`"):
            continue
        config, field_name, ours, theirs, why = cells
        parsed.append((config.strip("`"), field_name.strip("`"), ast.literal_eval(ours.strip("`")),
                       ast.literal_eval(theirs.strip("`")), " ".join(why.split())))
    return parsed


def test_readme_table_mirrors_the_mapping():
    readme = README.read_text()
    assert "## Moving a config to TRL" in readme
    section = readme.split("## Moving a config to TRL", 1)[1].split("\n## ", 1)[0]
    expected = expected_table()
    assert _rows(section) == _rows(expected), f"update README.md's table to:\n\n{expected}\n"
    for name, dotted in TRL_COUNTERPARTS.items():
        assert f"`{name}`" in section and f"`{dotted}`" in section
