"""What the device can do, decided once: precision, attention kernel, and how much memory a run needs.

Colab's free T4 is the course's GPU, and it has traps:

* ``torch.cuda.is_bf16_supported()`` says True on a T4 (bf16 is *emulated*, slowly); real bf16
  needs compute capability 8.0 (Ampere) or newer. :func:`mixed_precision` decides from the
  capability: bf16 from 8.0, fp16 with a gradient scaler below, float32 on the CPU.
* FlashAttention 2 needs 8.0 too; :func:`attention_implementation` picks PyTorch's SDPA otherwise.
* 15 GB go fast: per-token log-probabilities over Qwen's 151,936-token vocabulary are the largest
  tensor of a GRPO step. :func:`estimate_memory` adds up weights, gradients, optimizer state,
  activations and logits before a run starts, and :func:`check_fits` stops with a message that
  names the setting to change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GIB = 2**30


@dataclass(frozen=True)
class DeviceInfo:
    """The accelerator a run will use (or the CPU)."""

    kind: str  # "cuda", "mps" or "cpu"
    name: str
    total_memory: int | None  # bytes; None on the CPU
    compute_capability: tuple[int, int] | None

    @property
    def real_bf16(self) -> bool:
        """bf16 in hardware: CUDA compute capability 8.0 or newer (not a T4's emulation)."""
        return self.compute_capability is not None and self.compute_capability >= (8, 0)


def device_info(device: str | torch.device | None = None) -> DeviceInfo:
    """What ``device`` (default: the first CUDA device, else the CPU) is."""
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return DeviceInfo("cuda", properties.name, properties.total_memory, (properties.major, properties.minor))
    if device.type == "mps":
        return DeviceInfo("mps", "Apple GPU", None, None)
    return DeviceInfo("cpu", "CPU", None, None)


def mixed_precision(info: DeviceInfo) -> str:
    """``"bf16"`` with hardware bf16, ``"fp16"`` on older CUDA GPUs (T4: with a gradient scaler), else ``"fp32"``."""
    if info.kind != "cuda":
        return "fp32"
    return "bf16" if info.real_bf16 else "fp16"


def attention_implementation(info: DeviceInfo) -> str:
    """``"flash_attention_2"`` where it runs (CUDA 8.0+ and the package installed), else PyTorch's ``"sdpa"``."""
    if info.real_bf16:
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            return "sdpa"
        return "flash_attention_2"
    return "sdpa"


@dataclass
class MemoryEstimate:
    """Bytes a step needs, by kind."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits

    @property
    def total_gib(self) -> float:
        return self.total / GIB

    def describe(self) -> str:
        parts = {"weights": self.weights, "gradients": self.gradients, "optimizer": self.optimizer,
                 "activations": self.activations, "logits": self.logits}
        return ", ".join(f"{k} {v / GIB:.2f}" for k, v in parts.items() if v) + " GiB"


def estimate_memory(
    parameters: float, batch: int, sequence: int, vocab: int, training: bool = True, dtype_bytes: int = 2,
    trainable: float | None = None, hidden: int | None = None, layers: int | None = None,
    gradient_checkpointing: bool = False, mixed_precision_master: bool = False,
) -> MemoryEstimate:
    """Peak memory of one forward (and backward, with ``training``) pass.

    * weights: ``parameters * dtype_bytes``;
    * gradients and AdamW's two moments for the ``trainable`` parameters (all of them by default;
      a LoRA adapter's with LoRA), in the weights' dtype for gradients and float32 for the moments
      (plus a float32 master copy with ``mixed_precision_master``);
    * activations kept for the backward pass: about ``34 * hidden`` bytes per token and layer in half
      precision (Korthikanti et al.), ``2 * hidden`` with gradient checkpointing; without ``hidden``
      and ``layers`` they are derived from the parameter count assuming ``12 * layers * hidden^2``
      parameters and 24 layers;
    * logits: ``batch * sequence * vocab`` in the weights' dtype, twice when training (the logits and
      their gradient; the selective log-softmax of :mod:`r1lib.logprobs` adds only a 64 MB chunk).
    """
    if min(parameters, batch, sequence, vocab) <= 0:
        raise ValueError("parameters, batch, sequence and vocab must be positive")
    trainable = parameters if trainable is None else trainable
    if hidden is None or layers is None:
        layers = layers or 24
        hidden = hidden or max(64, int((parameters / (12 * layers)) ** 0.5))
    tokens = batch * sequence
    weights = parameters * dtype_bytes
    gradients = trainable * dtype_bytes if training else 0.0
    optimizer = trainable * (8 + (4 if mixed_precision_master else 0)) if training else 0.0
    per_token_layer = (2 if gradient_checkpointing else 34) * hidden * dtype_bytes / 2
    activations = tokens * layers * per_token_layer if training else tokens * hidden * dtype_bytes * 4
    logits = tokens * vocab * dtype_bytes * (2 if training else 1) + 2**26
    return MemoryEstimate(weights, gradients, optimizer, activations, logits)


def check_fits(estimate: MemoryEstimate, info: DeviceInfo, headroom: float = 0.9, settings: str = "") -> None:
    """Raise ``MemoryError`` when ``estimate`` exceeds ``headroom`` of the device's memory, saying what to lower."""
    if info.total_memory is None:
        return
    limit = info.total_memory * headroom
    if estimate.total > limit:
        biggest = max(("activations", estimate.activations), ("logits", estimate.logits),
                      ("optimizer state", estimate.optimizer), key=lambda item: item[1])[0]
        advice = {
            "activations": "turn on gradient checkpointing or lower per_device_train_batch_size",
            "logits": "lower per_device_train_batch_size or max_completion_length (the logits grow with both)",
            "optimizer state": "train a LoRA adapter instead of all weights",
        }[biggest]
        raise MemoryError(
            f"this run needs about {estimate.total_gib:.1f} GiB ({estimate.describe()}) but {info.name} has "
            f"{info.total_memory / GIB:.1f} GiB: {advice}{' (' + settings + ')' if settings else ''}"
        )
