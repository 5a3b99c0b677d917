import json
import os
import random
from dataclasses import replace

import pytest
import torch

from r1lib import profiles
from r1lib.estimates import GIB, DeviceInfo
from r1lib.models import load_model_and_tokenizer
from r1lib.profiles import get_profile, gpu_precision, runs_dir, with_overrides
from r1lib.tasks.registry import TaskData, load_task, register_task, task_names
from r1lib.tiny.corpus import sample_document
from r1lib.tiny.model import TinyModelConfig, build_tiny_model
from r1lib.tiny.pretrain import PretrainConfig, collate, pretrain
from r1lib.widgets import CompletionBrowser


def test_profile_selection(monkeypatch):
    monkeypatch.setenv("R1LIB_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    monkeypatch.delenv("R1LIB_PROFILE")
    assert get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")
    assert get_profile("gpu").model.dtype in ("float16", "bfloat16")  # which one: see the tests below
    with pytest.raises(ValueError, match="unknown profile 'tpu'"):
        get_profile("tpu")
    cpu = get_profile("cpu")
    assert with_overrides(cpu, beta=0.0).grpo.beta == 0.0 and cpu.grpo.beta == 0.01
    assert with_overrides(cpu, "sft", max_steps=7).sft.max_steps == 7
    with pytest.raises(ValueError, match="num_generations"):
        with_overrides(cpu, num_generations=1)
    with pytest.raises(ValueError, match="stage must be"):
        with_overrides(cpu, "ppo", max_steps=1)


T4 = DeviceInfo("cuda", "Tesla T4", 15 * GIB, (7, 5))
A100 = DeviceInfo("cuda", "NVIDIA A100-SXM4-40GB", 40 * GIB, (8, 0))
NO_GPU = DeviceInfo("cpu", "CPU", None, None)


def on_machine(monkeypatch, info: DeviceInfo) -> None:
    """Build profiles as if ``info`` were this machine's first device."""
    monkeypatch.setattr(profiles, "device_info", lambda device=None: info)


@pytest.mark.parametrize(("info", "dtype", "flag"), [(T4, "float16", "fp16"), (A100, "bfloat16", "bf16"),
                                                     (NO_GPU, "float16", "fp16")], ids=["T4", "A100", "no-gpu"])
def test_gpu_precision_follows_compute_capability(monkeypatch, info, dtype, flag):
    # bf16 from compute capability 8.0 (a T4 emulates it slowly); without a GPU, Colab's T4 settings.
    assert gpu_precision(info) == (dtype, {flag: True})
    on_machine(monkeypatch, info)
    gpu = get_profile("gpu")
    other = "bf16" if flag == "fp16" else "fp16"
    assert gpu.model.dtype == dtype
    for config in (gpu.grpo, gpu.sft, gpu.distill):
        assert getattr(config, flag) and not getattr(config, other)


def scaled_fp16_update(model) -> None:
    """One update as the trainer makes it with fp16 on a T4 (autocast, loss scaling), on the CPU."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    model.train()
    with torch.autocast("cpu", dtype=torch.float16):
        loss = model(input_ids=ids, labels=ids).loss
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # float16 weights fail here: "Attempting to unscale FP16 gradients"
    scaler.step(optimizer)
    scaler.update()


def trainable_and_frozen(model) -> tuple[dict, dict]:
    named = dict(model.named_parameters())
    trainable = {n: p for n, p in named.items() if p.requires_grad}
    return trainable, {n: p for n, p in named.items() if n not in trainable}


def test_the_t4_profile_never_trains_float16_weights(monkeypatch, tiny_tokenizer, tmp_path):
    on_machine(monkeypatch, T4)
    spec = get_profile("gpu").model
    assert spec.dtype == "float16" and spec.lora is not None
    small = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    build_tiny_model(tiny_tokenizer, small, seed=0).save_pretrained(tmp_path / "base")
    tiny_tokenizer.save_pretrained(tmp_path / "base")
    spec = replace(spec, name_or_path=str(tmp_path / "base"), device="cpu")  # the T4 profile's settings, on the CPU

    # LoRA: the frozen base stays half (its memory is why LoRA is used), the adapters train in float32.
    lora, _ = load_model_and_tokenizer(spec)
    trainable, frozen = trainable_and_frozen(lora)
    assert trainable and all("lora_" in n and p.dtype == torch.float32 for n, p in trainable.items())
    assert frozen and all(p.dtype == torch.float16 for p in frozen.values())
    # Full fine-tuning: float32 master weights, fp16 only inside autocast.
    full, _ = load_model_and_tokenizer(replace(spec, lora=None))
    trainable, frozen = trainable_and_frozen(full)
    assert not frozen and all(p.dtype == torch.float32 for p in trainable.values())

    for model in (lora, full):
        before = {n: p.detach().clone() for n, p in trainable_and_frozen(model)[0].items()}
        scaled_fp16_update(model)
        after = trainable_and_frozen(model)[0]
        assert any(not torch.equal(after[n], p) for n, p in before.items()), "the update was skipped"
    # Only sampling: the weights as asked (half), all frozen.
    sampler, _ = load_model_and_tokenizer(replace(spec, lora=None), trainable=False)
    assert all(p.dtype == torch.float16 and not p.requires_grad for p in sampler.parameters())


def test_runs_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("R1LIB_RUNS_DIR", str(tmp_path))
    assert runs_dir("03", "cpu") == tmp_path / "03" / "cpu"


def test_task_registry():
    assert {"chain", "search", "general", "gsm8k", "countdown"} <= set(task_names())
    data = load_task("search", num_train=50, num_eval=20, seed=1)
    assert len(data.train) == 50 and len(data.eval) == 20
    assert not {e.question for e in data.train} & {e.question for e in data.eval}
    assert load_task("search", 5, 20, seed=2).eval == data.eval  # one fixed held-out set
    with pytest.raises(ValueError, match="unknown task 'chess'"):
        load_task("chess", 1, 1)

    @register_task("test-echo")
    def echo(num_train, num_eval, seed, data_dir):
        return TaskData(data.task, data.train[:num_train], data.eval[:num_eval])

    assert len(load_task("test-echo", 3, 2).train) == 3
    with pytest.raises(ValueError, match="already registered"):
        register_task("test-echo")(echo)


def test_batches_mask_the_prompt(tiny_tokenizer):
    rng = random.Random(0)
    documents = [sample_document(rng, PretrainConfig().corpus, 0.0) for _ in range(6)]
    ids, mask, labels = collate(tiny_tokenizer, documents)
    assert ids.shape == labels.shape == mask.shape and ids.shape[0] == 6
    assistant = tiny_tokenizer.convert_tokens_to_ids("<|assistant|>")
    for row, label, (_, reply) in zip(ids.tolist(), labels.tolist(), documents):
        cut = row.index(assistant) + 1
        assert all(x == -100 for x in label[:cut]) and label[cut] != -100  # loss starts at the reply
        reply_ids = [x for x in label if x != -100]
        assert tiny_tokenizer.decode(reply_ids) == reply + tiny_tokenizer.eos_token


def test_short_pretraining_learns_and_resumes(tmp_path):
    small = TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)
    config = PretrainConfig(max_steps=60, per_device_train_batch_size=16, warmup_steps=10, save_steps=30, eval_steps=60,
                            eval_examples=8, model=small)
    stats = pretrain(tmp_path / "base", config, progress=False)
    log = [json.loads(line) for line in (tmp_path / "base" / "pretrain_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 61))
    assert log[0]["loss"] > 4.5 and log[-1]["loss"] < 3.6  # from ~4.7, uniform over 109 tokens
    assert set(stats) >= {"chain/pass@1", "search/reasoning_rate", "chain/forced_reasoning_pass@1"}
    assert (tmp_path / "base" / "model.safetensors").exists() and (tmp_path / "base" / "tokenizer.json").exists()
    saved = json.loads((tmp_path / "base" / "pretrain_config.json").read_text())
    assert saved["max_steps"] == 60 and saved["model"]["hidden_size"] == 64
    # A second call finds the finished work: it resumes at the last step, trains and evaluates nothing.
    again = pretrain(tmp_path / "base", replace(config), progress=False)
    assert again == stats


def test_completion_browser_groups_by_step_and_prompt():
    records = [{"step": s, "question": q, "answer": "1", "completion": f"<answer>{i}</answer>", "reward": 1.0}
               for s in (1, 2) for q in ("1+0", "2+9") for i in range(3)]
    browser = CompletionBrowser(records)
    assert browser.steps == [1, 2] and browser.questions(2) == ["1+0", "2+9"]
    assert len(browser.completions(1, "2+9")) == 3
    with pytest.raises(ValueError, match="no completions"):
        CompletionBrowser([])


def test_a_plain_wheel_install_finds_the_tiny_base(tmp_path):
    """`pip install` from a clone (not editable) must still ship the tiny models and the trained stages the
    notebooks load."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "wheel"), str(root)], check=True)
    wheel = next((tmp_path / "wheel").glob("r1lib-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in ("tiny-base", "tiny-base-no-reflection", "tiny-student-quarter", "tiny-student-sixteenth"):
        assert f"r1lib/data/{model}/model.safetensors" in names
        assert f"r1lib/data/{model}/tokenizer.json" in names
    from r1lib.shipped import SHIPPED

    assert "r1lib/data/stages/manifest.json" in names
    for stage in SHIPPED:
        assert f"r1lib/data/stages/{stage}/model.safetensors" in names
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True)
    probe = ("import r1lib.profiles as p, r1lib.shipped as s; print(p.data_dir()); print(p.TINY_BASE.is_dir()); "
             "print(s.STAGES_DIR); print(sum(len(s.problems(n)) for n in s.SHIPPED))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site"), "R1LIB_DATA_DIR": ""}).stdout.split()
    installed = tmp_path / "site" / "r1lib" / "data"
    assert out == [str(installed), "True", str(installed / "stages"), "0"]  # the shipped stages, every hash right


def test_the_data_directory_can_be_moved(monkeypatch, tmp_path):
    from r1lib.profiles import data_dir

    monkeypatch.setenv("R1LIB_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv("R1LIB_DATA_DIR")
    assert (data_dir() / "tiny-base" / "config.json").is_file()


def test_a_stopped_pretraining_publishes_no_base(tmp_path, monkeypatch):
    """Ctrl-C during `make tiny-models` used to write the half-trained model as the base, statistics and all."""
    from r1lib.tiny.pretrain import PretrainTrainer

    small = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    config = PretrainConfig(max_steps=6, per_device_train_batch_size=4, warmup_steps=1, save_steps=2, eval_steps=6,
                            eval_examples=4, model=small)
    real = PretrainTrainer.training_step

    def stop_at_four(self):
        if self.state.step == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(PretrainTrainer, "training_step", stop_at_four)
    with pytest.raises(KeyboardInterrupt, match="stopped at step 3 of 6; run the same command again"):
        pretrain(tmp_path / "base", config, progress=False)
    assert not (tmp_path / "base").exists() and (tmp_path / "base.work" / "checkpoints" / "step-000003").exists()
    monkeypatch.setattr(PretrainTrainer, "training_step", real)
    pretrain(tmp_path / "base", config, progress=False)
    log = [json.loads(line) for line in (tmp_path / "base" / "pretrain_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
