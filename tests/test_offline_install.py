"""An install with pip's index turned off, as in a workshop room without network (make wheelhouse, then make
install). A small wheelhouse is built here without network: this project's wheel, built from a copy of its
sources, and a few pure-Python dependencies rebuilt from their installed files. A fresh venv installs from it
with --no-index and no pip configuration at all, so that nothing but the wheelhouse can be a source.
The Makefile's side is read with make -n: a wheelhouse with wheels turns the index off, none leaves it as it was.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT_VERSION = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
# Pure-Python dependencies of r1lib (tqdm) and of matplotlib (python-dateutil, which needs tzdata: resolved
# from the wheelhouse).
DEPENDENCIES = ["tqdm", "python-dateutil", "tzdata"]


# A proxy where nothing listens: whatever tries the network fails at once instead of reaching an index.
NO_NETWORK = {name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}


def offline_env(**extra):
    """No pip configuration (this machine's points at local package mirrors), no PIP_* variables, no network,
    and nothing that a make or a PYTHONPATH around the test run would carry in."""
    drop = ("PIP_", "PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VIRTUAL_ENV", "no_proxy", "NO_PROXY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(NO_NETWORK, PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
               PIP_RETRIES="0", **extra)
    return env


def run(cmd, cwd, check=True, **env):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=offline_env(**env), capture_output=True, text=True,
                          timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A wheel of these files. Adds METADATA and WHEEL where files has none, and always a RECORD."""
    dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
    files = dict(files)
    if not any(p.endswith(".dist-info/METADATA") for p in files):
        files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    else:
        dist_info = next(p for p in files if p.endswith(".dist-info/METADATA")).split("/")[0]
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([path, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    files[f"{dist_info}/RECORD"] = record.getvalue().encode()
    out = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return out


def wheel_of_installed(name: str, folder: Path) -> Path:
    """The wheel of an installed pure-Python distribution, rebuilt from the files its RECORD lists: a real
    dependency without network or a package index."""
    dist = importlib.metadata.distribution(name)
    assert "Root-Is-Purelib: true" in dist.read_text("WHEEL"), f"{name} is not pure Python"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    files = {f.as_posix(): Path(dist.locate_file(f)).read_bytes() for f in dist.files
             if f.parts[0] != ".." and "__pycache__" not in f.parts and f.name not in skip}
    return write_wheel(folder, dist.metadata["Name"], dist.version, files)


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """(wheelhouse, python of a fresh venv with this project and DEPENDENCIES installed from it, offline)."""
    tmp = tmp_path_factory.mktemp("offline")
    # A copy of what the wheel is built from, so that the build leaves no build/ in the work tree.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.work")
    shutil.copytree(REPO / "r1lib", src / "r1lib", ignore=ignore)
    shutil.copytree(REPO / "data", src / "data", ignore=ignore)
    wheelhouse = tmp / "wheelhouse"
    wheelhouse.mkdir()
    # The outer venv's setuptools builds it (no build isolation, which would need an index).
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheelhouse,
         src], cwd=tmp)
    for name in DEPENDENCIES:
        wheel_of_installed(name, wheelhouse)

    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp)
    python = venv / "bin" / "python"
    offline = ["--no-index", "--find-links", wheelhouse]
    run([python, "-m", "pip", "install", *offline, "--no-deps", "r1lib"], cwd=tmp)
    run([python, "-m", "pip", "install", *offline, "tqdm", "python-dateutil"], cwd=tmp)  # tzdata comes along
    return wheelhouse, python


def test_installs_from_the_wheelhouse_with_the_index_off(room):
    wheelhouse, python = room
    assert sorted(p.name.split("-")[0] for p in wheelhouse.glob("*.whl")) == ["python_dateutil", "r1lib", "tqdm",
                                                                            "tzdata"]
    venv = python.parent.parent
    # In the venv, from outside the repo (the current directory comes first on sys.path).
    probe = run([python, "-c", """
import importlib.metadata as md, pathlib, r1lib
model = pathlib.Path(r1lib.__file__).parent / "data" / "tiny-base" / "model.safetensors"
print(md.version("r1lib"), r1lib.__version__, model, model.stat().st_size)
for name in ("tqdm", "python-dateutil", "tzdata"):
    print(name, md.version(name))
"""], cwd=venv).stdout.split("\n")
    version, module_version, model, size = probe[0].split()
    assert version == module_version == PROJECT_VERSION
    shipped = REPO / "data" / "tiny-base" / "model.safetensors"
    assert Path(model).resolve().is_relative_to(venv.resolve()), f"r1lib found outside the venv: {model}"
    assert int(size) == shipped.stat().st_size
    assert hashlib.sha256(Path(model).read_bytes()).digest() == hashlib.sha256(shipped.read_bytes()).digest()
    for line, name in zip(probe[1:4], ("tqdm", "python-dateutil", "tzdata")):
        assert line == f"{name} {importlib.metadata.version(name)}"


def test_what_the_wheelhouse_lacks_fails_to_install(room):
    wheelhouse, python = room
    offline = ["--no-index", "--find-links", wheelhouse]
    absent = run([python, "-m", "pip", "install", *offline, "six"], cwd=wheelhouse.parent, check=False)
    assert absent.returncode != 0 and "No matching distribution found for six" in absent.stderr, absent.stderr
    # r1lib with its dependencies: torch and the others are not in this small wheelhouse, and no index is asked.
    with_deps = run([python, "-m", "pip", "install", *offline, "r1lib"], cwd=wheelhouse.parent,
                    check=False)
    assert with_deps.returncode != 0 and "No matching distribution found for" in with_deps.stderr, with_deps.stderr


def test_install_torch_sh_takes_torch_from_the_wheelhouse_only(room, tmp_path):
    wheelhouse, python = room
    script = REPO / "scripts" / "install_torch.sh"
    # No torch in the wheelhouse: the script fails instead of going to an index.
    missing = run(["bash", script, python], cwd=tmp_path, check=False,
                  PIP_OFFLINE=f"--no-index --find-links {wheelhouse}")
    assert missing.returncode != 0 and "No matching distribution found for torch" in missing.stderr, missing.stderr
    assert "installing torch from the wheelhouse" in missing.stdout and "Looking in indexes" not in missing.stdout
    # A stand-in torch wheel in a wheelhouse: installed from there.
    fake = tmp_path / "wheelhouse"
    fake.mkdir()
    write_wheel(fake, "torch", "2.5.0", {"torch/__init__.py": b'__version__ = "2.5.0+wheelhouse"\n'})
    done = run(["bash", script, python], cwd=tmp_path, PIP_OFFLINE=f"--no-index --find-links {fake}")
    assert "installing torch from the wheelhouse" in done.stdout
    installed = run([python, "-c", "import torch; print(torch.__version__)"], cwd=tmp_path).stdout.strip()
    assert installed == "2.5.0+wheelhouse"


def make_n(*args):
    return run(["make", "-n", "-B", *args], cwd=REPO).stdout


def test_make_install_turns_the_index_off_while_the_wheelhouse_holds_wheels(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    offline = f"--no-index --find-links {wheelhouse}"
    # Empty: the install is today's, index on.
    plan = make_n("install", f"WHEELHOUSE={wheelhouse}")
    assert "--no-index" not in plan
    assert 'PIP_OFFLINE="" bash scripts/install_torch.sh .venv/bin/python' in plan
    assert re.search(r'^\.venv/bin/python -m pip install -e "\.\[dev\]" *$', plan, re.M), plan
    # With a wheel in it: both the torch script and the project's install take the wheelhouse only.
    (wheelhouse / "dummy-0-py3-none-any.whl").write_bytes(b"")
    plan = make_n("install", f"WHEELHOUSE={wheelhouse}")
    assert f'PIP_OFFLINE="{offline}" bash scripts/install_torch.sh .venv/bin/python' in plan
    assert f'.venv/bin/python -m pip install -e ".[dev]" {offline}' in plan


def test_make_wheelhouse_downloads_torch_the_project_and_dev(tmp_path):
    wheelhouse = tmp_path / "wh"
    plan = make_n("wheelhouse", f"WHEELHOUSE={wheelhouse}")
    assert f"bash scripts/install_torch.sh .venv/bin/python {wheelhouse}" in plan
    assert f"-m pip wheel --no-deps -w {wheelhouse} ." in plan
    assert re.search(rf'-m pip download -d {wheelhouse} .*-c {wheelhouse}/torch-pin.txt "\.\[dev\]"', plan), plan
