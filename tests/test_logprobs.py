"""Selective log-softmax and chunked entropy: the same values and gradients as the naive formulas,
without the full-vocabulary float32 copies."""

import pytest
import torch

from r1lib.logprobs import completion_logps, selective_log_softmax, token_entropy


def naive(logits, index, temperature=1.0):
    return (logits.double() / temperature).log_softmax(-1).gather(-1, index.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("chunk", [7, 10**9])  # several chunks (rows % 7 != 0) and one
def test_values_and_gradients_match_the_naive_formula(temperature, chunk):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 11, 50, generator=generator, dtype=torch.float64) * 3
    index = torch.randint(0, 50, (3, 11), generator=generator)
    mine = logits.clone().requires_grad_(True)
    theirs = logits.clone().requires_grad_(True)
    ours = selective_log_softmax(mine, index, temperature, chunk_elements=chunk * 50)
    reference = naive(theirs.double(), index, temperature)
    assert ours.dtype == torch.float32 and ours.shape == index.shape
    assert torch.allclose(ours.double(), reference, atol=1e-6)
    weights = torch.randn(3, 11, generator=generator, dtype=torch.float64)
    (ours.double() * weights).sum().backward()
    (reference * weights).sum().backward()
    assert torch.allclose(mine.grad, theirs.grad, atol=1e-6)


def test_half_precision_logits_keep_their_dtype_in_the_gradient():
    logits = (torch.randn(4, 6, 32) * 2).to(torch.bfloat16).requires_grad_(True)
    index = torch.randint(0, 32, (4, 6))
    out = selective_log_softmax(logits, index, chunk_elements=64)
    assert torch.allclose(out.double(), naive(logits.detach(), index), atol=1e-5)
    out.sum().backward()
    assert logits.grad.dtype == torch.bfloat16


def test_entropy_matches_and_is_bounded():
    logits = torch.randn(5, 9, 40) * 4
    probs = logits.softmax(-1)
    expected = -(probs * probs.log()).sum(-1)
    assert torch.allclose(token_entropy(logits, chunk_elements=120), expected, atol=1e-5)
    assert torch.allclose(token_entropy(torch.zeros(2, 40)), torch.full((2,), torch.log(torch.tensor(40.0))), atol=1e-6)
    assert not token_entropy(logits.requires_grad_(True)).requires_grad


def test_completion_logps_on_a_model_equals_the_full_forward(random_model, tiny_tokenizer):
    prompts = tiny_tokenizer(["<|user|>3+4<|assistant|>", "<|user|>1+1+1+1<|assistant|>"], return_tensors="pt",
                             padding=True, padding_side="left", add_special_tokens=False)
    completion = torch.tensor([[30, 31, 1, 0], [40, 41, 42, 1]])
    completion_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    logps, entropy = completion_logps(random_model, prompts["input_ids"], prompts["attention_mask"], completion,
                                      completion_mask, temperature=0.8, with_entropy=True)
    ids = torch.cat([prompts["input_ids"], completion], 1)
    mask = torch.cat([prompts["attention_mask"], completion_mask], 1)
    full = random_model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)).logits
    width = completion.shape[1]
    expected = naive(full[:, -width - 1 : -1], completion, 0.8)
    assert torch.allclose(logps.double(), expected, atol=1e-5)
    scaled = (full[:, -width - 1 : -1] / 0.8).softmax(-1)
    assert torch.allclose(entropy, -(scaled * scaled.log()).sum(-1), atol=1e-4)


def test_bad_shapes_and_temperature_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        selective_log_softmax(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        selective_log_softmax(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long), temperature=0.0)
