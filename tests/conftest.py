"""Shared fixtures: the tiny tokenizer, a small random model, and the shipped tiny base."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("R1LIB_PROFILE", "smoke")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test that tried the hub would fail loudly
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread per worker, also in the subprocesses and notebook kernels the tests start: two
    # workers with two threads each on two cores would slow every test several times over.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(min(2, torch.get_num_threads()))

from r1lib.profiles import TINY_BASE  # noqa: E402
from r1lib.tiny.model import TinyModelConfig, build_tiny_model  # noqa: E402
from r1lib.tiny.tokenizer import build_tiny_tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture()
def random_model(tiny_tokenizer):
    """A randomly initialised, very small Qwen2 model (fresh for each test)."""
    return build_tiny_model(tiny_tokenizer, TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), seed=0)


@pytest.fixture(scope="session")
def tiny_base_path():
    if not (TINY_BASE / "model.safetensors").exists():
        pytest.fail(f"shipped tiny base missing at {TINY_BASE}")
    return TINY_BASE
