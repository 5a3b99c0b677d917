"""Per-token log-probabilities and entropies without a full-vocabulary float32 copy.

The naive ``logits.float().log_softmax(-1).gather(...)`` builds three tensors of the size of the
logits in float32 (the cast, the log-softmax and, for the entropy, its ``exp``), and autograd keeps
them for the backward pass. On a real model that is the largest tensor of a training step: 16
completions x 384 tokens x a 151,936-token vocabulary is 3.7 GB per copy.

:func:`selective_log_softmax` instead walks the rows in chunks: for each chunk it computes the
log-sum-exp in float32 and picks the target's logit. Its backward pass recomputes each chunk's
softmax from the logits (which the model produced anyway) rather than storing it. Peak extra
memory is one chunk, whatever the batch.
"""

from __future__ import annotations

import torch

CHUNK_ELEMENTS = 2**24  # float32 values per chunk: 64 MB


def _chunk_rows(vocab: int, chunk_elements: int) -> int:
    return max(1, chunk_elements // max(1, vocab))


class _SelectiveLogSoftmax(torch.autograd.Function):
    """``log_softmax(logits / T)[index]`` row by row, with a recomputing backward."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, index: torch.Tensor, temperature: float, chunk_rows: int) -> torch.Tensor:
        rows = logits.shape[0]
        out = torch.empty(rows, dtype=torch.float32, device=logits.device)
        lse = torch.empty(rows, dtype=torch.float32, device=logits.device)
        for start in range(0, rows, chunk_rows):
            block = logits[start : start + chunk_rows].float() / temperature
            lse[start : start + chunk_rows] = torch.logsumexp(block, dim=-1)
            picked = block.gather(-1, index[start : start + chunk_rows, None]).squeeze(-1)
            out[start : start + chunk_rows] = picked - lse[start : start + chunk_rows]
        ctx.save_for_backward(logits, index, lse)
        ctx.temperature, ctx.chunk_rows = temperature, chunk_rows
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        logits, index, lse = ctx.saved_tensors
        temperature, chunk_rows = ctx.temperature, ctx.chunk_rows
        grad = torch.empty_like(logits)
        grad_out = grad_out.float()
        for start in range(0, logits.shape[0], chunk_rows):
            end = start + chunk_rows
            probs = torch.exp(logits[start:end].float() / temperature - lse[start:end, None])
            # d logp_target / d z_j = 1[j = target] - p_j, and z = logits / T
            block = probs.mul_(-grad_out[start:end, None])
            block.scatter_add_(-1, index[start:end, None], grad_out[start:end, None])
            grad[start:end] = (block / temperature).to(grad.dtype)
        return grad, None, None, None


def selective_log_softmax(
    logits: torch.Tensor, index: torch.Tensor, temperature: float = 1.0, chunk_elements: int = CHUNK_ELEMENTS
) -> torch.Tensor:
    """``log_softmax(logits / temperature, -1).gather(-1, index)`` in float32, chunked over rows.

    ``logits`` is (..., V) in any float dtype and ``index`` (...) holds token ids; the result has
    ``index``'s shape. Values and gradients equal the naive formula's (a test checks both).
    """
    if logits.shape[:-1] != index.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and index {tuple(index.shape)} do not match")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    vocab = logits.shape[-1]
    flat = _SelectiveLogSoftmax.apply(
        logits.reshape(-1, vocab), index.reshape(-1), float(temperature), _chunk_rows(vocab, chunk_elements)
    )
    return flat.view(index.shape)


@torch.no_grad()
def token_entropy(logits: torch.Tensor, temperature: float = 1.0, chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """Entropy (nats) of ``softmax(logits / temperature)`` at every position, chunked; no gradient.

    ``H = logsumexp(z) - sum(p * z)``, one chunk of rows at a time in float32.
    """
    vocab = logits.shape[-1]
    flat = logits.reshape(-1, vocab)
    out = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
    step = _chunk_rows(vocab, chunk_elements)
    for start in range(0, flat.shape[0], step):
        block = flat[start : start + step].float() / temperature
        lse = torch.logsumexp(block, dim=-1, keepdim=True)
        probs = torch.exp(block - lse)
        out[start : start + step] = lse.squeeze(-1) - (probs * block).sum(-1)
    return out.view(logits.shape[:-1])


def completion_logits(
    model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
) -> torch.Tensor:
    """The logits (B, T, V) that predict each completion token, in the model's dtype.

    Prompts are left-padded; positions count real tokens only, so a padded row sees the positions it
    would see alone. Only the last ``T + 1`` positions go through the LM head (``logits_to_keep``):
    the prompt's logits are never needed.
    """
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention = torch.cat([prompt_mask, completion_mask], dim=1)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    width = completion_ids.shape[1]
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                   logits_to_keep=width + 1, use_cache=False).logits
    return logits[:, -width - 1 : -1, :]


def completion_logps(
    model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
    completion_mask: torch.Tensor, temperature: float = 1.0, with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (B, T) of the completion under ``model``, and optionally the entropies.

    Logits are divided by the sampling ``temperature`` (as TRL does) so that the log-probs are those
    of the distribution the completions were drawn from; ``temperature=0`` (greedy) counts as 1.
    """
    logits = completion_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask)
    temperature = temperature if temperature > 0 else 1.0
    logps = selective_log_softmax(logits, completion_ids, temperature)
    entropy = token_entropy(logits, temperature) if with_entropy else None
    return logps, entropy


def per_token_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(policy || reference), per token: ``e^(ref-p) - (ref-p) - 1 >= 0``."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1
