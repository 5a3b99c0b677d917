"""Trained stages of the tiny world that ship with r1lib, so that any notebook starts on its own.

A notebook that reads an earlier notebook's model (notebook 04 reads 03's R1-Zero, 07 reads 04's
teacher, ...) takes the earlier run when it exists, else the stage shipped here, else trains it.
The shipped stages live in ``data/stages/<name>/`` beside ``manifest.json``, which records for each:
the sha256 of every file, and the *fingerprint* of the settings it was trained with. A shipped stage
is used only when the fingerprint of the settings in force matches (change the cpu profile and the
notebook trains its own), and only when every file matches its hash (a damaged file is an error,
never a silent fallback). ``make stages`` rebuilds them all from their seeds, bit for bit on the
same PyTorch and thread count (``scripts/build_stages.py``); :mod:`r1lib.course.predecessors` is
what the notebooks call.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, fields, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .checkpoint import atomic_directory, atomic_write_text
from .profiles import DATA_DIR, ROOT


def stages_dir() -> Path:
    """``stages/`` beside the tiny models; when ``$R1LIB_DATA_DIR`` names a folder without shipped
    stages, those of the checkout, else of the installed package."""
    for candidate in (DATA_DIR / "stages", ROOT / "data" / "stages", Path(__file__).resolve().parent / "data" / "stages"):
        if (candidate / "manifest.json").exists():
            return candidate
    return DATA_DIR / "stages"


STAGES_DIR = stages_dir()
TRAIN_ENV_VAR = "R1LIB_TRAIN_STAGES"
# The files a shipped stage keeps: the model and its tokenizer, nothing of the trainer's state.
STAGE_FILES = ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
               "tokenizer_config.json", "chat_template.jinja")


@dataclass(frozen=True)
class ShippedStage:
    """One stage a later notebook reads: its name, what it is, and the notebook that makes it
    (:data:`r1lib.course.predecessors.READS` says who reads it)."""

    name: str
    what: str
    made_by: str

    @property
    def folder(self) -> Path:
        """Where the shipped files are (``data/stages/<name>``)."""
        return STAGES_DIR / self.name


SHIPPED: dict[str, ShippedStage] = {s.name: s for s in (
    ShippedStage("r1_zero", "R1-Zero on chains, seed 0", "notebook 03"),
    ShippedStage("search_r1_zero", "R1-Zero on the search task, the teacher of notebook 07", "notebook 04"),
    ShippedStage("cold_start", "the pipeline's cold-start model", "notebook 05"),
    ShippedStage("final_r1", "the pipeline's final R1 (stage 4)", "notebook 06"),
)}


class ShippedStageError(RuntimeError):
    """A shipped stage whose files do not match their recorded hashes; the message says how to fix it."""


def train_stages_default() -> bool:
    """Whether notebooks train the stages they read instead of taking the shipped ones:
    ``$R1LIB_TRAIN_STAGES`` (``1``/``0``), off by default."""
    value = os.environ.get(TRAIN_ENV_VAR, "0").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"{TRAIN_ENV_VAR} must be 1 or 0, got {value!r}")


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot fingerprint a {type(value).__name__}: pass settings, not objects ({value!r})")


def fingerprint(**settings: Any) -> str:
    """A short hash of the settings a stage is trained with (dataclass configs field by field,
    numbers, strings): equal settings, equal fingerprint. Paths are not settings: a clone in another
    folder must find the same stage, so pass a model's weights as :func:`file_sha256` instead."""
    text = json.dumps(_plain(settings), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@lru_cache(maxsize=32)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (cached while the file is unchanged)."""
    stat = Path(path).stat()
    return _cached_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def read_manifest(path: Path | None = None) -> dict[str, Any]:
    """The manifest (``{"stages": {name: record}}``); empty when none was built."""
    path = path or STAGES_DIR / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {"stages": {}}


def problems(name: str, root: Path | None = None) -> list[str]:
    """What is wrong with a shipped stage's files: missing, or not matching the recorded hash."""
    root = root or STAGES_DIR
    record = read_manifest(root / "manifest.json")["stages"].get(name)
    if record is None:
        return [f"{name}: not in {root / 'manifest.json'}"]
    found = []
    for file, digest in record["files"].items():
        path = root / name / file
        if not path.exists():
            found.append(f"{name}: {file} is missing")
        elif file_sha256(path) != digest:
            found.append(f"{name}: {file} does not match its recorded sha256")
    return found


def find(name: str, settings_fingerprint: str, root: Path | None = None) -> Path | None:
    """The folder of shipped stage ``name`` when it was trained with these settings, else ``None``.

    Raises :class:`ShippedStageError` when the stage matches the settings but a file is missing
    or damaged: using it would give numbers that no run gave.
    """
    if name not in SHIPPED:
        raise ValueError(f"unknown shipped stage {name!r}; shipped: {', '.join(SHIPPED)}")
    root = root or STAGES_DIR
    record = read_manifest(root / "manifest.json")["stages"].get(name)
    if record is None or record["fingerprint"] != settings_fingerprint:
        return None
    wrong = problems(name, root)
    if wrong:
        raise ShippedStageError("; ".join(wrong) + ". Reinstall r1lib, or rebuild the shipped stages with "
                                "`make stages`, or train the stage yourself (R1LIB_TRAIN_STAGES=1)")
    return root / name


def record_stage(name: str, model_dir: str | Path, settings_fingerprint: str, root: Path | None = None,
                 **details: Any) -> Path:
    """Copy a trained model's files into the shipped stage ``name`` (atomically) and record their
    hashes and the settings' fingerprint in the manifest; returns the stage's folder."""
    if name not in SHIPPED:
        raise ValueError(f"unknown shipped stage {name!r}; shipped: {', '.join(SHIPPED)}")
    root, model_dir = root or STAGES_DIR, Path(model_dir)
    present = [f for f in STAGE_FILES if (model_dir / f).exists()]
    if "model.safetensors" not in present:
        raise FileNotFoundError(f"{model_dir} has no model.safetensors: not a trained model's folder")
    with atomic_directory(root / name) as tmp:
        for file in present:
            shutil.copyfile(model_dir / file, tmp / file)
    manifest = read_manifest(root / "manifest.json")
    manifest["stages"][name] = {
        "what": SHIPPED[name].what, "made_by": SHIPPED[name].made_by, "fingerprint": settings_fingerprint,
        "files": {f: file_sha256(root / name / f) for f in present},
        "bytes": sum((root / name / f).stat().st_size for f in present), **details,
    }
    manifest["stages"] = dict(sorted(manifest["stages"].items()))
    atomic_write_text(root / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return root / name
