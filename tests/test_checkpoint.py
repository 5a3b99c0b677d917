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


# ----------------------------------------------------------------------------- saves that survive anything


def test_a_kill_while_the_old_checkpoint_is_deleted_keeps_a_whole_one(random_model, tiny_tokenizer, tmp_path, monkeypatch):
    """Replacing a checkpoint of the same step used to delete the old one first: a kill during that
    deletion left trainer_state.json without the weights, counted as complete."""
    import r1lib.checkpoint as ckpt
    from r1lib.checkpoint import complete_checkpoints, remove_partial_checkpoints

    save_checkpoint(tmp_path / "step-000002", random_model, tiny_tokenizer, _train_one_step(random_model), {"step": 2})
    real_rmtree = ckpt.shutil.rmtree

    def killed_midway(path, *args, **kwargs):
        (path / "model.safetensors").unlink()  # the deletion got this far, then the process died
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "step-000002", random_model, tiny_tokenizer, _train_one_step(random_model), {"step": 2})
    monkeypatch.setattr(ckpt.shutil, "rmtree", real_rmtree)
    remove_partial_checkpoints(tmp_path)  # what the next start does
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-000002"]
    assert load_checkpoint(tmp_path / "step-000002", random_model)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000002"]


def test_a_kill_between_moving_aside_and_renaming_in_puts_the_old_one_back(random_model, tiny_tokenizer, tmp_path, monkeypatch):
    import r1lib.checkpoint as ckpt
    from r1lib.checkpoint import complete_checkpoints, remove_partial_checkpoints

    save_checkpoint(tmp_path / "step-000002", random_model, tiny_tokenizer, None, {"step": 2, "version": "old"})
    real_replace, calls = ckpt.os.replace, []

    def dies_on_the_second_rename(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(ckpt.os, "replace", dies_on_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "step-000002", random_model, tiny_tokenizer, None, {"step": 2, "version": "new"})
    monkeypatch.setattr(ckpt.os, "replace", real_replace)
    assert not (tmp_path / "step-000002").exists()  # the moment of the kill: only the old copy, aside
    remove_partial_checkpoints(tmp_path)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-000002"]
    assert load_checkpoint(tmp_path / "step-000002", random_model)["version"] == "old"


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_checkpoint_with_a_missing_or_cut_file_is_not_complete_and_names_the_file(random_model, tiny_tokenizer, tmp_path, damage):
    from r1lib.checkpoint import CheckpointError, checkpoint_problem, complete_checkpoints

    path = save_checkpoint(tmp_path / "step-000001", random_model, tiny_tokenizer, _train_one_step(random_model), {"step": 1})
    optimizer_file = path / "optimizer.safetensors"
    if damage == "missing":
        optimizer_file.unlink()
    else:
        optimizer_file.write_bytes(optimizer_file.read_bytes()[:100])
    assert complete_checkpoints(tmp_path) == []
    assert "optimizer.safetensors" in checkpoint_problem(path)
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        load_checkpoint(path, random_model, torch.optim.AdamW(random_model.parameters()))


def test_an_unreadable_file_of_the_right_size_is_named(random_model, tiny_tokenizer, tmp_path):
    from r1lib.checkpoint import CheckpointError

    path = save_checkpoint(tmp_path / "step-000001", random_model, tiny_tokenizer, None, {"step": 1})
    weights = path / "model.safetensors"
    weights.write_bytes(b"\xff" * weights.stat().st_size)
    with pytest.raises(CheckpointError, match="model.safetensors cannot be read"):
        load_checkpoint(path, random_model)
