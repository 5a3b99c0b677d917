"""A lean incremental decoder for Llama-family models (Qwen2, Llama), used by :mod:`r1lib.rollout`.

Sampling a small model spends most of its time in per-call overhead, not in arithmetic: building
attention masks, growing the KV cache by concatenation, and running ``q``/``k``/``v`` (and
``gate``/``up``) as separate matrix products. This decoder reads the weights of a loaded
``transformers`` model once, fuses those projections, preallocates the KV cache for the whole
rollout, and runs the same computation with fewer, larger operations. The numbers are the
model's own: the rollout tests check it against ``model.generate`` token for token.

Models it cannot reproduce exactly (other architectures, RoPE scaling, sliding windows, LoRA
adapters, modules with forward hooks) are refused by :func:`supports`, and the rollout falls back
to the model's own forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SUPPORTED_TYPES = ("qwen2", "llama")


def supports(model) -> bool:
    """True when :class:`IncrementalDecoder` reproduces ``model`` exactly."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in SUPPORTED_TYPES or hasattr(model, "peft_config"):
        return False
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default" or getattr(config, "use_sliding_window", False):
        return False
    if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "attn_logit_softcapping", None):
        return False
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not all(hasattr(layer, "self_attn") and hasattr(layer, "mlp") for layer in layers):
        return False
    # Hooks change what a module computes (tests, interpretability tools); only the real forward honours them.
    return not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@dataclass
class _Layer:
    norm1: torch.Tensor
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor | None
    o_weight: torch.Tensor
    o_bias: torch.Tensor | None
    norm2: torch.Tensor
    gate_up_weight: torch.Tensor
    down_weight: torch.Tensor


class IncrementalDecoder:
    """Prefill a left-padded batch, then decode one token per call, with a preallocated KV cache."""

    def __init__(self, model, batch_size: int, max_length: int) -> None:
        if not supports(model):
            raise ValueError("IncrementalDecoder supports plain Qwen2/Llama models only; use the model's forward")
        config = model.config
        self.eps = config.rms_norm_eps
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.scale = self.head_dim ** -0.5
        self.embed = model.model.embed_tokens.weight
        self.final_norm = model.model.norm.weight
        self.lm_head = model.lm_head.weight
        self.layers = [self._read(layer) for layer in model.model.layers]
        param = self.embed
        rotary = model.model.rotary_emb
        angles = torch.arange(max_length, device=param.device).float()[:, None] * rotary.inv_freq.float()[None, :]
        angles = torch.cat([angles, angles], dim=-1)
        scaling = float(getattr(rotary, "attention_scaling", 1.0))
        # A table of cos/sin per position, built once: positions never exceed max_length.
        half = angles.shape[-1] // 2
        sign = torch.cat([-torch.ones(half), torch.ones(half)]).to(param.device)
        self.cos_table = (angles.cos() * scaling).to(param.dtype)
        # rotate_half(x) * sin == roll(x, half) * (sign * sin): one roll replaces a negate and a concatenation
        self.sin_table = (angles.sin() * scaling * sign).to(param.dtype)
        shape = (batch_size, self.kv_heads, max_length, self.head_dim)
        self.keys = [torch.empty(shape, dtype=param.dtype, device=param.device) for _ in self.layers]
        self.values = [torch.empty(shape, dtype=param.dtype, device=param.device) for _ in self.layers]
        self.key_mask = torch.zeros(batch_size, max_length, dtype=torch.bool, device=param.device)
        self.length = 0

    @staticmethod
    def _read(layer) -> _Layer:
        attention, mlp = layer.self_attn, layer.mlp
        projections = [attention.q_proj, attention.k_proj, attention.v_proj]
        biases = [p.bias for p in projections]
        return _Layer(
            norm1=layer.input_layernorm.weight,
            qkv_weight=torch.cat([p.weight for p in projections]).detach(),
            qkv_bias=torch.cat(biases).detach() if all(b is not None for b in biases) else None,
            o_weight=attention.o_proj.weight.detach(),
            o_bias=attention.o_proj.bias.detach() if attention.o_proj.bias is not None else None,
            norm2=layer.post_attention_layernorm.weight,
            gate_up_weight=torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).detach(),
            down_weight=mlp.down_proj.weight.detach(),
        )

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return F.rms_norm(x, weight.shape, weight, self.eps)  # one fused op; same formula
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return weight * (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype)

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), signed_sin)

    def repeat(self, times: int) -> None:
        """Repeat every row ``times`` times (row ``i`` becomes rows ``i*times .. i*times+times-1``).

        Prefill each distinct prompt once, then repeat it for its G completions: the prompt pass
        is the costliest call of a rollout, and its result is the same for every copy.
        """
        self.keys = [k.repeat_interleave(times, dim=0) for k in self.keys]
        self.values = [v.repeat_interleave(times, dim=0) for v in self.values]
        self.key_mask = self.key_mask.repeat_interleave(times, dim=0)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` of the batch (indices into the current batch), e.g. those still generating."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]
        self.key_mask = self.key_mask.index_select(0, rows)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Append ``input_ids`` (B, T) to the cache and return the last position's logits (B, V).

        ``attention_mask`` (B, T) marks the real tokens among the new ones (0 for left padding).
        """
        batch, steps = input_ids.shape
        start, end = self.length, self.length + steps
        self.key_mask[:, start:end] = attention_mask.bool()
        keys_valid = self.key_mask[:, :end]
        if steps == 1:
            mask = keys_valid[:, None, None, :]
        else:  # causal over the new tokens; a padding query sees itself so its row stays finite
            causal = torch.ones(steps, end, dtype=torch.bool, device=input_ids.device).tril(diagonal=start)
            itself = torch.zeros_like(causal)
            itself[torch.arange(steps), torch.arange(start, end)] = True
            mask = ((keys_valid[:, None, :] & causal) | itself)[:, None]
        hidden = F.embedding(input_ids.reshape(-1), self.embed)  # (B*T, hidden): 2-D so residual adds fuse into addmm
        cos, sin = self.cos_table[positions][:, :, None], self.sin_table[positions][:, :, None]  # (B, T, 1, D)
        q_size, rotated_heads = self.heads * self.head_dim, self.heads + self.kv_heads
        single_query = steps == 1 and self.kv_heads == self.heads
        if single_query:  # one additive bias for every layer and head: 0 where a key is visible, -inf elsewhere
            bias = torch.zeros(batch, self.heads, 1, end, dtype=hidden.dtype, device=hidden.device)
            bias = bias.masked_fill_(~mask, float("-inf")).view(batch * self.heads, 1, end)
        for i, layer in enumerate(self.layers):
            x = self._norm(hidden, layer.norm1)
            qkv = F.linear(x, layer.qkv_weight, layer.qkv_bias).view(batch, steps, -1, self.head_dim)
            qk = self._rotate(qkv[:, :, :rotated_heads], cos, sin).transpose(1, 2)  # q and k heads in one go
            q, k = qk[:, : self.heads], qk[:, self.heads :]
            self.keys[i][:, :, start:end] = k
            self.values[i][:, :, start:end] = qkv[:, :, rotated_heads:].transpose(1, 2)
            keys, values = self.keys[i][:, :, :end], self.values[i][:, :, :end]
            if single_query:  # scale, mask and q @ k^T in one batched op beat SDPA's dispatch for one query
                flat = batch * self.heads
                scores = torch.baddbmm(bias, q.reshape(flat, 1, self.head_dim),
                                       keys.reshape(flat, end, self.head_dim).transpose(1, 2), alpha=self.scale)
                attended = (torch.softmax(scores, dim=-1) @ values.reshape(flat, end, self.head_dim)).view(
                    batch, self.heads, 1, self.head_dim)
            else:
                attended = F.scaled_dot_product_attention(
                    q, keys, values, attn_mask=mask, scale=self.scale, enable_gqa=self.kv_heads != self.heads
                )
            attended = attended.transpose(1, 2).reshape(batch * steps, q_size)
            if layer.o_bias is None:
                hidden = torch.addmm(hidden, attended, layer.o_weight.t())
            else:
                hidden = hidden + F.linear(attended, layer.o_weight, layer.o_bias)
            gate, up = F.linear(self._norm(hidden, layer.norm2), layer.gate_up_weight).chunk(2, dim=-1)
            hidden = torch.addmm(hidden, F.silu(gate) * up, layer.down_weight.t())
        self.length = end
        return F.linear(self._norm(hidden.view(batch, steps, -1)[:, -1], self.final_norm), self.lm_head)
