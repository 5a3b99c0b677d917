import pytest
import torch
from transformers import AutoModelForCausalLM

from r1lib.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


def _train_one_step(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.tensor([[3, 20, 16, 20, 4]])
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    return optimizer


def test_round_trip_restores_weights_optimizer_and_rng(random_model, tiny_tokenizer, tmp_path):
    optimizer = _train_one_step(random_model)
    path = save_checkpoint(tmp_path / "step-000001", random_model, tiny_tokenizer, optimizer, {"step": 1})
    expected_next_random = torch.rand(3)

    fresh = AutoModelForCausalLM.from_pretrained(path)  # a checkpoint is a normal HF model directory
    assert torch.equal(fresh.model.embed_tokens.weight, random_model.model.embed_tokens.weight)
    other = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    torch.manual_seed(999)
    state = load_checkpoint(path, fresh, other)
    assert state["step"] == 1
    assert torch.equal(torch.rand(3), expected_next_random)
    key = next(iter(optimizer.state))
    restored = other.state[next(iter(other.state))]
    assert torch.equal(restored["exp_avg"], optimizer.state[key]["exp_avg"])
    assert list(path.glob("*.safetensors")) and not list(path.glob("*.bin")) and not list(path.glob("*.pt"))


def test_a_failed_save_leaves_the_previous_checkpoint_and_no_partial_directory(random_model, tiny_tokenizer, tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "step-000001", random_model, tiny_tokenizer, None, {"step": 1})
    import r1lib.checkpoint as ckpt

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "step-000002", random_model, tiny_tokenizer, _train_one_step(random_model), {"step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000001"]
    assert latest_checkpoint(tmp_path).name == "step-000001"


def test_load_rejects_an_incomplete_directory(random_model, tmp_path):
    (tmp_path / "step-000003").mkdir()
    assert latest_checkpoint(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        load_checkpoint(tmp_path / "step-000003", random_model)
