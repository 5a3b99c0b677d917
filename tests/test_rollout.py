import pytest
import torch

from r1lib.rollout import render_prompts, rollout


def shift_logit(model, token_id: int, amount: float) -> None:
    """Add ``amount`` to one token's logit at every position, via a hook on the output layer."""
    def hook(module, inputs, output):
        output[..., token_id] += amount
        return output

    model.lm_head.register_forward_hook(hook)


@pytest.mark.parametrize("fast", [True, False], ids=["incremental-decoder", "model-forward"])
def test_greedy_rollout_matches_generate_on_prompts_of_different_lengths(random_model, tiny_tokenizer, fast):
    prompts = render_prompts(tiny_tokenizer, [[{"role": "user", "content": q}] for q in ["1+2", "3+4+5+6+7+8", "9"]])
    out = rollout(random_model, tiny_tokenizer, prompts, num_generations=2, max_new_tokens=12, temperature=0.0, fast=fast)
    assert out.completion_ids.shape == (6, 12)
    for i, prompt in enumerate(prompts):
        ids = tiny_tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        reference = random_model.generate(
            ids, max_new_tokens=12, do_sample=False, eos_token_id=tiny_tokenizer.eos_token_id,
            pad_token_id=tiny_tokenizer.pad_token_id,
        )[0, ids.shape[1]:]
        for row in (2 * i, 2 * i + 1):
            mine = out.completion_ids[row][out.completion_mask[row].bool()]
            assert mine.tolist() == reference[: len(mine)].tolist()


def test_eos_ends_a_row_and_sets_masks(random_model, tiny_tokenizer):
    # Make EOS the most likely token everywhere: every row must stop after one token.
    shift_logit(random_model, tiny_tokenizer.eos_token_id, 100.0)
    prompts = render_prompts(tiny_tokenizer, [[{"role": "user", "content": "1+1"}]])
    out = rollout(random_model, tiny_tokenizer, prompts, num_generations=3, max_new_tokens=8, temperature=0.0)
    assert out.completion_ids.shape[1] == 1  # early stop: no wasted steps
    assert out.completion_lengths.tolist() == [1, 1, 1]
    assert not out.is_truncated.any()
    assert out.texts == ["", "", ""]


def test_truncation_flag_and_seeded_sampling(random_model, tiny_tokenizer):
    prompts = render_prompts(tiny_tokenizer, [[{"role": "user", "content": "5+5"}]])
    shift_logit(random_model, tiny_tokenizer.eos_token_id, -100.0)  # never stop
    a = rollout(random_model, tiny_tokenizer, prompts, 4, 6, 1.0, generator=torch.Generator().manual_seed(3))
    b = rollout(random_model, tiny_tokenizer, prompts, 4, 6, 1.0, generator=torch.Generator().manual_seed(3))
    assert a.is_truncated.all() and a.completion_mask.sum().item() == 24
    assert torch.equal(a.completion_ids, b.completion_ids)


def test_rollout_rejects_bad_arguments(random_model, tiny_tokenizer):
    with pytest.raises(ValueError, match="at least one prompt"):
        rollout(random_model, tiny_tokenizer, [])
    with pytest.raises(ValueError, match="top_p"):
        rollout(random_model, tiny_tokenizer, ["x"], top_p=0.0)


def test_incremental_decoder_reproduces_the_model_logits(random_model, tiny_tokenizer):
    """Prefill of a left-padded batch and each decode step give the model's own logits."""
    from r1lib.decoder import IncrementalDecoder, supports

    assert supports(random_model)
    encoded = tiny_tokenizer(["<|user|>1+2+3<|assistant|>", "<|user|>9<|assistant|>"], return_tensors="pt",
                             padding=True, padding_side="left", add_special_tokens=False)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    decoder = IncrementalDecoder(random_model, 2, ids.shape[1] + 3)
    mine = decoder.forward(ids, positions, mask)
    reference = random_model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
    torch.testing.assert_close(mine, reference, atol=1e-5, rtol=1e-5)
    extra = torch.tensor([[20], [21]])
    full_ids, full_mask = torch.cat([ids, extra], 1), torch.cat([mask, torch.ones(2, 1, dtype=mask.dtype)], 1)
    mine = decoder.forward(extra, positions[:, -1:] + 1, torch.ones(2, 1, dtype=mask.dtype))
    full_positions = (full_mask.cumsum(1) - 1).clamp(min=0)
    reference = random_model(input_ids=full_ids, attention_mask=full_mask, position_ids=full_positions).logits[:, -1]
    torch.testing.assert_close(mine, reference, atol=1e-5, rtol=1e-5)


def test_decoder_refuses_models_it_cannot_reproduce(random_model):
    from r1lib.decoder import IncrementalDecoder, supports

    random_model.lm_head.register_forward_hook(lambda m, i, o: o)
    assert not supports(random_model)
    with pytest.raises(ValueError, match="Qwen2/Llama"):
        IncrementalDecoder(random_model, 1, 4)


def test_fast_and_reference_paths_agree_when_rows_stop_at_different_steps(tiny_base_path):
    """Greedy decoding of the trained tiny base: some rows answer in 4 tokens, others reason for 30
    or get cut off, so the fast path drops finished rows mid-way; tokens, masks and flags must match."""
    from r1lib.models import ModelSpec, load_model_and_tokenizer
    from r1lib.tasks import ChainTask

    model, tokenizer = load_model_and_tokenizer(ModelSpec(str(tiny_base_path)))
    task = ChainTask()
    prompts = render_prompts(tokenizer, [task.prompt(e) for e in task.generate(12, seed=4)])
    prompts += render_prompts(tokenizer, [task.prompt(e) for e in task.generate(4, seed=5)], prefill="<think>")
    fast = rollout(model, tokenizer, prompts, 2, 20, temperature=0.0, fast=True)
    slow = rollout(model, tokenizer, prompts, 2, 20, temperature=0.0, fast=False)
    lengths = fast.completion_lengths
    assert lengths.min() < 8 and fast.is_truncated.any() and not fast.is_truncated.all()
    assert torch.equal(fast.completion_ids, slow.completion_ids) and fast.texts == slow.texts
    assert torch.equal(fast.completion_mask, slow.completion_mask) and torch.equal(fast.is_truncated, slow.is_truncated)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (runs wherever one exists)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_rollout_on_cuda_matches_the_cpu_and_generate(tiny_base_path, dtype):
    """The sampler's CUDA path: KV cache, prefill once per prompt, finished rows leaving the batch.
    In float32 it reproduces the CPU's tokens and CUDA's own generate; in fp16 (a T4) it runs and samples."""
    from r1lib.models import ModelSpec, load_model_and_tokenizer
    from r1lib.tasks import ChainTask

    model, tokenizer = load_model_and_tokenizer(ModelSpec(str(tiny_base_path)))
    task = ChainTask()
    prompts = render_prompts(tokenizer, [task.prompt(e) for e in task.generate(8, seed=4)], prefill="<think>")
    on_cpu = rollout(model, tokenizer, prompts, 2, 24, temperature=0.0)
    model = model.to("cuda", dtype)
    on_gpu = rollout(model, tokenizer, prompts, 2, 24, temperature=0.0)
    if dtype == torch.float32:
        assert on_gpu.texts == on_cpu.texts
    if dtype == torch.float32:  # in fp16, kernels of other shapes may flip near-tied argmaxes: compare fp32 only
        for i, prompt in enumerate(prompts):
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to("cuda")
            reference = model.generate(ids, max_new_tokens=24, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                       pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:].cpu()
            mine = on_gpu.completion_ids[2 * i][on_gpu.completion_mask[2 * i].bool()].cpu()
            assert mine.tolist() == reference[: len(mine)].tolist()
    else:
        assert (on_gpu.completion_lengths > 0).all() and len(on_gpu.texts) == 2 * len(prompts)
    sampled = rollout(model, tokenizer, prompts, 4, 24, temperature=1.0, generator=torch.Generator("cuda").manual_seed(0))
    assert sampled.completion_lengths.float().std() > 0  # sampling on the GPU varies


# ----------------------------------------------------------------------------- stop tokens and GQA


@pytest.mark.parametrize("fast", [True, False], ids=["incremental-decoder", "model-forward"])
@pytest.mark.parametrize("as_list", [True, False], ids=["eos-list", "eos-int"])
def test_rollout_stops_on_the_generation_configs_eos_ids(tiny_base_path, fast, as_list):
    """Chat models end a turn with a token listed only in ``generation_config.eos_token_id`` (often a
    list: Qwen-Instruct's <|im_end|>, Llama 3's <|eot_id|>). Here "</think>" plays that part: rows
    must stop on it, unmarked as truncated, exactly where ``model.generate`` stops."""
    from r1lib.models import ModelSpec, load_model_and_tokenizer
    from r1lib.tasks import ChainTask

    model, tokenizer = load_model_and_tokenizer(ModelSpec(str(tiny_base_path)))
    end_of_turn = tokenizer.convert_tokens_to_ids("</think>")
    assert end_of_turn != tokenizer.eos_token_id
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_of_turn] if as_list else end_of_turn
    task = ChainTask()
    prompts = render_prompts(tokenizer, [task.prompt(e) for e in task.generate(4, seed=4)], prefill="<think>")
    out = rollout(model, tokenizer, prompts, 1, 20, temperature=0.0, fast=fast)
    ended = [row for row in range(len(prompts)) if end_of_turn in out.completion_ids[row].tolist()]
    assert len(ended) >= 2  # the greedy tiny base closes its reasoning within 20 tokens for some prompts
    for row, prompt in enumerate(prompts):
        mine = out.completion_ids[row][out.completion_mask[row].bool()].tolist()
        if row in ended:
            assert mine[-1] == end_of_turn and mine.count(end_of_turn) == 1 and not out.is_truncated[row]
            assert "</think>" in out.texts[row] and "<answer>" not in out.texts[row]
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        # generate reads the same generation_config: it must stop at the same token
        reference = model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        assert mine == reference[0, ids.shape[1]:].tolist()


def gqa_model(tokenizer, kv_heads: int):
    """A random fp32 Qwen2 with 4 query heads sharing ``kv_heads`` key/value heads, as in real Qwen2.5.
    Weights are drawn wide (std 0.5) so that greedy decoding varies from token to token."""
    from transformers import Qwen2ForCausalLM

    from r1lib.tiny.model import TinyModelConfig, tiny_qwen2_config

    shape = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
    torch.manual_seed(0)
    config = tiny_qwen2_config(tokenizer, shape, num_key_value_heads=kv_heads, initializer_range=0.5)
    return Qwen2ForCausalLM(config).float().eval()


@pytest.mark.parametrize("kv_heads", [2, 1], ids=["gqa-4q-2kv", "mqa-4q-1kv"])
def test_incremental_decoder_with_fewer_kv_heads_matches_generate(tiny_tokenizer, kv_heads):
    """Grouped-query attention in the fast path: prefill of a left-padded batch, G copies of each
    prompt and the decode steps give the tokens of ``model.generate`` and the model's logits."""
    from r1lib.decoder import IncrementalDecoder, supports

    model = gqa_model(tiny_tokenizer, kv_heads)
    assert model.config.num_key_value_heads == kv_heads < model.config.num_attention_heads and supports(model)
    prompts = render_prompts(tiny_tokenizer, [[{"role": "user", "content": q}] for q in ["1+2", "3+4+5+6+7+8", "9"]])
    out = rollout(model, tiny_tokenizer, prompts, num_generations=2, max_new_tokens=10, temperature=0.0)
    for i, prompt in enumerate(prompts):
        ids = tiny_tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        reference = model.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=tiny_tokenizer.eos_token_id,
                                   pad_token_id=tiny_tokenizer.pad_token_id)[0, ids.shape[1]:]
        assert len(set(reference.tolist())) > 2  # the tokens vary: a wrong attention would show
        for row in (2 * i, 2 * i + 1):
            assert out.completion_ids[row][out.completion_mask[row].bool()].tolist() == reference.tolist()

    # Stop on a token some rows emit early: finished rows leave the decoder's batch (keep) mid-way.
    stops = [tiny_tokenizer.eos_token_id, int(out.completion_ids[0, 2])]
    stopped = rollout(model, tiny_tokenizer, prompts, 2, 10, temperature=0.0, stop_token_ids=stops)
    assert stopped.completion_lengths[0] <= 3 and not stopped.is_truncated[0]
    for i, prompt in enumerate(prompts):
        ids = tiny_tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        reference = model.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=stops,
                                   pad_token_id=tiny_tokenizer.pad_token_id)[0, ids.shape[1]:]
        mine = stopped.completion_ids[2 * i][stopped.completion_mask[2 * i].bool()].tolist()
        assert mine == reference[: len(mine)].tolist() and (len(mine) == 10 or mine[-1] in stops)

    encoded = tiny_tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    decoder = IncrementalDecoder(model, len(prompts), ids.shape[1] + 3)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    mine = decoder.forward(ids, positions, mask)
    for step in range(3):  # prefill, then two single-token steps
        full_positions = (mask.cumsum(1) - 1).clamp(min=0)
        reference = model(input_ids=ids, attention_mask=mask, position_ids=full_positions).logits[:, -1]
        torch.testing.assert_close(mine, reference, atol=1e-5, rtol=1e-5)
        if step == 2:
            break
        token = reference.argmax(-1, keepdim=True)
        ids, mask = torch.cat([ids, token], 1), torch.cat([mask, torch.ones_like(token)], 1)
        mine = decoder.forward(token, full_positions[:, -1:] + 1, torch.ones_like(token))
