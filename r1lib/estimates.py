"""Estimates of what a run needs (memory, time per step) before it starts, and the device facts they
rest on, decided once: precision and attention kernel.

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


def attention_implementation(info: DeviceInfo, dtype: str = "bfloat16") -> str:
    """``"flash_attention_2"`` where it runs (CUDA 8.0+, the package installed, fp16/bf16 weights),
    else PyTorch's ``"sdpa"``."""
    if info.real_bf16 and dtype in ("float16", "bfloat16"):
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            return "sdpa"
        return "flash_attention_2"
    return "sdpa"


@dataclass(frozen=True)
class ModelShape:
    """The sizes that decide a causal LM's memory: parameters and the transformer's widths."""

    parameters: float
    hidden: int
    layers: int
    intermediate: int
    vocab: int

    def __post_init__(self) -> None:
        for field in ("parameters", "hidden", "layers", "intermediate", "vocab"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"ModelShape.{field} must be a positive number, got {value!r}")

    @classmethod
    def of(cls, model) -> ModelShape:
        """The shape of a loaded model (a ``transformers`` model, or a PEFT model around one)."""
        config = model.config
        parameters = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        return cls(parameters, config.hidden_size, config.num_hidden_layers,
                   getattr(config, "intermediate_size", None) or 4 * config.hidden_size, config.vocab_size)


# Published configurations (config.json on the hub), so that an estimate needs no download.
KNOWN_SHAPES = {
    "Qwen/Qwen2.5-0.5B": ModelShape(494_032_768, 896, 24, 4864, 151_936),
    "Qwen/Qwen2.5-1.5B": ModelShape(1_543_714_304, 1536, 28, 8960, 151_936),
    "Qwen/Qwen2.5-3B": ModelShape(3_085_938_688, 2048, 36, 11_008, 151_936),
}

# Saved-for-backward elements per token, measured on the CPU in float32 (tests/helpers/peak_memory.py
# fits them over 16 Qwen2 shapes, hidden 128-896, vocab 109-32,000; every shape within 15%):
ACTIVATIONS_PER_LAYER = (11.5, 4.0)  # elements per token and layer: 11.5 * hidden + 4 * intermediate
ACTIVATIONS_OUTSIDE_LAYERS = 36.0  # elements per token times hidden: embeddings, final norm, rotary tables
LOGITS_WHEN_TRAINING = 2.0  # the completion's logits and their gradient, vocab-wide per completion token


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
        """The parts, e.g. ``weights 0.92 GiB, gradients 35 MiB, ...``."""
        parts = {"weights": self.weights, "gradients": self.gradients, "optimizer": self.optimizer,
                 "activations": self.activations, "logits": self.logits}
        return ", ".join(f"{k} {format_bytes(v)}" for k, v in parts.items() if v)


def format_bytes(count: float) -> str:
    """``1.23 GiB`` from a GiB up, else ``456 MiB``."""
    return f"{count / GIB:.2f} GiB" if count >= GIB else f"{count / 2**20:.0f} MiB"


def estimate_memory(
    shape: ModelShape, batch: int, prompt_length: int, completion_length: int, *, training: bool = True,
    weight_bytes: int = 4, activation_bytes: int = 4, trainable: float | None = None,
    gradient_checkpointing: bool = False, reference_model: bool = False,
) -> MemoryEstimate:
    """Peak memory of a training step (or, without ``training``, a scoring forward pass) on ``batch``
    sequences of ``prompt_length + completion_length`` tokens whose completion is scored.

    * weights: the frozen parameters in ``weight_bytes`` (2 for a model loaded in fp16/bf16), the
      ``trainable`` ones (all by default; a LoRA adapter's with LoRA) in float32, plus a frozen
      reference copy with ``reference_model`` (GRPO's KL term without LoRA);
    * gradients (float32) and AdamW's two float32 moments for the trainable parameters;
    * activations saved for the backward pass, with the per-token constants above; with
      ``gradient_checkpointing`` only each layer's input is kept, plus one layer recomputed;
    * logits: ``completion_length * vocab`` per sequence, twice when training (values and gradient).

    The constants were measured on the CPU in float32. Under fp16/bf16 autocast pass
    ``activation_bytes=2``: that figure is an estimate (norms and softmax stay in float32), not a
    measurement, and CUDA's caching allocator adds fragmentation on top.
    """
    for name, value in (("batch", batch), ("prompt_length", prompt_length), ("completion_length", completion_length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if name != "prompt_length" else 0):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    trainable = (shape.parameters if training else 0) if trainable is None else trainable
    if not 0 <= trainable <= shape.parameters:
        raise ValueError(f"trainable must be between 0 and the {shape.parameters:.0f} parameters, got {trainable}")
    tokens = batch * (prompt_length + completion_length)
    frozen = shape.parameters - trainable
    weights = frozen * weight_bytes + trainable * 4 + (shape.parameters * weight_bytes if reference_model else 0)
    per_layer = ACTIVATIONS_PER_LAYER[0] * shape.hidden + ACTIVATIONS_PER_LAYER[1] * shape.intermediate
    outside = ACTIVATIONS_OUTSIDE_LAYERS * shape.hidden
    if not training:
        return MemoryEstimate(weights, 0.0, 0.0, tokens * 4 * shape.hidden * activation_bytes,
                              batch * completion_length * shape.vocab * activation_bytes)
    layers_kept = tokens * (shape.layers * shape.hidden + per_layer) if gradient_checkpointing else tokens * shape.layers * per_layer
    activations = (layers_kept + tokens * outside) * activation_bytes
    logits = LOGITS_WHEN_TRAINING * batch * completion_length * shape.vocab * activation_bytes
    return MemoryEstimate(weights, trainable * 4, trainable * 8, activations, logits)


# Peak dense half-precision FLOP/s and memory bandwidth (bytes/s), from the vendors' data sheets.
GPU_SPEEDS = {"T4": (65e12, 320e9), "L4": (121e12, 300e9), "A10": (125e12, 600e9), "A100": (312e12, 1.6e12),
              "H100": (989e12, 3.35e12), "H200": (989e12, 4.8e12)}
TRAINING_UTILISATION = 0.3  # a typical share of the peak that small-batch training reaches
SECONDS_PER_DECODE_STEP_AND_LAYER = 8e-4  # Python and kernel launches bound token-by-token decoding of a small model
# Colab's free GPU, for estimates made on any machine (the plans of r1lib.course.predecessors).
COLAB_T4 = DeviceInfo("cuda", "Tesla T4", 15 * GIB, (7, 5))


def estimate_step_seconds(
    shape: ModelShape, info: DeviceInfo, batch: int, prompt_length: int, completion_length: int,
    generate: bool = True, weight_bytes: int = 2,
) -> float | None:
    """A rough time for one step: sampling ``completion_length`` tokens for ``batch`` rows (bounded by
    memory bandwidth or kernel launches), then a forward and backward pass (6 FLOPs per parameter and
    token at 30% of the GPU's peak). ``None`` for a device not in :data:`GPU_SPEEDS` (and the CPU).
    It is an estimate from FLOPs and bandwidth; the notebooks print it before a run so that a
    reader can compare it with the time the progress bar shows.
    """
    if info.kind != "cuda":
        return None
    words = info.name.upper().replace("-", " ").split()
    speeds = next((GPU_SPEEDS[k] for k in GPU_SPEEDS if k in words), None)  # whole words: "A10" is not an A100
    if speeds is None:
        return None
    flops, bandwidth = speeds
    tokens = batch * (prompt_length + completion_length)
    train = 6 * shape.parameters * tokens / (flops * TRAINING_UTILISATION)
    if not generate:
        return train
    per_token = max(shape.parameters * weight_bytes / bandwidth, SECONDS_PER_DECODE_STEP_AND_LAYER * shape.layers)
    prefill = 2 * shape.parameters * batch * prompt_length / (flops * TRAINING_UTILISATION)
    return train + prefill + completion_length * per_token


@dataclass(frozen=True)
class StepShape:
    """The largest forward/backward pass of one optimizer step, as a trainer sees it."""

    batch: int  # sequences per forward/backward pass
    prompt_length: int  # tokens before the scored part (0 when every token is scored, as in SFT)
    completion_length: int  # scored tokens (GRPO's completions, SFT's whole sequence)
    generates: bool = False  # whether the step samples its completions first (GRPO, on-policy distillation)
    other_models_bytes: float = 0.0  # frozen models held beside the trained one (reference, teacher)


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
            f"this run needs about {format_bytes(estimate.total)} ({estimate.describe()}) but {info.name} has "
            f"{info.total_memory / GIB:.1f} GiB: {advice}{' (' + settings + ')' if settings else ''}"
        )
