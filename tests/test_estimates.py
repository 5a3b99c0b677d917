"""Device decisions and the memory estimate, checked against measured peak memory on the CPU."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from r1lib.estimates import (
    GIB, KNOWN_SHAPES, DeviceInfo, ModelShape, attention_implementation, check_fits, estimate_memory,
    estimate_step_seconds, mixed_precision,
)
from r1lib.profiles import TINY_BASE, gpu_precision

PEAK_MEMORY = Path(__file__).parent / "helpers" / "peak_memory.py"
T4 = DeviceInfo("cuda", "Tesla T4", 15 * GIB, (7, 5))
A100 = DeviceInfo("cuda", "NVIDIA A100-SXM4-40GB", 40 * GIB, (8, 0))
CPU = DeviceInfo("cpu", "CPU", None, None)


def test_precision_follows_compute_capability_not_emulated_bf16():
    assert mixed_precision(T4) == "fp16" and gpu_precision(T4) == ("float16", {"fp16": True})
    assert mixed_precision(A100) == "bf16" and gpu_precision(A100) == ("bfloat16", {"bf16": True})
    assert mixed_precision(CPU) == "fp32"
    assert attention_implementation(T4) == "sdpa"  # no FlashAttention 2 on Turing


def tiny_shape() -> tuple[int, ...]:
    config = json.loads((TINY_BASE / "config.json").read_text())
    return (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
            config["num_key_value_heads"], config["intermediate_size"], config["vocab_size"])


@pytest.mark.parametrize("name, shape, batch, prompt, completion", [
    ("tiny base", tiny_shape(), 64, 32, 96),
    ("random Qwen2, 32k vocabulary", (256, 4, 4, 2, 1376, 32000), 8, 64, 192),
])
def test_memory_estimate_is_within_20_percent_of_the_measured_peak(name, shape, batch, prompt, completion):
    hidden, layers, heads, kv_heads, intermediate, vocab = shape
    out = subprocess.run([sys.executable, str(PEAK_MEMORY), *map(str, (*shape, batch, prompt, completion))],
                         capture_output=True, text=True, check=True)
    measured = json.loads(out.stdout.splitlines()[-1])
    estimate = estimate_memory(ModelShape(measured["parameters"], hidden, layers, intermediate, vocab),
                               batch, prompt, completion)
    ratio = estimate.total / measured["peak_bytes"]
    print(f"{name}: estimated {estimate.total / 2**20:.0f} MiB, measured {measured['peak_bytes'] / 2**20:.0f} MiB")
    assert 0.8 <= ratio <= 1.2, f"{name}: estimate/measured = {ratio:.2f} ({estimate.describe()})"


def test_estimate_parts_add_up_by_hand():
    shape = ModelShape(1000, 10, 2, 40, 50)
    e = estimate_memory(shape, batch=2, prompt_length=3, completion_length=5, trainable=100, weight_bytes=2)
    assert e.weights == 900 * 2 + 100 * 4 and e.gradients == 400 and e.optimizer == 800
    tokens = 2 * 8
    assert e.activations == (tokens * 2 * (11.5 * 10 + 4 * 40) + tokens * 36 * 10) * 4
    assert e.logits == 2 * 2 * 5 * 50 * 4
    checkpointed = estimate_memory(shape, 2, 3, 5, trainable=100, weight_bytes=2, gradient_checkpointing=True)
    assert checkpointed.activations < e.activations


def test_a_run_too_big_for_a_t4_stops_naming_the_setting():
    qwen = KNOWN_SHAPES["Qwen/Qwen2.5-0.5B"]
    full = estimate_memory(qwen, batch=16, prompt_length=200, completion_length=384, weight_bytes=2, activation_bytes=2)
    with pytest.raises(MemoryError, match="Tesla T4 has 15.0 GiB: .*per_device_train_batch_size"):
        check_fits(full, T4, settings="per_device_train_batch_size=16")
    lora = estimate_memory(qwen, batch=4, prompt_length=200, completion_length=384, weight_bytes=2,
                           activation_bytes=2, trainable=8.8e6, gradient_checkpointing=True)
    check_fits(lora, T4)  # a micro-batch of 4 with LoRA and checkpointing fits
    check_fits(full, CPU)  # no limit known on the CPU


def test_time_estimate_only_for_known_gpus():
    qwen = KNOWN_SHAPES["Qwen/Qwen2.5-0.5B"]
    t4 = estimate_step_seconds(qwen, T4, 16, 200, 384)
    a100 = estimate_step_seconds(qwen, A100, 16, 200, 384)
    a10 = estimate_step_seconds(qwen, DeviceInfo("cuda", "NVIDIA A10", 24 * GIB, (8, 6)), 16, 200, 384)
    assert t4 > a10 > a100 > 0  # "A10" must not match an A100
    assert estimate_step_seconds(qwen, CPU, 16, 200, 384) is None
    assert estimate_step_seconds(qwen, DeviceInfo("cuda", "Mystery GPU", GIB, (9, 0)), 16, 200, 384) is None


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="ModelShape.hidden must be a positive number"):
        ModelShape(1000, 0, 2, 40, 50)
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        estimate_memory(ModelShape(1000, 10, 2, 40, 50), 0, 3, 5)


def test_trainers_estimate_before_training_and_refuse_a_gpu_too_small(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "helpers"))
    from grpo_run import make_trainer

    trainer = make_trainer(str(tmp_path / "run"), 2)
    message = trainer.preflight(T4)
    assert message.startswith("GRPO: about ") and "GiB on Tesla T4" in message and "s per step" in message
    shape = trainer.step_shape()
    assert shape.generates and shape.batch == trainer.config.per_device_train_batch_size
    assert shape.prompt_length == trainer.longest_prompt > 0 and shape.other_models_bytes > 0  # the KL reference
    assert trainer.memory_estimate.total > 0
    tiny_gpu = DeviceInfo("cuda", "Tesla T4", 2**20, (7, 5))
    with pytest.raises(MemoryError, match=r"per_device_train_batch_size=\d+, sequence \d+\+\d+ tokens"):
        trainer.preflight(tiny_gpu)
